"""Partial attribute labels: what a source of labels says of each group, down to "item known, colour not".

The predictor's heads are factorised (item + colour, spac.predictor.model), and so is a label: per group, the
set of items it allows and the set of colours it allows, either of which may be ``None`` (not said):

- a rendered person's ``red t-shirt`` allows item {t-shirt} and colour {red}; its ``unknown`` (the group is
  not visible) allows item {unknown} and colour {none};
- PA-100K's ShortSleeve allows items {t-shirt, polo shirt, vest} and says nothing of the colour;
- a caption's bare "jeans" allows item {jeans}, colour not said; its generic "black hair" allows every
  specific hair item, colour {black};
- a group a source says nothing about is :data:`MASKED` (both ``None``): the loss skips it.

A label allows the *candidate* values (``unknown`` and the schema's specific values, the ones a predictor is
trained to predict) whose item and colour it allows; ``none`` (:data:`NO_COLOUR`) is the colour slot of
uncoloured items (phone, man) and of ``unknown``. Generic and bare values are never candidates: a predictor
learns the subtype and the colour, and a label that does not say them simply leaves them open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from common.errors import InputError
from spac.attributes import UNKNOWN, AttributeGroup, AttributeValue, Schema

NO_COLOUR = "none"


@dataclass(frozen=True)
class GroupLabel:
    """Allowed items (``unknown`` = not visible) and allowed colours (``none`` = no colour); None = not said."""

    items: frozenset[str] | None = None
    colours: frozenset[str] | None = None

    @property
    def masked(self) -> bool:
        return self.items is None and self.colours is None

    def allows(self, item: str, colour: str) -> bool:
        return (self.items is None or item in self.items) and (self.colours is None or colour in self.colours)


MASKED = GroupLabel()
PartialLabels = Mapping[str, GroupLabel]  # group -> label; a group left out is masked


def group_label(items: Iterable[str] | None = None, colours: Iterable[str] | None = None) -> GroupLabel:
    return GroupLabel(None if items is None else frozenset(items), None if colours is None else frozenset(colours))


@dataclass(frozen=True)
class Candidate:
    """One value a predictor may predict: its label index in ``AttributeGroup.labels``, phrase, item, colour."""

    index: int
    phrase: str
    item: str
    colour: str


def candidates(group: AttributeGroup) -> tuple[Candidate, ...]:
    """``unknown`` (index 0) and the group's specific values, with their colour slot (``none`` if uncoloured)."""
    found = [Candidate(0, UNKNOWN, UNKNOWN, NO_COLOUR)]
    found += [
        Candidate(i + 1, v.phrase, v.item, v.colour or NO_COLOUR) for i, v in enumerate(group.values) if v.specific
    ]
    return tuple(found)


def specific_items(group: AttributeGroup) -> tuple[str, ...]:
    """The group's items that have a specific value (all but the generic ones), in schema order."""
    return tuple(i.name for i in group.items if not i.generic)


def group_colours(group: AttributeGroup) -> tuple[str, ...]:
    """The colours of the group's values, in palette order."""
    return tuple(dict.fromkeys(v.colour for v in group.values if v.colour is not None))


def allowed(group: AttributeGroup, label: GroupLabel) -> tuple[Candidate, ...]:
    """The candidate values ``label`` allows (all of them when it is masked)."""
    return tuple(c for c in candidates(group) if label.allows(c.item, c.colour))


def accepts(group: AttributeGroup, phrase: str, label: GroupLabel) -> bool:
    """Whether predicting ``phrase`` agrees with ``label``: a candidate value that the label allows."""
    if phrase == UNKNOWN:
        return label.allows(UNKNOWN, NO_COLOUR)
    value = group.value(phrase)
    return value.specific and label.allows(value.item, value.colour or NO_COLOUR)


def check_label(group: AttributeGroup, label: GroupLabel, where: str = "label") -> GroupLabel:
    """InputError (one line, naming ``where``) for a label with a foreign item or colour or one no value meets."""
    items = {UNKNOWN, *specific_items(group)}
    colours = {NO_COLOUR, *group_colours(group)}
    for kind, chosen, known in (("item", label.items, items), ("colour", label.colours, colours)):
        unknown = sorted((chosen or set()) - known)
        if unknown:
            raise InputError(f"{where}: {unknown[0]!r} is not a specific {kind} of group {group.name!r}")
    if not label.masked and not allowed(group, label):
        raise InputError(
            f"{where}: no value of group {group.name!r} has one of the items "
            f"{sorted(label.items or ['any'])} and one of the colours {sorted(label.colours or ['any'])}"
        )
    return label


def _value_label(
    value: AttributeValue, group: AttributeGroup, generic_items: Mapping[str, Sequence[str]]
) -> GroupLabel:
    colour = value.colour or NO_COLOUR
    if value.generic:
        items = generic_items.get(value.item)
        if items is None:  # a generic item stands for every specific item of its group that has the same colouring
            coloured = {i.name: i.coloured for i in group.items}
            items = [i for i in specific_items(group) if coloured[i] == (value.colour is not None or value.bare)]
        return group_label(items, None if value.bare else [colour])
    if value.bare:
        return group_label([value.item], None)
    return group_label([value.item], [colour])


def exact_labels(
    attributes: Mapping[str, str], schema: Schema, generic_items: Mapping[str, Sequence[str]] | None = None
) -> dict[str, GroupLabel]:
    """Labels of fully labelled attributes (a rendered person's): ``unknown`` is the class "not visible".

    A generic or bare value (never rendered) allows what it leaves open, as in :func:`said_labels`.
    """
    return _labels(
        schema.validate(attributes),
        schema,
        generic_items or {},
        unknown=GroupLabel(frozenset({UNKNOWN}), frozenset({NO_COLOUR})),
    )


def said_labels(
    attributes: Mapping[str, str], schema: Schema, generic_items: Mapping[str, Sequence[str]] | None = None
) -> dict[str, GroupLabel]:
    """Labels of what someone said (labels mined from captions): ``unknown`` is "not said", so masked.

    A bare value ("jeans") leaves the colour open; a generic one ("black hair", "a bag") allows the specific
    items ``generic_items`` lists for it (default: every specific item of its group with the same colouring).
    """
    return _labels(schema.validate(attributes), schema, generic_items or {}, unknown=MASKED)


def _labels(
    ordered: Mapping[str, str], schema: Schema, generic_items: Mapping[str, Sequence[str]], unknown: GroupLabel
) -> dict[str, GroupLabel]:
    labels = {}
    for group in schema.groups:
        phrase = ordered[group.name]
        labels[group.name] = unknown if phrase == UNKNOWN else _value_label(group.value(phrase), group, generic_items)
    return labels
