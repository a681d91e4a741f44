"""Random identities: every specific schema value reachable (no generic or bare one), item choice leaning on gender."""

import random
from collections import Counter

from spac.attributes import load_schema
from spac.render import random_identity

SCHEMA = load_schema()


def test_random_identity_reaches_every_value_and_leans_on_gender():
    rng = random.Random(0)
    seen = {g: Counter() for g in SCHEMA.group_names}
    skirts = Counter()
    for _ in range(20000):
        attributes = random_identity(rng)
        for group, value in attributes.items():
            seen[group][value] += 1
        skirts[attributes["gender"]] += SCHEMA.value("lower", attributes["lower"]).item == "skirt"
    for group in SCHEMA.groups:
        assert set(seen[group.name]) == {v.phrase for v in group.values if v.specific}, group.name
    assert skirts["woman"] > 3 * skirts["man"] > 0
