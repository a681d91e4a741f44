"""A dataset's binary attributes <-> the six SPAC groups, through a mapping kept as data (templates/attribute_datasets).

A mapping file names the dataset's attributes in its own order and, per SPAC group, a list of *facets*. A
facet is a few attributes that each allow a set of the group's specific items, or each a set of its
colours (never both), e.g. PA-100K's sleeve facet: ShortSleeve -> {t-shirt, polo shirt, vest}, LongSleeve ->
{shirt, jacket, ...}. One image's bits (1, 0, or -1 = not said) give each group a
:class:`~spac.predictor.labels.GroupLabel`:

- a facet with positive attributes allows the union of their sets ("any of": two colours ticked allow both);
- a facet whose attributes are all 0 allows its ``otherwise``: by default the *complement* (every item or
  colour no attribute of the facet names, ``unknown`` / ``none`` included: Backpack = HandBag = ShoulderBag = 0
  leaves suitcase, umbrella, phone, nothing or not visible), or a given set (Female = 0 -> {man}), or ``any``
  (an all-zero facet says nothing, for datasets whose zeros mostly mean "not annotated");
- a facet with an attribute not said (-1), or a positive ``unrepresentable`` attribute (one the schema has no
  value for, such as a yellow shoe), says nothing;
- the facets of a group are intersected in file order; a facet that would leave no value (contradictory
  annotations) is skipped, so the earlier facet wins, and counted.

Mapped back (:meth:`DatasetMapping.bits`), a SPAC value sets exactly the attributes whose set contains its
item or colour. That is what the evaluation compares with the dataset's own bits, and it is consistent with the
forward direction: the labels of a value's own bits always allow that value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from common.errors import InputError
from spac.attributes import UNKNOWN, Schema, load_schema
from spac.predictor.labels import MASKED, NO_COLOUR, GroupLabel, candidates, group_colours, specific_items

BUNDLED = {"pa100k": "pa100k.yaml", "peta": "peta.yaml", "rap1": "rap1.yaml", "rap2": "rap2.yaml"}
FACTORS = ("items", "colours")
NOT_SAID = -1


class MappingError(InputError):
    """A malformed mapping file; the message names the file and the offending key."""


@dataclass(frozen=True)
class Facet:
    group: str
    factor: str  # "items" or "colours"
    rules: tuple[tuple[str, frozenset[str]], ...]  # (attribute, the items or colours it allows)
    otherwise: frozenset[str] | None  # allowed when every attribute is 0; None = says nothing
    unrepresentable: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetMapping:
    """One dataset's attributes and how they map to the SPAC groups (see the module docstring)."""

    dataset: str
    attributes: tuple[str, ...]
    facets: tuple[Facet, ...]
    unmapped: Mapping[str, str]
    aliases: Mapping[str, str]
    schema: Schema
    source: str = ""
    _column: Mapping[str, int] = field(repr=False, compare=False, default_factory=dict)
    _cache: dict = field(repr=False, compare=False, default_factory=dict)  # bits -> labels, filled on use

    @property
    def mapped(self) -> tuple[str, ...]:
        """The attributes some facet maps, in the dataset's order: those the evaluation can score."""
        named = {name for f in self.facets for name, _ in f.rules}
        return tuple(a for a in self.attributes if a in named)

    @property
    def groups(self) -> tuple[str, ...]:
        """The SPAC groups this dataset says something about."""
        return tuple(dict.fromkeys(f.group for f in self.facets))

    def column(self, name: str) -> int | None:
        """The column of an attribute (or alias) in :attr:`attributes`; None for a name the mapping does not know."""
        return self._column.get(self.aliases.get(name, name))

    def labels(self, row: Sequence[int]) -> tuple[dict[str, GroupLabel], int]:
        """One image's labels from its bits (aligned with :attr:`attributes`) and how many facets contradicted."""
        key = tuple(int(b) for b in row)
        if key not in self._cache:
            self._cache[key] = _compute_labels(self, key)
        labels, contradictions = self._cache[key]
        return dict(labels), contradictions

    def labels_for(self, matrix: np.ndarray) -> tuple[list[dict[str, GroupLabel]], int]:
        """Labels of every row (rows with the same bits share one dict) and the total of contradicted facets."""
        labels, contradictions, seen = [], 0, {}
        for row in np.asarray(matrix, dtype=np.int8):
            key = row.tobytes()
            if key not in seen:
                seen[key] = self.labels(row)
            labels.append(seen[key][0])
            contradictions += seen[key][1]
        return labels, contradictions

    def bits(self, attributes: Mapping[str, str]) -> np.ndarray:
        """The dataset's bits (int8, aligned with :attr:`attributes`) of a SPAC attribute dict; -1 where unmapped."""
        ordered = self.schema.validate(attributes)
        row = np.full(len(self.attributes), NOT_SAID, dtype=np.int8)
        for facet in self.facets:
            item, colour = _item_colour(self.schema, facet.group, ordered[facet.group])
            key = item if facet.factor == "items" else colour
            for name, allowed in facet.rules:
                row[self._column[name]] = int(key in allowed)
        return row


