"""The SPAC attribute schema: six groups of colour + item phrases, loaded from templates/attributes.yaml.

A person's attributes are a plain ``dict[str, str]`` from group name to phrase (or ``"unknown"``),
ordered as the schema's groups. The released SYNTH-PEDES format joins those phrases with commas.

Some values say less than a rendered person shows (schema version 2): those of a *generic* item
("black hair", "a white top", "black shoes", "a brown bag": what annotators write without naming a
subtype) and the *bare* value of a coloured item, without its colour ("a backpack", "jeans"). They
exist so labels mined from human captions can be written down; ``AttributeValue.specific`` is False
for them, and the renderer (hence a predictor trained on rendered people) never uses them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from common.errors import InputError

UNKNOWN = "unknown"
GROUP_ORDER = ("gender", "hair", "upper", "lower", "shoes", "belongings")
# Nouns that name a group without naming one of its values: the language tools read them as mentions of
# the group (unless the schema has an item of that name, as version 2 has for all of these: then they
# are that generic item), and template text may not use them.
GENERIC_NOUNS: dict[str, tuple[str, ...]] = {
    "hair": ("hair",),
    "shoes": ("shoes", "shoe", "footwear"),
    "belongings": ("bag",),
}

Attributes = dict[str, str]


class SchemaError(InputError):
    """A malformed attribute schema file; the message names the file and the offending key."""


@dataclass(frozen=True)
class Colour:
    name: str
    rgb: tuple[int, int, int]
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttributeValue:
    """One known value of a group, e.g. group='upper', item='t-shirt', colour='red', phrase='red t-shirt'.

    ``generic``: the item names no subtype ("black hair", "white top"); ``bare``: a coloured item's value
    without a colour ("jeans", "backpack").
    """

    group: str
    item: str
    colour: str | None
    phrase: str
    plural: bool = False
    generic: bool = False
    bare: bool = False

    @property
    def specific(self) -> bool:
        """A subtype item with its colour (when it has one): what the renderer draws and a rendered-people
        predictor is trained on."""
        return not (self.generic or self.bare)


@dataclass(frozen=True)
class Item:
    name: str
    plural: bool
    coloured: bool
    pattern: str
    synonyms: tuple[str, ...] = ()
    generic: bool = False  # names no subtype ("hair", "top", "shoes", "bag")
    bare: bool = False  # a coloured item that also has a value without colour

    @property
    def bare_pattern(self) -> str:
        """The pattern with the colour left out.

        "{colour} {item}" -> "{item}", "short {colour} hair" -> "short hair".
        """
        return " ".join(self.pattern.replace("{colour}", " ").split())


@dataclass(frozen=True)
class AttributeGroup:
    name: str
    items: tuple[Item, ...]
    values: tuple[AttributeValue, ...]
    _by_phrase: Mapping[str, AttributeValue] = field(repr=False, compare=False, default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        """Class labels for a predictor: index 0 is ``unknown``, then every value's phrase."""
        return (UNKNOWN, *(v.phrase for v in self.values))

    def value(self, phrase: str) -> AttributeValue:
        try:
            return self._by_phrase[phrase]
        except KeyError:
            raise KeyError(f"{phrase!r} is not a value of attribute group {self.name!r}") from None

    def __contains__(self, phrase: str) -> bool:
        return phrase == UNKNOWN or phrase in self._by_phrase


@dataclass(frozen=True)
class Schema:
    """``colour_modifiers`` shade a colour without changing it ("dark red" is red); ``descriptors`` may
    stand between a colour and its item in human text ("black leather jacket"). Both only guide reading."""

    version: int
    colours: Mapping[str, Colour]
    groups: tuple[AttributeGroup, ...]
    source: str = ""
    colour_modifiers: tuple[str, ...] = ()
    descriptors: tuple[str, ...] = ()

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups)

    def group(self, name: str) -> AttributeGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no attribute group {name!r}; groups are {', '.join(self.group_names)}")

    def value(self, group: str, phrase: str) -> AttributeValue:
        return self.group(group).value(phrase)

    def validate(self, attributes: Mapping[str, str]) -> Attributes:
        """Check a group->phrase mapping against the schema; return it ordered, missing groups as unknown."""
        extra = set(attributes) - set(self.group_names)
        if extra:
            raise InputError(f"unknown attribute group(s): {', '.join(sorted(extra))}")
        ordered: Attributes = {}
        for g in self.groups:
            phrase = attributes.get(g.name, UNKNOWN)
            if phrase not in g:
                raise InputError(f"{phrase!r} is not a value of attribute group {g.name!r}")
            ordered[g.name] = phrase
        return ordered

    def to_released(self, attributes: Mapping[str, str]) -> str:
        """The released SYNTH-PEDES form: the six phrases comma-joined in group order."""
        ordered = self.validate(attributes)
        return ",".join(ordered[name] for name in self.group_names)

    def from_released(self, text: str) -> Attributes:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != len(self.groups):
            raise InputError(f"expected {len(self.groups)} comma-separated attributes, got {len(parts)}: {text!r}")
        return self.validate(dict(zip(self.group_names, parts)))


