"""The ``attribute_spans`` both jobs store beside a record's texts, so that training need not run spaCy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spac.captioning.captioner import Caption


def stored_spans(texts: Sequence[str]) -> list[list[list[int]]]:
    """A record's ``attribute_spans`` for its ``texts`` (captions, then prompt_caption): spac.language's
    phrase spans as JSON ``[start, end]`` pairs."""
    from spac import language  # spaCy takes ~0.7 s to import: the worker pays it, not the job's launch

    return [[[start, end] for start, end in spans] for spans in language.attribute_spans(texts)]


def caption_spans(captions: Sequence[Caption]) -> tuple[list[list[list[int]]], int]:
    """:func:`stored_spans` of the captioner's texts: the spans it wrote each text with, spaCy's for a text
    without (``Caption.spans`` None: templates or a schema its golden test does not cover); and how many
    texts went to spaCy."""
    missing = [c.text for c in captions if c.spans is None]
    found = iter(stored_spans(missing) if missing else ())
    return [[list(s) for s in c.spans] if c.spans is not None else next(found) for c in captions], len(missing)
