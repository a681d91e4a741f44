"""Find attribute phrases, with character spans, in any caption: ours or a human annotator's.

A blank spaCy English pipeline (tokenizer + lookup lemmatizer; no trained model is needed) and
matchers built from the attribute schema: every item name and synonym, their plurals and
hyphen/space spellings, gender words, and colours either directly before an item ("a navy blue
tee"), before it with the schema's ``descriptors`` in between ("a black leather jacket", "a white long
sleeve shirt"), or between an item's modifier and its head noun ("long brown hair", "long black skirt").
A colour may carry one of the schema's ``colour_modifiers`` ("dark red" reads as red) unless the
modified form is a colour synonym of its own ("dark blue" is navy). Overlapping matches keep the longest
("polo shirt" over "shirt").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import spacy
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc, Span

from spac.attributes import GENERIC_NOUNS, UNKNOWN, Attributes, Schema, load_schema


@dataclass(frozen=True)
class AttributeMention:
    """One attribute phrase found in a text; ``text == source[start:end]``.

    ``value`` is the schema phrase of ``group`` that ``item`` and ``colour`` resolve to, else None.
    """

    group: str
    item: str
    colour: str | None
    value: str | None
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class _Item:
    group: str
    name: str
    coloured: bool
    plural: bool


def _spelling_variants(form: str) -> set[str]:
    """'t shirt' also as 't-shirt' and the reverse: human captions use both."""
    return {form, form.replace(" ", "-"), form.replace("-", " ")}


def _is_plural_or_base(token) -> bool:
    """Guard for lemma matches: accept 'dresses' or 'ladies' but not the verb forms 'dressed' or 'topped'."""
    return token.lower_ == token.lemma_.lower() or token.lower_.endswith(("s", "men"))


class _Extractor:
    """The spaCy pipeline and matchers for one schema; build once, reuse for every text."""

    def __init__(self, schema: Schema) -> None:
        self.nlp = spacy.blank("en")
        self.nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        self.nlp.initialize()
        vocab = self.nlp.vocab
        self.colours = PhraseMatcher(vocab, attr="LOWER")
        self.literal = PhraseMatcher(vocab, attr="LOWER")
        self.lemma = PhraseMatcher(vocab, attr="LEMMA")
        self.split = Matcher(vocab)
        self.split_forms: dict[tuple[str, ...], str] = {}
        self._split_prefix_length: dict[int, int] = {}
        self.items: dict[str, _Item] = {}
        self.values = {(v.group, v.item, v.colour): v.phrase for g in schema.groups for v in g.values}

        colour_tokens: set[str] = set()
        named = {
            colour.name: set().union(*(_spelling_variants(f) for f in (colour.name, *colour.synonyms)))
            for colour in schema.colours.values()
        }
        explicit = set().union(*named.values())
        for name, forms in named.items():
            shaded = {f"{m} {f}" for m in schema.colour_modifiers for f in forms}
            forms = forms | set().union(*(_spelling_variants(f) for f in shaded)) - (explicit - forms)
            docs = [self.nlp.make_doc(f) for f in sorted(forms)]
            colour_tokens.update(t.lower_ for d in docs for t in d if t.is_alpha)
            self.colours.add(name, docs)
        self._colour_tokens = sorted(colour_tokens)
        self.descriptors = {t.lower_ for d in self.nlp.pipe(schema.descriptors) for t in d} | (
            {"-"} if schema.descriptors else set()
        )

        for group in schema.groups:
            forms_of_items: set[str] = set()
            for item in group.items:
                self._add_item(_Item(group.name, item.name, item.coloured, item.plural), (item.name, *item.synonyms))
                forms_of_items.update((item.name, *item.synonyms))
            for noun in GENERIC_NOUNS.get(group.name, ()):
                if noun not in forms_of_items:  # version 2 has generic items of these names
                    self._add_item(_Item(group.name, noun, True, noun.endswith("s")), (noun,))
        self._build_split_matcher()

    def _add_item(self, item: _Item, forms: Iterable[str]) -> None:
        key = f"{item.group}/{item.name}"
        self.items[key] = item
        forms = sorted(set().union(*(_spelling_variants(f) for f in forms)))
        literal = set(forms)
        if not item.plural:
            # Lemmas find 'dresses' and 'ladies'; a plain '+s' covers what the lookup table lacks ('hoodies').
            literal.update(f"{f}s" for f in forms if not f.endswith("s"))
            self.lemma.add(key, list(self.nlp.pipe(forms)))
        self.literal.add(key, [self.nlp.make_doc(f) for f in sorted(literal)])
        if item.coloured:
            self._add_split_forms(key, item, forms)

    def _add_split_forms(self, key: str, item: _Item, forms: list[str]) -> None:
        """Remember multi-word forms so a colour may sit before their head noun: 'short black hair'."""
        for form in forms:
            *prefix, head = (t.lower_ for t in self.nlp.make_doc(form))
            for head_form in [head] if item.plural else [head, f"{head}s", f"{head}es"]:
                if prefix:
                    self.split_forms[(*prefix, head_form)] = key

    def _build_split_matcher(self) -> None:
        """One Matcher pattern per prefix length (few patterns keep it fast); split_forms confirms a match."""
        by_length: dict[int, list[tuple[str, ...]]] = {}
        for words in self.split_forms:
            by_length.setdefault(len(words) - 1, []).append(words)
        for length, all_words in sorted(by_length.items()):
            pattern = [{"LOWER": {"IN": sorted({w[i] for w in all_words})}} for i in range(length)]
            pattern.append({"LOWER": {"IN": self._colour_tokens}, "OP": "+"})
            pattern.append({"LOWER": {"IN": sorted({w[-1] for w in all_words})}})
            self.split.add(f"prefix{length}", [pattern])
            self._split_prefix_length[self.nlp.vocab.strings[f"prefix{length}"]] = length

    def docs(self, texts: Iterable[str], batch_size: int = 256) -> Iterable[Doc]:
        # Lower-case first so the case-sensitive lookup lemmatizer sees 'Dresses' as 'dresses'; the
        # character offsets stay valid because only length-preserving lower-casing is used.
        return self.nlp.pipe((_lower_same_length(t) for t in texts), batch_size=batch_size)

    def mentions(self, doc: Doc, text: str) -> list[AttributeMention]:
        strings = self.nlp.vocab.strings
        colour_spans = spacy.util.filter_spans([Span(doc, s, e, label=m) for m, s, e in self.colours(doc)])
        colour_of = {span.end: (span.start, span.label_) for span in colour_spans}

        candidates: list[tuple[int, int, str, str | None]] = []
        for match_id, s, e in self.literal(doc):
            candidates.append((s, e, strings[match_id], None))
        for match_id, s, e in self.lemma(doc):
            if all(_is_plural_or_base(t) for t in doc[s:e]):
                candidates.append((s, e, strings[match_id], None))
        for match_id, s, e in self.split(doc):
            length = self._split_prefix_length[match_id]
            key = self.split_forms.get((*(t.lower_ for t in doc[s : s + length]), doc[e - 1].lower_))
            if key is not None:
                inside = [c for end, (start, c) in colour_of.items() if start > s and end < e]
                candidates.append((s, e, key, inside[-1] if inside else None))

        taken: set[int] = set()
        kept = []
        for s, e, key, colour in sorted(candidates, key=lambda c: (c[0] - c[1], c[0])):
            if taken.isdisjoint(range(s, e)):
                taken.update(range(s, e))
                kept.append((s, e, key, colour))

        mentions = []
        for s, e, key, colour in sorted(kept):
            item = self.items[key]
            if item.coloured and colour is None:
                colour_end = s
                while (
                    colour_end not in colour_of
                    and colour_end > 0
                    and colour_end - 1 not in taken
                    and doc[colour_end - 1].lower_ in self.descriptors
                ):
                    colour_end -= 1  # "a black leather jacket": skip the descriptors back to the colour
                if colour_end in colour_of:
                    colour_start, colour = colour_of[colour_end]
                    if taken.isdisjoint(range(colour_start, colour_end)):
                        s = colour_start
                    else:
                        colour = None
            value = self.values.get((item.group, item.name, colour if item.coloured else None))
            start, end = doc[s].idx, doc[e - 1].idx + len(doc[e - 1])
            mentions.append(AttributeMention(item.group, item.name, colour, value, start, end, text[start:end]))
        return mentions


def _lower_same_length(text: str) -> str:
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text


# One extractor per schema object (building the matchers takes a while); the schema is kept in the
# value so its id cannot be reused while the entry lives.
_EXTRACTORS: dict[int, tuple[Schema, _Extractor]] = {}


def _extractor(schema: Schema | None) -> _Extractor:
    schema = load_schema() if schema is None else schema
    entry = _EXTRACTORS.get(id(schema))
    if entry is None:
        entry = _EXTRACTORS[id(schema)] = (schema, _Extractor(schema))
    return entry[1]


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"expected a caption string, got {type(text).__name__}")
    return text


def extract_attributes(text: str, schema: Schema | None = None) -> list[AttributeMention]:
    """All attribute mentions in ``text``, sorted by start; overlapping matches keep the longest."""
    return extract_attributes_batch([text], schema)[0]


def extract_attributes_batch(
    texts: Iterable[str], schema: Schema | None = None, batch_size: int = 256
) -> list[list[AttributeMention]]:
    """:func:`extract_attributes` for many texts at once (spaCy's ``nlp.pipe``, much faster per text)."""
    extractor = _extractor(schema)
    texts = [_check_text(t) for t in texts]
    return [extractor.mentions(doc, text) for doc, text in zip(extractor.docs(texts, batch_size), texts)]


def attribute_spans(
    texts: Iterable[str], schema: Schema | None = None, batch_size: int = 256
) -> list[list[tuple[int, int]]]:
    """For each text, the ``(start, end)`` character spans of its attribute mentions, in order: what IAP
    masks, and what a corpus record stores so that training need not run spaCy."""
    return [[(m.start, m.end) for m in mentions] for mentions in extract_attributes_batch(texts, schema, batch_size)]


def attributes_from_mentions(mentions: Iterable[AttributeMention], schema: Schema | None = None) -> Attributes:
    """Group -> value from the first resolvable mention of each group; the other groups ``unknown``."""
    schema = load_schema() if schema is None else schema
    attributes = {name: UNKNOWN for name in schema.group_names}
    for mention in mentions:
        if mention.value is not None and attributes[mention.group] == UNKNOWN:
            attributes[mention.group] = mention.value
    return attributes


def attributes_from_text(text: str, schema: Schema | None = None) -> Attributes:
    """Mine attribute labels from one caption (e.g. a human-written CUHK-PEDES description)."""
    return attributes_from_mentions(extract_attributes(text, schema), schema)
