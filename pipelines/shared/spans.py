"""The ``attribute_spans`` both jobs store beside a record's texts, so that training need not run spaCy."""

from __future__ import annotations

from collections.abc import Sequence


def stored_spans(texts: Sequence[str]) -> list[list[list[int]]]:
    """A record's ``attribute_spans`` for its ``texts`` (captions, then prompt_caption): spac.language's
    phrase spans as JSON ``[start, end]`` pairs."""
    from spac import language  # spaCy takes ~0.7 s to import: the worker pays it, not the job's launch

    return [[[start, end] for start, end in spans] for spans in language.attribute_spans(texts)]
