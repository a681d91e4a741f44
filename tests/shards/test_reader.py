import functools
import http.server
import threading

import pytest
import torch
from PIL import Image

from shards import iter_samples, open_corpus, shard_urls
from tests.shards.corpus_factory import write_corpus

SHARDS, PER_SHARD = 4, 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    samples = write_corpus(str(directory), SHARDS, PER_SHARD)
    return str(directory), samples


def _keys(dataset):
    return [s["__key__"] for s in dataset]


def test_round_trip_decodes_every_sample_in_order(corpus):
    directory, written = corpus
    read = list(iter_samples(directory))
    assert _keys(read) == [s["__key__"] for s in written]
    for sample, original in zip(read, written):
        assert set(sample) == {"__key__", "jpg", "json", "txt"}
        assert isinstance(sample["jpg"], Image.Image) and sample["jpg"].mode == "RGB"
        assert sample["jpg"].size == (128, 256)
        assert sample["json"] == original["json"] and sample["txt"] == original["txt"]


def test_undecoded_samples_keep_the_written_bytes(corpus):
    directory, written = corpus
    read = list(open_corpus(directory, decode=False))
    assert [s["jpg"] for s in read] == [s["jpg"] for s in written]


def test_sample_shuffle_is_a_seeded_permutation(corpus):
    directory, written = corpus
    first = _keys(open_corpus(directory, shuffle=8, seed=3))
    assert first == _keys(open_corpus(directory, shuffle=8, seed=3))
    assert sorted(first) == [s["__key__"] for s in written] and first != sorted(first)
    assert first != _keys(open_corpus(directory, shuffle=8, seed=4))


def test_shard_shuffle_changes_shard_order_per_epoch(corpus):
    directory, written = corpus
    dataset = open_corpus(directory, shard_shuffle=True, seed=0, decode=False)
    epochs = [_keys(dataset) for _ in range(3)]
    for keys in epochs:
        assert sorted(keys) == [s["__key__"] for s in written]
    first_keys = {tuple(keys[:PER_SHARD]) for keys in epochs}
    assert len(first_keys) > 1  # at least two epochs started with different shards


def test_brace_pattern_and_url_list_select_shards(corpus):
    directory, written = corpus
    pattern = f"{directory}/synthpedes-{{000001..000002}}.tar"
    expected = [s["__key__"] for s in written[PER_SHARD:3 * PER_SHARD]]
    assert _keys(open_corpus(pattern, decode=False)) == expected
    urls = shard_urls(pattern)
    assert len(urls) == 2 and _keys(open_corpus(urls, decode=False)) == expected


@pytest.mark.parametrize("shard_shuffle", [False, True])
def test_split_by_node_gives_ranks_disjoint_shards(corpus, monkeypatch, shard_shuffle):
    directory, written = corpus
    monkeypatch.setenv("WORLD_SIZE", "2")
    per_rank = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        per_rank.append(set(_keys(open_corpus(directory, shard_shuffle=shard_shuffle, seed=5, decode=False))))
    assert per_rank[0].isdisjoint(per_rank[1])
    assert len(per_rank[0]) == len(per_rank[1]) == SHARDS // 2 * PER_SHARD
    assert per_rank[0] | per_rank[1] == {s["__key__"] for s in written}


def test_dataloader_workers_share_the_shards_without_overlap(corpus):
    directory, written = corpus
    loader = torch.utils.data.DataLoader(open_corpus(directory, shuffle=4), batch_size=None, num_workers=2)
    keys = [sample["__key__"] for sample in loader]
    assert sorted(keys) == [s["__key__"] for s in written]


def test_batched_pipeline_for_training(corpus):
    directory, _ = corpus
    batches = list(open_corpus(directory, decode=False).batched(8, collation_fn=list, partial=False))
    assert [len(b) for b in batches] == [8, 8]


def test_epoch_size_fixes_the_number_of_samples(corpus, monkeypatch):
    directory, _ = corpus
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    dataset = open_corpus(directory, epoch_size=13, shuffle=4, decode=False)  # more than this rank's 10
    assert len(list(dataset)) == 13 and len(list(dataset)) == 13
    assert len(list(open_corpus(directory, epoch_size=7, resampled=True, decode=False))) == 7


def test_bad_sources_and_options_are_refused(corpus, tmp_path):
    directory, _ = corpus
    with pytest.raises(ValueError, match="not a corpus folder"):
        open_corpus(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="epoch_size"):
        open_corpus(directory, resampled=True)
    with pytest.raises(ValueError, match="shuffle"):
        open_corpus(directory, shuffle=-1)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_streams_shards_over_http(corpus):
    directory, written = corpus
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        keys = _keys(open_corpus(f"{base}/synthpedes-{{000000..000001}}.tar", decode=False))
        assert keys == [s["__key__"] for s in written[:2 * PER_SHARD]]
        assert len(shard_urls(base)) == SHARDS  # a folder URL is listed through its manifest
    finally:
        server.shutdown()
        server.server_close()


def test_a_damaged_member_is_a_one_line_error_naming_the_sample():
    from shards.reader import decode_sample

    with pytest.raises(ValueError, match=r"sample 'k1': damaged member"):
        decode_sample({"__key__": "k1", "jpg": b"not a jpeg", "json": b"{}", "txt": b"t"})
