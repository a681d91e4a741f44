"""shards.layout: the corpus folder's file names."""

from __future__ import annotations

import pytest

from shards import layout, remote


def test_names_of_one_shard():
    assert layout.tar_name(3) == "synthpedes-000003.tar"
    assert layout.index_name(3, "lup-nl") == "lup-nl-000003.parquet"
    assert layout.stats_name(999_999, "a_b") == "a_b-999999_stats.json"


@pytest.mark.parametrize(
    "index, prefix",
    [(-1, "p"), (1_000_000, "p"), (True, "p"), (1.0, "p"), (0, "a/b"), (0, "-a"), (0, "a-"), (0, ""), (0, "ü")],
)
def test_bad_index_or_prefix_is_refused(index, prefix):
    with pytest.raises(ValueError):
        layout.shard_stem(index, prefix)


def test_complete_stems_need_the_stats_marker_and_skip_temporaries(tmp_path):
    for name in (
        "p-000000.tar",
        "p-000000.parquet",
        "p-000000_stats.json",  # complete
        "p-000001.tar",
        "p-000001.parquet",  # no marker yet
        "p-000002_stats.json.tmp-abc",
        "q-000003_stats.json",
        "notes.txt",
    ):
        (tmp_path / name).write_text("x")
    fs, root = remote.resolve(str(tmp_path))
    assert layout.shard_files(fs, root)["p-000001"] == {".tar", ".parquet"}
    assert "p-000002" not in layout.shard_files(fs, root)
    assert layout.complete_stems(fs, root) == ["p-000000", "q-000003"]
    assert layout.complete_stems(fs, root, prefix="p") == ["p-000000"]
