"""Round trip: the captions SPAC writes for an attribute set must give back exactly that set.

Over 10,000 seeded random attribute sets (random groups unknown), every caption the captioner
returns is read by the spaCy extractor: every known group's value must be recovered, no mention
may resolve to a different value, and no unknown group may be mentioned at all. The one exception:
belongings "nothing", which people rarely say, is usually left unsaid (and sometimes said without the
word, "is not carrying anything"); when a caption names it, it must read back as "nothing".
"""

from __future__ import annotations

import random

from spac.attributes import UNKNOWN, Schema, load_schema
from spac.captioning.captioner import caption
from spac.language import AttributeMention, extract_attributes_batch

N_SETS = 10_000
P_UNKNOWN = 0.3


def _random_attributes(rng: random.Random, schema: Schema) -> dict[str, str]:
    return {g.name: UNKNOWN if rng.random() < P_UNKNOWN else rng.choice(g.values).phrase for g in schema.groups}


def _problems(attributes: dict[str, str], mentions: list[AttributeMention]) -> list[str]:
    problems = []
    for m in mentions:
        if attributes[m.group] == UNKNOWN:
            problems.append(f"mentions unknown group {m.group} as {m.text!r}")
        elif m.value is not None and m.value != attributes[m.group]:
            problems.append(f"{m.group}: {m.text!r} reads as {m.value!r}")
    for group, value in attributes.items():
        if value not in (UNKNOWN, "nothing") and not any(m.value == value for m in mentions):
            problems.append(f"{group} value {value!r} not recovered")
    return problems


def test_every_caption_gives_back_exactly_its_known_attributes() -> None:
    schema = load_schema()
    rng = random.Random(20240508)
    sets = [_random_attributes(rng, schema) for _ in range(N_SETS)]
    rows = [(attrs, c.text) for i, attrs in enumerate(sets) for c in caption(attrs, key=f"roundtrip-{i:05d}")]
    assert len(rows) >= 2 * N_SETS, "the captioner should write at least two captions per attribute set"

    mentions = extract_attributes_batch([text for _, text in rows], schema)
    failures = [
        f"{text!r} from {attrs}: {'; '.join(problems)}"
        for (attrs, text), found in zip(rows, mentions)
        if (problems := _problems(attrs, found))
    ]
    assert not failures, f"{len(failures)} of {len(rows)} captions fail the round trip, e.g.:\n" + "\n".join(
        failures[:10]
    )
