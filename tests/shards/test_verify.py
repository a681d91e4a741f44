import os
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shards import verify_corpus
from shards.reader import MAX_MEMBER_BYTES
from tests.memory_probe import peak_traced_bytes
from tests.shards.corpus_factory import write_corpus, write_tar


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
    assert (
        "synthpedes-000001.tar: unreadable _stats.json (synthpedes-000001_stats.json: missing field 'shard')"
        in problems
    )
    assert problems[-1].startswith("manifest.json: unreadable (manifest.json: shard entry: missing field")
    (corpus / "manifest.json").write_text("[")
    assert verify_corpus(str(corpus))[-1].startswith("manifest.json: unreadable (")


def test_every_problem_is_listed_once_so_the_count_is_the_number_found(tmp_path):
    write_corpus(str(tmp_path), shards=1, per_shard=25)
    index = tmp_path / "synthpedes-000000.parquet"
    table = pq.read_table(index)
    pq.write_table(
        table.set_column(table.schema.get_field_index("jpg_sha256"), "jpg_sha256", pa.array(["0" * 64] * 25)), index
    )  # 25 samples whose jpg now differs
    problems = verify_corpus(str(tmp_path))
    assert len([p for p in problems if "jpg differs from its index hash" in p]) == 25
    assert len(problems) == 25 + 1  # and the index's own sha256 in _stats.json
    assert all(p.startswith("synthpedes-000000.tar: sample ") or "parquet index sha256" in p for p in problems)


def test_an_oversized_member_is_a_problem_and_is_not_loaded(corpus):
    limit = 1000  # every jpg (2 KiB) is over it; records and captions are under it
    problems = verify_corpus(str(corpus), max_member_bytes=limit)
    assert len(problems) == 3 * 4
    for problem in problems:
        assert re.fullmatch(
            r"synthpedes-00000\d\.tar: member 'p\d{5}_\d{6}\.jpg': \d+ bytes, over the limit of 1000 "
            r"bytes per member",
            problem,
        )


def test_a_shard_with_a_huge_member_is_verified_in_little_memory(corpus):
    shard = corpus / "synthpedes-000001.tar"
    write_tar(shard, [("p00001_000004.jpg", MAX_MEMBER_BYTES + 1)])  # sparse: 64 MiB of zeros, no disk
    problems, peak = peak_traced_bytes(verify_corpus, str(corpus))
    assert (
        f"synthpedes-000001.tar: member 'p00001_000004.jpg': {MAX_MEMBER_BYTES + 1} bytes, over the limit of "
        f"{MAX_MEMBER_BYTES} bytes per member" in problems
    )
    assert peak < 8 * 2**20


def test_member_names_outside_the_sample_format_are_problems(corpus):
    shard = corpus / "synthpedes-000002.tar"
    write_tar(shard, [("../evil.jpg", b"x")])
    problems = verify_corpus(str(corpus))
    assert (
        "synthpedes-000002.tar: member '../evil.jpg': not a sample member: expected <key>.jpg, .json or .txt "
        "with a key of 1-90 characters from [A-Za-z0-9_-]" in problems
    )
