"""Random identities for the renderer: one known value per attribute group, every specific value reachable
(generic and bare values, such as "black hair" or "jeans", are what annotators write, not what a rendered
person wears: a rendered garment always has its subtype and colour)."""

from __future__ import annotations

import random

from spac.attributes import AttributeValue, Schema, load_schema

# Relative item weights per gender; items not listed weigh 1. They make women wear skirts more often
# than men, but every weight stays positive so every schema value can still be drawn for anyone.
_ITEM_WEIGHTS: dict[str, dict[str, float]] = {
    "man": {
        "long hair": 0.5,
        "ponytail": 0.4,
        "short hair": 3.0,
        "blouse": 0.3,
        "skirt": 0.15,
        "long skirt": 0.1,
        "dress": 0.1,
        "leggings": 0.3,
        "high heels": 0.1,
        "handbag": 0.4,
    },
    "woman": {
        "long hair": 3.0,
        "ponytail": 2.0,
        "blouse": 2.0,
        "skirt": 1.3,
        "long skirt": 1.0,
        "dress": 1.2,
        "handbag": 1.5,
    },
}

# Sampling tables per schema object: group -> (items, item weights per gender, values per item).
_Table = dict[str, tuple[list[str], dict[str, list[float]], dict[str, list[AttributeValue]]]]
_tables: dict[int, tuple[Schema, _Table]] = {}


def _table(schema: Schema) -> _Table:
    cached = _tables.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    table: _Table = {}
    for group in schema.groups:
        by_item: dict[str, list[AttributeValue]] = {}
        for value in group.values:
            if value.specific:
                by_item.setdefault(value.item, []).append(value)
        items = list(by_item)
        weights = {g: [_ITEM_WEIGHTS.get(g, {}).get(i, 1.0) for i in items] for g in ("man", "woman", "")}
        table[group.name] = (items, weights, by_item)
    _tables[id(schema)] = (schema, table)
    return table


def random_identity(rng: random.Random, schema: Schema | None = None) -> dict[str, str]:
    """A full set of known attribute values: an item per group (gender-weighted), then a palette colour uniformly."""
    schema = schema or load_schema()
    table = _table(schema)
    attributes: dict[str, str] = {}
    gender = ""
    for group in schema.group_names:
        items, weights, by_item = table[group]
        item = rng.choices(items, weights=weights[gender if gender in weights else ""])[0]
        value = rng.choice(by_item[item])
        attributes[group] = value.phrase
        if group == "gender":
            gender = value.item
    return attributes
