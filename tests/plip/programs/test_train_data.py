import dataclasses
import io
import random
from collections import Counter

import pytest
from PIL import Image

from plip.config import MINILM, TextConfig
from plip.programs.train_data import (
    BatchSpec,
    IdentityBatches,
    count_samples,
    group_by_identity,
    image_of,
    in_order,
    pick_text,
    train_batches,
)
from plip.text_encoder import load_tokenizer
from tests.plip.train_corpus import write_copy_with_spans, write_damaged_copy, write_rendered_corpus

P, K = 3, 2


def fake_stream(identities: int, per_identity: int, seed: int) -> list[dict]:
    samples = [
        {"key": f"{i}_{n}", "record": {"id": i}, "jpg": b""} for i in range(identities) for n in range(per_identity)
    ]
    random.Random(seed).shuffle(samples)
    return samples


def ids_of(batch: list[dict]) -> list[int]:
    return [s["record"]["id"] for s in batch]


def test_every_batch_has_p_distinct_identities_with_k_images_each():
    batches = list(group_by_identity(fake_stream(10, 5, seed=1), P, K, max_buffer=100))
    assert len(batches) >= 6
    for batch in batches:
        ids = ids_of(batch)
        assert len(ids) == P * K
        assert Counter(ids) == {i: K for i in set(ids)} and len(set(ids)) == P
        assert ids == sorted(ids, key=ids.index)  # identity after identity
    keys = [s["key"] for b in batches for s in b]
    assert len(keys) == len(set(keys))  # no sample twice


def test_grouping_is_deterministic_and_depends_on_the_stream_order():
    first = [ids_of(b) for b in group_by_identity(fake_stream(10, 5, seed=1), P, K, 100)]
    again = [ids_of(b) for b in group_by_identity(fake_stream(10, 5, seed=1), P, K, 100)]
    other = [ids_of(b) for b in group_by_identity(fake_stream(10, 5, seed=2), P, K, 100)]
    assert first == again and first != other


def test_a_small_buffer_drops_the_oldest_unfinished_identity_and_counts_it():
    # Identity 0 shows up once, then 12 other samples arrive: it cannot stay in an 8-sample buffer.
    stream = [{"key": "lonely", "record": {"id": 0}, "jpg": b""}]
    stream += [{"key": f"{i}_{n}", "record": {"id": i}, "jpg": b""} for n in range(2) for i in range(1, 7)]
    stats: dict[str, int] = {}
    batches = list(group_by_identity(stream, P, K, max_buffer=8, stats=stats))
    assert stats["dropped"] >= 1
    assert 0 not in {i for b in batches for i in ids_of(b)}
    assert all(len(b) == P * K for b in batches)


def test_grouping_refuses_a_buffer_smaller_than_a_batch():
    with pytest.raises(ValueError, match="smaller than one batch"):
        list(group_by_identity([], P, K, max_buffer=P * K - 1))


def test_pick_text_draws_from_captions_and_template_sentence_deterministically():
    record = {"captions": ["a", "b"], "prompt_caption": ["c"]}
    picks = [pick_text(record, random.Random(seed)) for seed in range(40)]
    assert {text for text, _ in picks} == {"a", "b", "c"} and {spans for _, spans in picks} == {None}
    assert picks == [pick_text(record, random.Random(seed)) for seed in range(40)]
    # the same draw as rng.choice over the texts, as before spans were stored: old batches stay the same
    assert [text for text, _ in picks] == [random.Random(seed).choice(["a", "b", "c"]) for seed in range(40)]
    with pytest.raises(ValueError, match="no caption"):
        pick_text({"key": "x", "captions": [], "prompt_caption": []}, random.Random(0))


def test_pick_text_gives_the_stored_spans_of_the_text_it_picked():
    record = {
        "captions": ["a red coat", "blue jeans"],
        "prompt_caption": ["a man with a hat"],
        "attribute_spans": [[[2, 10]], [[0, 10]], [[11, 16]]],
    }
    expected = {"a red coat": [(2, 10)], "blue jeans": [(0, 10)], "a man with a hat": [(11, 16)]}
    picks = [pick_text(record, random.Random(seed)) for seed in range(40)]
    assert {text for text, _ in picks} == set(expected)
    assert all(spans == expected[text] for text, spans in picks)


def test_in_order_resequences_round_robin_batches_and_reports_a_gap():
    arrived = [{"batch_index": i} for i in (3, 2, 5, 4)]
    assert [b["batch_index"] for b in in_order(arrived, start=2)] == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="never did"):
        list(in_order([{"batch_index": 3}], start=2))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_rendered_corpus(
        tmp_path_factory.mktemp("train") / "corpus", identities=6, images_per_identity=4, shards=2
    )


@pytest.fixture(scope="module")
def spec(corpus):
    return BatchSpec(
        source=str(corpus),
        tokenizer=load_tokenizer(TextConfig(name_or_path=MINILM)),
        ids_per_batch=P,
        images_per_id=K,
        steps_per_epoch=4,
        total_steps=8,
        image_size=(64, 32),
        max_length=32,
        shuffle=8,
        group_buffer=50,
        seed=3,
    )


def _summary(batches):
    return [
        (b["batch_index"], b["identity_ids"].tolist(), b["input_ids"].sum().item(), round(b["images"].sum().item(), 3))
        for b in batches
    ]