def _fail(source: str, key: str, problem: str) -> SchemaError:
    return SchemaError(f"{source}: {key}: {problem}")


def _expect(source: str, key: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _fail(source, key, f"expected {what}, got {value!r}")
    return value


def _strings(source: str, key: str, value: Any) -> tuple[str, ...]:
    value = _expect(source, key, value if value is not None else [], list, "a list of strings")
    for i, s in enumerate(value):
        if not isinstance(s, str) or not s.strip():
            raise _fail(source, f"{key}[{i}]", f"expected a non-empty string, got {s!r}")
    return tuple(s.strip().lower() for s in value)


def _parse_colours(source: str, raw: Any) -> dict[str, Colour]:
    raw = _expect(source, "colours", raw, dict, "a mapping of colour name to {rgb, synonyms}")
    colours = {}
    for name, spec in raw.items():
        key = f"colours.{name}"
        spec = _expect(source, key, spec, dict, "a mapping with 'rgb'")
        rgb = spec.get("rgb")
        if not (isinstance(rgb, list) and len(rgb) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in rgb)):
            raise _fail(source, f"{key}.rgb", f"expected three integers 0-255, got {rgb!r}")
        colours[str(name)] = Colour(str(name), tuple(rgb), _strings(source, f"{key}.synonyms", spec.get("synonyms")))
    return colours


def _parse_item(source: str, key: str, spec: Any, coloured_by_default: bool, bare_by_default: bool) -> Item:
    spec = _expect(source, key, spec, dict, "a mapping with 'item'")
    unexpected = set(spec) - {"item", "plural", "coloured", "pattern", "synonyms", "generic", "bare"}
    if unexpected:
        raise _fail(source, f"{key}.{sorted(unexpected)[0]}", "unexpected key")
    name = _expect(source, f"{key}.item", spec.get("item"), str, "an item name")
    plural = _expect(source, f"{key}.plural", spec.get("plural", False), bool, "true or false")
    coloured = _expect(source, f"{key}.coloured", spec.get("coloured", coloured_by_default), bool, "true or false")
    default_pattern = "{colour} {item}" if coloured else "{item}"
    pattern = _expect(source, f"{key}.pattern", spec.get("pattern", default_pattern), str, "a pattern string")
    if coloured != ("{colour}" in pattern):
        raise _fail(
            source, f"{key}.pattern", "a coloured item's pattern must contain {colour}, an uncoloured one must not"
        )
    generic = _expect(source, f"{key}.generic", spec.get("generic", False), bool, "true or false")
    bare = _expect(source, f"{key}.bare", spec.get("bare", bare_by_default and coloured), bool, "true or false")
    if bare and not coloured:
        raise _fail(source, f"{key}.bare", "only a coloured item has a bare (colourless) value")
    return Item(
        name.strip().lower(),
        plural,
        coloured,
        pattern,
        _strings(source, f"{key}.synonyms", spec.get("synonyms")),
        generic,
        bare,
    )


