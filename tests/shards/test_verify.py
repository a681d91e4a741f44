import os

import pytest

from shards import verify_corpus
from tests.shards.corpus_factory import write_corpus


@pytest.fixture
def corpus(tmp_path):
    write_corpus(str(tmp_path), shards=3, per_shard=4)
    return tmp_path


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_sound_corpus_has_no_problems(corpus):
    checked = []
    assert verify_corpus(str(corpus), progress=checked.append) == []
    assert checked == [f"synthpedes-00000{i}.tar" for i in range(3)]


def test_flipped_byte_in_an_image_is_found(corpus):
    _flip_byte(corpus / "synthpedes-000001.tar", 512 + 100)  # inside the first member's data
    problems = verify_corpus(str(corpus))
    assert problems and all(p.startswith("synthpedes-000001.tar: ") for p in problems)
    assert any("sha256" in p for p in problems) and any("jpg differs" in p for p in problems)


def test_flipped_byte_in_a_header_is_found(corpus):
    _flip_byte(corpus / "synthpedes-000002.tar", 3)  # inside the first member's name
    problems = verify_corpus(str(corpus))
    assert any(p.startswith("synthpedes-000002.tar: ") for p in problems)


def test_missing_shard_is_found(corpus):
    os.remove(corpus / "synthpedes-000000.tar")
    assert "synthpedes-000000.tar: missing (its _stats.json exists)" in verify_corpus(str(corpus))
    for suffix in (".parquet", "_stats.json"):
        os.remove(corpus / f"synthpedes-000000{suffix}")
    assert verify_corpus(str(corpus)) == ["synthpedes-000000.tar: listed in manifest.json but missing or incomplete"]


def test_unlisted_shard_and_missing_manifest_are_found(corpus):
    os.remove(corpus / "manifest.json")
    assert verify_corpus(str(corpus)) == ["manifest.json: missing (run write_manifest / `spac shards manifest`)"]


def test_malformed_stats_and_manifest_are_problems_not_tracebacks(corpus):
    (corpus / "synthpedes-000001_stats.json").write_text('{"count": 4}')
    (corpus / "manifest.json").write_text('{"shards": [{"shard": "synthpedes-000000.tar"}], "totals": {}}')
    problems = verify_corpus(str(corpus))
    assert "synthpedes-000001.tar: unreadable _stats.json (synthpedes-000001_stats.json: missing field 'shard')" in problems
    assert problems[-1].startswith("manifest.json: unreadable (manifest.json: shard entry: missing field")
    (corpus / "manifest.json").write_text("[")
    assert verify_corpus(str(corpus))[-1].startswith("manifest.json: unreadable (")
