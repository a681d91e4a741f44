"""pipelines.synthesis.ordering: identity ids and shard blocks by a distributed zip-with-index over identities."""

from __future__ import annotations

import random

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.shared import shard_sink
from pipelines.synthesis import graph, ordering
from shards.sample import validate_record
from tests.pipelines.step_helpers import record


def _sizes(count: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [(f"person{i:04d}", rng.randint(1, 20)) for i in range(count)]


def _place_in_memory(sizes: list[tuple[str, int]]) -> dict[str, tuple[int, int]]:
    buckets: dict[int, list[tuple[str, int]]] = {}
    for identity, count in sizes:
        bucket, pair = ordering.bucketed_count((identity, count))
        buckets.setdefault(bucket, []).append(pair)
    offsets = ordering.bucket_offsets(ordering.bucket_totals(item) for item in buckets.items())
    return dict(pair for item in buckets.items() for pair in ordering.place_bucket(item, offsets))


def test_placements_number_identities_and_images_without_gaps_or_overlaps():
    sizes = _sizes(3000)
    placed = _place_in_memory(sizes)
    assert sorted(identity_id for identity_id, _ in placed.values()) == list(range(len(sizes)))
    spans = sorted(
        (start, start + count) for (identity, count), (_, start) in ((pair, placed[pair[0]]) for pair in sizes)
    )
    assert spans[0][0] == 0 and all(end == next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))
    assert spans[-1][1] == sum(count for _, count in sizes)


def test_placements_do_not_depend_on_the_order_identities_arrive_in():
    sizes = _sizes(500, seed=1)
    shuffled = list(sizes)
    random.Random(7).shuffle(shuffled)
    assert _place_in_memory(shuffled) == _place_in_memory(sizes)


def test_ids_follow_bucket_then_name():
    placed = _place_in_memory(_sizes(200))
    by_id = sorted(placed, key=lambda identity: placed[identity][0])
    assert by_id == sorted(by_id, key=lambda identity: (ordering.identity_bucket(identity), identity))


def _captioned(key: str, identity: str) -> dict:
    return {
        **record(key, identity),
        "captions": ["a man.", "a man walks."],
        "styles": ["s1", "s2"],
        "prompt_caption": ["a person."],
    }


def test_samples_of_an_identity_take_consecutive_positions_in_key_order():
    records = [_captioned(key, "p1") for key in ("k3", "k1", "k2")]
    placed = list(ordering.place_samples(("p1", {"records": records, "placement": [(5, 9)]}), shard_size=10))
    assert [(shard, sample["__key__"], sample["json"]["id"]) for shard, sample in placed] == [
        (0, "k1", 5),
        (1, "k2", 5),
        (1, "k3", 5),
    ]  # positions 9, 10, 11: the identity straddles a boundary
    assert shard_sink.released_entry(placed[0][1]["json"])["attributes"] == [
        "man,short black hair,red t-shirt,blue jeans,white sneakers,black backpack"
    ]


def test_placed_samples_carry_the_records_attribute_spans_when_it_has_them():
    spans = [[[2, 5]], [[2, 5]], []]
    records = [{**_captioned("k1", "p1"), "attribute_spans": spans}, _captioned("k2", "p1")]
    placed = [
        sample["json"] for _, sample in ordering.place_samples(("p1", {"records": records, "placement": [(5, 0)]}), 10)
    ]
    assert placed[0]["attribute_spans"] == spans and "attribute_spans" not in placed[1]
    for json_record in placed:
        validate_record(json_record)


def test_records_without_their_jpegs_take_them_from_the_images_set_aside():
    first, twin = _captioned("k1", "p1"), {**_captioned("k1", "p1"), "source": "/in/twin.jpg"}
    records = [{f: v for f, v in r.items() if f != "jpg"} for r in (first, twin)]
    images = [
        (("k1", "/in/twin.jpg"), b"twin"),
        (("k0", "/in/k0.jpg"), b"dropped by the identity filters"),
        (("k1", "/in/k1.jpg"), b"first"),
    ]
    joined = ("p1", {"records": records, "placement": [(0, 0)], "images": images})
    placed = [sample for _, sample in ordering.place_samples(joined, 10)]
    assert [(s["json"]["source"], s["jpg"]) for s in placed] == [("/in/k1.jpg", b"first"), ("/in/twin.jpg", b"twin")]
    dropped = ("p2", {"records": [], "placement": [], "images": images[1:2]})  # no image kept: none placed
    assert list(ordering.place_samples(dropped, 10)) == []


def test_an_identity_without_exactly_one_placement_is_an_error():
    with pytest.raises(ValueError, match="identity 'p1': 0 placements for 1 images"):
        list(ordering.place_samples(("p1", {"records": [_captioned("k1", "p1")], "placement": []}), 10))


def test_the_beam_graph_places_like_the_in_memory_zip_with_index():
    sizes = _sizes(300, seed=3)
    with TestPipeline() as pipeline:
        placed = graph.identity_placements(pipeline | beam.Create(sizes))
        assert_that(placed, equal_to(list(_place_in_memory(sizes).items())))
