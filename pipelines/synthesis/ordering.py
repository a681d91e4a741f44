"""Where each sample goes: identity ids 0..N-1 and shard blocks, from bounded elements only.

The corpus order is: identities by (hash bucket, name), and inside an identity its images by key.
Shards are consecutive blocks of ``shard_size`` images of that order, so an identity's images are
contiguous and share a shard unless they straddle a boundary: a loader that draws P identities x K
images finds them together, and shard-level shuffling still mixes identities across batches.

It is a distributed zip-with-index over identities:

1. each identity (after the identity filters) reports its kept image count;
2. the counts are grouped by :func:`identity_bucket` (one element per bucket: the names and counts of
   about N / :data:`IDENTITY_BUCKETS` identities, ~100 at SYNTH-PEDES scale);
3. each bucket's totals (identities, images) form a side input of at most ``IDENTITY_BUCKETS`` pairs,
   turned into offsets;
4. each bucket then places its identities: id = bucket's identity offset + rank of the name in the
   bucket, first image position = bucket's image offset + images of the names before it;
5. the placement joins the identity's records (at most ``--max_images`` of them) by identity, with their
   JPEGs where those were set aside before the identity grouping, and the records get positions, ids and
   shard indices.

No element, side input or list grows with the corpus beyond O(buckets + one identity).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from common.digests import stable_int
from shards.sample import OPTIONAL_FIELDS, RECORD_FIELDS

IDENTITY_BUCKETS = 4096
ORDER_VERSION = f"identity-hash-{IDENTITY_BUCKETS}-v1"  # enters job.json: another order is another corpus


def identity_bucket(identity: str) -> int:
    return stable_int(identity) % IDENTITY_BUCKETS


def bucketed_count(identity_count: tuple[str, int]) -> tuple[int, tuple[str, int]]:
    identity, count = identity_count
    return identity_bucket(identity), (identity, count)


def bucket_totals(grouped: tuple[int, Iterable[tuple[str, int]]]) -> tuple[int, int, int]:
    """(bucket, identities in it, images in it)."""
    bucket, counts = grouped
    counts = list(counts)
    return bucket, len(counts), sum(count for _, count in counts)


def bucket_offsets(totals: Iterable[tuple[int, int, int]]) -> dict[int, tuple[int, int]]:
    """bucket -> (first identity id, first image position), buckets in ascending order."""
    offsets: dict[int, tuple[int, int]] = {}
    identities = images = 0
    for bucket, identity_count, image_count in sorted(totals):
        offsets[bucket] = (identities, images)
        identities += identity_count
        images += image_count
    return offsets


def place_bucket(
    grouped: tuple[int, Iterable[tuple[str, int]]], offsets: Mapping[int, tuple[int, int]]
) -> Iterator[tuple[str, tuple[int, int]]]:
    """(identity, (identity id, position of its first image)) for every identity of one bucket."""
    bucket, counts = grouped
    identity_id, position = offsets[bucket]
    for identity, count in sorted(counts):
        yield identity, (identity_id, position)
        identity_id += 1
        position += count


def place_samples(joined: tuple[str, Mapping[str, Iterable]], shard_size: int) -> Iterator[tuple[int, dict]]:
    """(shard index, sample) for each record of one identity, given its placement.

    ``joined`` is a CoGroupByKey result: ``{"records": [...], "placement": [(id, first position)]}``, and
    ``"images": [((key, source), jpg), ...]`` when the records travelled without their JPEGs (the identity's
    images set aside before the identity filters: those of dropped records are not used).
    """
    identity, parts = joined
    records = sorted(parts["records"], key=lambda record: (record["key"], record["source"]))
    if not records:  # the identity filters kept none of its images: only their set-aside JPEGs came
        return
    placements = list(parts["placement"])
    if len(placements) != 1:
        raise ValueError(f"identity {identity!r}: {len(placements)} placements for {len(records)} images")
    images: dict[tuple[str, str], bytes] = {}
    for image, jpg in parts.get("images", ()):
        images.setdefault(tuple(image), jpg)
    identity_id, position = placements[0]
    for offset, record in enumerate(records):
        fields = RECORD_FIELDS + tuple(field for field in OPTIONAL_FIELDS if field in record)
        json_record = {field: identity_id if field == "id" else record[field] for field in fields}
        jpg = record["jpg"] if "jpg" in record else images[(record["key"], record["source"])]
        yield (position + offset) // shard_size, {"__key__": record["key"], "jpg": jpg, "json": json_record}