def test_shard_batches_have_identity_structure_tensors_and_masks(spec):
    batches = list(IdentityBatches(spec, epoch=0))
    assert [b["batch_index"] for b in batches] == [0, 1, 2, 3]  # the corpus repeats to fill the epoch
    for batch in batches:
        assert batch["images"].shape == (P * K, 3, 64, 32)
        ids = batch["identity_ids"].tolist()
        assert len(set(ids)) == P and all(ids.count(i) == K for i in ids)
        assert batch["input_ids"].shape == batch["mlm_labels"].shape == (P * K, 32)
        assert (batch["mlm_labels"] != -100).any()  # attribute phrases got masked for IAP


def test_batches_are_reproducible_and_a_resumed_epoch_continues_identically(spec):
    full = _summary(IdentityBatches(spec, epoch=0))
    assert full == _summary(IdentityBatches(spec, epoch=0))
    assert _summary(IdentityBatches(spec, epoch=0, start=2)) == full[2:]
    assert _summary(IdentityBatches(spec, epoch=1)) != full


def test_dataloader_workers_deliver_batches_in_order_and_resume_identically(spec):
    with_workers = _summary(train_batches(spec, epoch=0, start=0, workers=2))
    assert [entry[0] for entry in with_workers] == [0, 1, 2, 3]
    assert _summary(train_batches(spec, epoch=0, start=1, workers=2)) == with_workers[1:]


def test_dataloader_workers_read_disjoint_shards_every_epoch(spec):
    # Batch 0 comes from worker 0 and batch 1 from worker 1, each of its own shard (identities 0-2 or 3-5).
    two_steps = dataclasses.replace(spec, steps_per_epoch=2)
    for epoch in range(4):
        ids = [set(batch[1]) for batch in _summary(train_batches(two_steps, epoch=epoch, workers=2))]
        assert sorted(map(sorted, ids)) == [[0, 1, 2], [3, 4, 5]], epoch


@pytest.fixture(scope="module")
def corpus_with_spans(corpus, tmp_path_factory):
    return write_copy_with_spans(corpus, tmp_path_factory.mktemp("spans") / "corpus")


def _no_spacy(monkeypatch):
    from spac import language

    def refuse(*args, **kwargs):
        raise AssertionError("spac.language ran although the records store their spans")

    monkeypatch.setattr(language, "attribute_spans", refuse)
    monkeypatch.setattr(language, "extract_attributes_batch", refuse)


def test_stored_spans_give_exactly_the_batches_of_the_spacy_path_without_running_it(
    spec, corpus_with_spans, monkeypatch
):
    from_spacy = list(IdentityBatches(spec, epoch=0))  # the corpus without the field: spans found by spaCy
    _no_spacy(monkeypatch)
    stored = list(IdentityBatches(dataclasses.replace(spec, source=str(corpus_with_spans)), epoch=0))
    assert len(stored) == len(from_spacy) == 4
    assert sum(int((b["mlm_labels"] != -100).sum()) for b in stored) > 0
    for old, new in zip(from_spacy, stored):
        assert old.keys() == new.keys()
        for name in ("identity_ids", "input_ids", "attention_mask", "mlm_input_ids", "mlm_labels", "images"):
            assert old[name].equal(new[name]), name


def test_a_record_without_stored_spans_still_needs_spacy(spec, monkeypatch):
    _no_spacy(monkeypatch)
    with pytest.raises(AssertionError, match="spac.language ran"):
        next(iter(IdentityBatches(spec, epoch=0)))


def test_count_samples_reads_the_manifest_or_the_shards(corpus):
    assert count_samples(str(corpus)) == 24
    assert count_samples(str(corpus / "synthpedes-{000000..000001}.tar")) == 24


def test_image_of_names_shard_and_key_of_a_damaged_sample():
    with pytest.raises(ValueError, match=r"^s/x-000003.tar: sample 'k1': damaged jpg member .*spac shards verify`$"):
        image_of({"key": "k1", "url": "s/x-000003.tar", "jpg": b"\xff\xd8\xff not a jpeg"})
    # The corpus reader's decode policy: a JPEG of far more pixels than a corpus image is refused.
    huge = io.BytesIO()
    Image.new("RGB", (2000, 1100)).save(huge, format="JPEG")
    with pytest.raises(ValueError, match=r"sample 'k2': damaged jpg member \(image too large: 2000x1100 pixels"):
        image_of({"key": "k2", "url": "s/x-000003.tar", "jpg": huge.getvalue()})


@pytest.fixture(scope="module")
def damaged(corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged") / "corpus"
    return folder, write_damaged_copy(corpus, folder)


def test_a_damaged_image_stops_the_stream_or_is_skipped_and_counted(spec, damaged):
    folder, key = damaged
    # No shuffling and a worker per shard: each worker's pass begins with its shard's first sample, so the
    # damaged one is read first and lands in (raise) or is counted by (skip) that worker's first batch.
    stopping = dataclasses.replace(spec, source=str(folder), shuffle=0)
    with pytest.raises(ValueError, match=f"synthpedes-000000.tar: sample '{key}': damaged jpg member"):
        list(train_batches(stopping, epoch=0, workers=2))
    skipping = dataclasses.replace(stopping, skip_bad_samples=True)
    batches = list(train_batches(skipping, epoch=0, workers=2))  # the count crosses from worker processes
    assert [b["batch_index"] for b in batches] == [0, 1, 2, 3]
    assert all(b["images"].shape[0] == P * K for b in batches)
    # The worker reading shard 0 needs two passes over its 11 good samples for its two batches, and each pass
    # meets the damaged one.
    counts = [b["skipped_samples"] for b in batches]
    assert sum(counts) == 2
    # A resumed epoch counts only in the batches it makes: the earlier ones are in the checkpoint's count.
    assert [b["skipped_samples"] for b in train_batches(skipping, epoch=0, start=1, workers=2)] == counts[1:]