def _parse_group(source: str, index: int, spec: Any, palettes: Mapping[str, tuple[str, ...]]) -> AttributeGroup:
    key = f"groups[{index}]"
    spec = _expect(source, key, spec, dict, "a mapping with 'name' and 'items'")
    name = _expect(source, f"{key}.name", spec.get("name"), str, "a group name")
    palette_name = spec.get("palette")
    palette: tuple[str, ...] = ()
    if palette_name is not None:
        if palette_name not in palettes:
            raise _fail(source, f"{key}.palette", f"no palette named {palette_name!r}")
        palette = palettes[palette_name]
    unexpected = set(spec) - {"name", "palette", "bare", "items"}
    if unexpected:
        raise _fail(source, f"{key}.{sorted(unexpected)[0]}", "unexpected key")
    bare = _expect(source, f"{key}.bare", spec.get("bare", False), bool, "true or false")
    raw_items = _expect(source, f"{key}.items", spec.get("items"), list, "a non-empty list of items")
    if not raw_items:
        raise _fail(source, f"{key}.items", "expected a non-empty list of items")
    items = tuple(_parse_item(source, f"{key}.items[{i}]", it, bool(palette), bare) for i, it in enumerate(raw_items))
    values = []
    for i, item in enumerate(items):
        if item.name == UNKNOWN:
            raise _fail(source, f"{key}.items[{i}].item", "'unknown' is implicit in every group; do not list it")
        if item.coloured and not palette:
            raise _fail(source, f"{key}.items[{i}]", f"coloured item in group {name!r}, which has no palette")
        for colour in palette if item.coloured else (None,):
            phrase = item.pattern.format(colour=colour, item=item.name)
            values.append(AttributeValue(name, item.name, colour, phrase, item.plural, item.generic))
        if item.bare:
            phrase = item.bare_pattern.format(item=item.name)
            values.append(AttributeValue(name, item.name, None, phrase, item.plural, item.generic, bare=True))
    by_phrase: dict[str, AttributeValue] = {}
    for v in values:
        if v.phrase in by_phrase:
            raise _fail(source, f"{key}.items", f"two items give the same phrase {v.phrase!r}")
        by_phrase[v.phrase] = v
    return AttributeGroup(name, items, tuple(values), by_phrase)


def parse_schema(data: Any, source: str = "<schema>") -> Schema:
    """Validate parsed YAML data and build a :class:`Schema`; raise :class:`SchemaError` on any defect."""
    data = _expect(source, "<top level>", data, dict, "a mapping")
    version = _expect(source, "schema_version", data.get("schema_version"), int, "an integer")
    colours = _parse_colours(source, data.get("colours"))
    raw_palettes = _expect(source, "palettes", data.get("palettes", {}), dict, "a mapping of palette name to colours")
    palettes = {}
    for pname, members in raw_palettes.items():
        members = _strings(source, f"palettes.{pname}", members)
        for i, c in enumerate(members):
            if c not in colours:
                raise _fail(source, f"palettes.{pname}[{i}]", f"colour {c!r} is not defined under 'colours'")
        palettes[str(pname)] = members
    modifiers = _strings(source, "colour_modifiers", data.get("colour_modifiers"))
    descriptors = _strings(source, "descriptors", data.get("descriptors"))
    colour_words = {w for c in colours.values() for w in (c.name, *c.synonyms)}
    for key, words in (("colour_modifiers", modifiers), ("descriptors", descriptors)):
        for i, word in enumerate(words):
            if word in colour_words:
                raise _fail(
                    source,
                    f"{key}[{i}]",
                    f"{word!r} is a colour; a {key[:-1].replace('_', ' ')} only shades or describes one",
                )
    raw_groups = _expect(source, "groups", data.get("groups"), list, "a list of groups")
    groups = tuple(_parse_group(source, i, g, palettes) for i, g in enumerate(raw_groups))
    names = tuple(g.name for g in groups)
    if names != GROUP_ORDER:
        raise _fail(
            source, "groups", f"expected the groups {', '.join(GROUP_ORDER)} in that order, got {', '.join(names)}"
        )
    return Schema(version, colours, groups, source, modifiers, descriptors)


def load_schema(path: str | Path | None = None) -> Schema:
    """Load and validate a schema file; with no path, the bundled templates/attributes.yaml (cached)."""
    if path is None:
        return _default_schema()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file: {exc.strerror or exc}") from None
    return _parse_text(text, str(path))


def _parse_text(text: str, source: str) -> Schema:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "<yaml>"
        raise SchemaError(f"{source}: {where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_schema(data, source)


@functools.lru_cache(maxsize=1)
def _default_schema() -> Schema:
    resource = resources.files("templates").joinpath("attributes.yaml")
    return _parse_text(resource.read_text(encoding="utf-8"), "templates/attributes.yaml")
