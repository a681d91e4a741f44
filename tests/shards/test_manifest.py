"""shards.manifest: the manifest built from the shards' stats, and one-line errors for malformed files."""

from __future__ import annotations

import pytest

from shards import read_manifest, remote, write_manifest
from shards.manifest import build_manifest, read_manifest_file
from tests.shards.corpus_factory import write_corpus


def test_manifest_totals_add_up_over_the_shards(tmp_path):
    samples = write_corpus(str(tmp_path), 3, 4)
    manifest = read_manifest(str(tmp_path))
    assert manifest["totals"]["shards"] == 3 and manifest["totals"]["samples"] == len(samples)
    assert manifest["totals"]["bytes"] == sum((tmp_path / s["shard"]).stat().st_size for s in manifest["shards"])
    assert manifest["totals"]["identities"] == len({s["json"]["id"] for s in samples})
    assert [entry["shard"] for entry in manifest["shards"]] == [f"synthpedes-{i:06d}.tar" for i in range(3)]


def test_manifest_bytes_are_deterministic(tmp_path):
    write_corpus(str(tmp_path), 2, 3)
    first = (tmp_path / "manifest.json").read_bytes()
    write_manifest(str(tmp_path))
    assert (tmp_path / "manifest.json").read_bytes() == first


def test_shard_count_names_the_first_missing_shard(tmp_path):
    write_corpus(str(tmp_path), 2, 3)
    with pytest.raises(ValueError, match="000002"):
        build_manifest(str(tmp_path), shard_count=3)
    assert build_manifest(str(tmp_path), shard_count=1)["totals"]["shards"] == 1


def test_folder_without_shards_and_missing_manifest(tmp_path):
    assert read_manifest(str(tmp_path)) is None
    with pytest.raises(ValueError, match="no complete"):
        build_manifest(str(tmp_path))


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"shards": []}', "missing field 'totals'"),
        ('{"shards": {}, "totals": {}}', "'shards' a list"),
        ('{"shards": [{}], "totals": {}}', "shard entry"),
    ],
)
def test_malformed_manifest_is_one_line_naming_the_file(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    fs, root = remote.resolve(str(tmp_path))
    with pytest.raises(ValueError, match=message) as error:
        read_manifest_file(fs, remote.join(fs, root, "manifest.json"))
    assert "\n" not in str(error.value)