def _item_colour(schema: Schema, group: str, phrase: str) -> tuple[str, str]:
    if phrase == UNKNOWN:
        return UNKNOWN, NO_COLOUR
    value = schema.value(group, phrase)
    return value.item, value.colour or NO_COLOUR


def _compute_labels(mapping: DatasetMapping, row: tuple[int, ...]) -> tuple[dict[str, GroupLabel], int]:
    if len(row) != len(mapping.attributes):
        raise InputError(f"{mapping.dataset}: expected {len(mapping.attributes)} attribute bits, got {len(row)}")
    column = mapping._column
    labels: dict[str, GroupLabel] = {g: MASKED for g in mapping.schema.group_names}
    contradictions = 0
    for group in mapping.groups:
        pool = [(c.item, c.colour) for c in candidates(mapping.schema.group(group))]
        sets: dict[str, frozenset[str] | None] = {"items": None, "colours": None}
        for facet in (f for f in mapping.facets if f.group == group):
            if any(row[column[name]] == 1 for name in facet.unrepresentable):
                continue
            states = [row[column[name]] for name, _ in facet.rules]
            if any(s == 1 for s in states):
                allowed = frozenset().union(*(values for (_, values), s in zip(facet.rules, states) if s == 1))
            elif all(s == 0 for s in states) and all(row[column[n]] == 0 for n in facet.unrepresentable):
                if facet.otherwise is None:
                    continue
                allowed = facet.otherwise
            else:
                continue
            current = sets[facet.factor]
            narrowed = allowed if current is None else current & allowed
            trial = {**sets, facet.factor: narrowed}
            if not any(GroupLabel(trial["items"], trial["colours"]).allows(i, c) for i, c in pool):
                contradictions += 1
                continue
            sets = trial
        labels[group] = GroupLabel(sets["items"], sets["colours"])
    return labels, contradictions


# ---- loading and validating a mapping file ---------------------------------------------------------------


def _fail(source: str, key: str, problem: str) -> MappingError:
    return MappingError(f"{source}: {key}: {problem}")


def _names(source: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(source, key, f"expected a list of names, got {value!r}"[:200])
    return [v.strip() for v in value]


def _rule_set(source: str, key: str, spec: Any, group: str, choices: Mapping[str, set[str]]) -> tuple[str, frozenset]:
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in FACTORS:
        raise _fail(source, key, f"expected {{items: [...]}} or {{colours: [...]}}, got {spec!r}"[:200])
    factor, values = next(iter(spec.items()))
    names = _names(source, f"{key}.{factor}", values)
    for name in names:
        if name not in choices[factor]:
            kind = "item" if factor == "items" else "colour"
            raise _fail(
                source,
                f"{key}.{factor}",
                f"{name!r} is not a specific {kind} of group {group!r} "
                f"(choose from {', '.join(sorted(choices[factor]))})",
            )
    return factor, frozenset(names)


def _parse_facet(
    source: str, key: str, spec: Any, group: str, schema: Schema, attributes: set[str], used: dict[str, str]
) -> Facet:
    if not isinstance(spec, dict):
        raise _fail(source, key, "expected a mapping with 'attributes'")
    unexpected = set(spec) - {"attributes", "otherwise", "unrepresentable", "note"}
    if unexpected:
        raise _fail(source, f"{key}.{sorted(unexpected)[0]}", "unexpected key")
    g = schema.group(group)
    choices = {"items": {UNKNOWN, *specific_items(g)}, "colours": {NO_COLOUR, *group_colours(g)}}
    raw = spec.get("attributes")
    if not isinstance(raw, dict) or not raw:
        raise _fail(source, f"{key}.attributes", "expected a non-empty mapping of attribute -> {items|colours: [...]}")
    rules, factors = [], set()
    for name, rule in raw.items():
        name = str(name)
        _claim(source, f"{key}.attributes.{name}", name, attributes, used)
        factor, values = _rule_set(source, f"{key}.attributes.{name}", rule, group, choices)
        factors.add(factor)
        rules.append((name, values))
    if len(factors) > 1:
        raise _fail(source, f"{key}.attributes", "a facet's attributes must all allow items or all allow colours")
    factor = factors.pop()
    named = frozenset().union(*(values for _, values in rules))
    otherwise_spec = spec.get("otherwise", "complement")
    if otherwise_spec == "complement":
        otherwise: frozenset[str] | None = frozenset(choices[factor] - named)
    elif otherwise_spec == "any":
        otherwise = None
    else:
        other_factor, otherwise = _rule_set(source, f"{key}.otherwise", otherwise_spec, group, choices)
        if other_factor != factor:
            raise _fail(source, f"{key}.otherwise", f"must allow {factor} like the facet's attributes")
    unrepresentable = tuple(_names(source, f"{key}.unrepresentable", spec.get("unrepresentable", [])))
    for name in unrepresentable:
        _claim(source, f"{key}.unrepresentable", name, attributes, used)
    note = spec.get("note", "")
    if not isinstance(note, str):
        raise _fail(source, f"{key}.note", "expected text")
    return Facet(group, factor, tuple(rules), otherwise, unrepresentable)


def _claim(source: str, key: str, name: str, attributes: set[str], used: dict[str, str]) -> None:
    if name not in attributes:
        raise _fail(source, key, f"{name!r} is not one of the dataset's attributes")
    if name in used:
        raise _fail(source, key, f"{name!r} is already used at {used[name]}")
    used[name] = key


def parse_mapping(data: Any, source: str = "<mapping>", schema: Schema | None = None) -> DatasetMapping:
    """Validate parsed YAML and build a :class:`DatasetMapping`; :class:`MappingError` on any defect."""
    schema = schema if schema is not None else load_schema()
    if not isinstance(data, dict):
        raise _fail(source, "<top level>", "expected a mapping")
    unexpected = set(data) - {"dataset", "attributes", "aliases", "groups", "unmapped"}
    if unexpected:
        raise _fail(source, sorted(unexpected)[0], "unexpected key")
    dataset = data.get("dataset")
    if not isinstance(dataset, str) or not dataset.strip():
        raise _fail(source, "dataset", "expected the dataset's name")
    attributes = _names(source, "attributes", data.get("attributes"))
    duplicates = sorted({a for a in attributes if attributes.count(a) > 1})
    if duplicates:
        raise _fail(source, "attributes", f"{duplicates[0]!r} is listed twice")
    known = set(attributes)
    aliases = data.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and v in known for k, v in aliases.items()):
        raise _fail(source, "aliases", "expected a mapping of other spelling -> one of the attributes")
    groups = data.get("groups")
    if not isinstance(groups, dict):
        raise _fail(source, "groups", "expected a mapping of SPAC group -> list of facets")
    used: dict[str, str] = {}
    facets = []
    for group in schema.group_names:  # schema order, whatever the file's order
        specs = groups.get(group, [])
        if not isinstance(specs, list):
            raise _fail(source, f"groups.{group}", "expected a list of facets")
        facets += [
            _parse_facet(source, f"groups.{group}[{i}]", s, group, schema, known, used) for i, s in enumerate(specs)
        ]
    extra = sorted(set(groups) - set(schema.group_names))
    if extra:
        raise _fail(source, f"groups.{extra[0]}", f"not a SPAC group ({', '.join(schema.group_names)})")
    unmapped = data.get("unmapped") or {}
    if not isinstance(unmapped, dict) or not all(isinstance(v, str) and v.strip() for v in unmapped.values()):
        raise _fail(source, "unmapped", "expected a mapping of attribute -> why it maps to no group")
    for name in unmapped:
        _claim(source, f"unmapped.{name}", str(name), known, used)
    missing = [a for a in attributes if a not in used]
    if missing:
        raise _fail(source, "attributes", f"{missing[0]!r} is neither mapped nor listed under 'unmapped'")
    return DatasetMapping(
        dataset.strip(),
        tuple(attributes),
        tuple(facets),
        {str(k): v for k, v in unmapped.items()},
        dict(aliases),
        schema,
        source,
        {a: i for i, a in enumerate(attributes)},
    )


def load_mapping(name_or_path: str | Path, schema: Schema | None = None) -> DatasetMapping:
    """A bundled mapping by name (pa100k, peta, rap1, rap2) or a mapping YAML file."""
    if isinstance(name_or_path, str) and name_or_path in BUNDLED:
        resource = resources.files("templates").joinpath("attribute_datasets", BUNDLED[name_or_path])
        text, source = resource.read_text(encoding="utf-8"), f"templates/attribute_datasets/{BUNDLED[name_or_path]}"
    else:
        path = Path(name_or_path)
        try:
            text, source = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise MappingError(f"{path}: cannot read mapping file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        raise MappingError(f"{source}: {where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_mapping(data, source, schema)
