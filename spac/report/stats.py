"""The statistics of `spac report`, as accumulators fed one parquet index (or one record) at a time.

Nothing here opens a file: :mod:`spac.report.reading` reads the corpus and feeds these.

- :class:`IndexCounts` (every index, a few columns, counted by pyarrow in C++): the attribute values per
  group (from the released ``"a,b,c,d,e,f"`` column), texts per image, the share of each style (a
  record's ``prompt_caption`` counts as the style ``template``, as the captioner names it), and the
  identity of every sample (an int64 array: images per identity need every index, identities span shards).
- :class:`TextStats` (the texts of the indexes read whole): words per text, vocabulary, the distinct-text
  ratio and the mean word overlap (Jaccard) between the texts of one image.
- :class:`LabelAccuracy`: per group, how often the corpus value equals a ground-truth label.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.errors import InputError
from shards.sample import GROUPS

TEMPLATE_STYLE = "template"  # the style name of a record's prompt_caption (spac.captioning.captioner's convention)
UNKNOWN = "unknown"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
INDEX_COUNT_COLUMNS = ["id", "n_texts", "attributes", "styles", "prompt_caption"]
TEXT_COLUMNS = ["captions", "styles", "prompt_caption"]


def words(text: str) -> list[str]:
    """The lower-case words of a text (letters and digits; an apostrophe suffix such as "'s" stays on)."""
    return _WORD.findall(text.lower())


def jaccard(a: set[str], b: set[str]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def mean_pairwise_jaccard(texts: Sequence[str]) -> float | None:
    """The mean Jaccard overlap of the word sets over every pair of ``texts``; None for fewer than two."""
    sets = [set(words(t)) for t in texts]
    pairs = list(combinations(sets, 2))
    return sum(jaccard(a, b) for a, b in pairs) / len(pairs) if pairs else None


def _add_value_counts(counter: Counter, array: pa.Array | pa.ChunkedArray) -> None:
    for item in pc.value_counts(array).to_pylist():
        counter[item["values"]] += item["counts"]


class IndexCounts:
    """Counts over whole index tables (:data:`INDEX_COUNT_COLUMNS`)."""

    def __init__(self) -> None:
        self.samples = 0
        self.attributes: dict[str, Counter] = {group: Counter() for group in GROUPS}
        self.texts_per_image: Counter = Counter()
        self.styles: Counter = Counter()
        self._ids: list[np.ndarray] = []
        self._per_identity: np.ndarray | None = None  # images_per_identity's sort, until an index is added

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._per_identity = None
        self.samples += table.num_rows
        parts = pc.split_pattern(table["attributes"], ",")
        for position, group in enumerate(GROUPS):
            _add_value_counts(self.attributes[group], pc.list_element(parts, position))
        _add_value_counts(self.texts_per_image, table["n_texts"])
        _add_value_counts(self.styles, pc.list_flatten(table["styles"]))
        templates = pc.sum(pc.list_value_length(table["prompt_caption"])).as_py() or 0
        if templates:
            self.styles[TEMPLATE_STYLE] += templates
        self._ids.append(table["id"].to_numpy())

    def images_per_identity(self) -> np.ndarray:
        """One count per distinct identity (sorted by identity); a full sort, so kept until more indexes are added."""
        if self._per_identity is None:
            self._per_identity = (
                np.unique(np.concatenate(self._ids), return_counts=True)[1]
                if self._ids
                else np.zeros(0, dtype=np.int64)
            )
        return self._per_identity

    def style_shares(self) -> dict[str, float]:
        total = sum(self.styles.values())
        return {style: count / total for style, count in self.styles.most_common()} if total else {}


class TextStats:
    """Statistics of the texts (style captions and the library sentence) of the records added."""

    def __init__(self) -> None:
        self.images = 0
        self.texts = 0
        self.lengths: Counter = Counter()  # words per text -> texts
        self.lengths_by_style: dict[str, Counter] = {}
        self.vocabulary: set[str] = set()
        self._distinct: set[bytes] = set()  # 8-byte digests of the exact texts, not the texts
        self._jaccard_sum = 0.0
        self.jaccard_images = 0  # images with two texts or more
        self.jaccard_values: list[float] = []

    def add(self, captions: Sequence[str], styles: Sequence[str], prompt_caption: Sequence[str]) -> None:
        texts = list(captions) + list(prompt_caption)
        kinds = list(styles) + [TEMPLATE_STYLE] * len(prompt_caption)
        self.images += 1
        for text, style in zip(texts, kinds):
            tokens = words(text)
            self.texts += 1
            self.lengths[len(tokens)] += 1
            self.lengths_by_style.setdefault(style, Counter())[len(tokens)] += 1
            self.vocabulary.update(tokens)
            self._distinct.add(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest())
        overlap = mean_pairwise_jaccard(texts)
        if overlap is not None:
            self._jaccard_sum += overlap
            self.jaccard_images += 1
            self.jaccard_values.append(overlap)

    def add_table(self, table: pa.Table) -> None:
        for captions, styles, prompt in zip(*(table[c].to_pylist() for c in TEXT_COLUMNS)):
            self.add(captions, styles, prompt)

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    @property
    def distinct_texts(self) -> int:
        return len(self._distinct)

    @property
    def distinct_ratio(self) -> float | None:
        return self.distinct_texts / self.texts if self.texts else None

    @property
    def mean_jaccard(self) -> float | None:
        return self._jaccard_sum / self.jaccard_images if self.jaccard_images else None

    @property
    def mean_words(self) -> float | None:
        return sum(n * c for n, c in self.lengths.items()) / self.texts if self.texts else None


def parse_labels(lines: Iterable[str], source: str = "labels") -> dict[str, dict[str, str]]:
    """``file_path`` -> group -> phrase from JSON lines in the bundled samples' ``labels.jsonl`` format
    (``{"file_path", "attributes": {group: phrase}, "visible": {...}}``; ``visible``, what the image shows,
    is used when present, else ``attributes``). InputError naming the line for anything else."""
    labels: dict[str, dict[str, str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}: line {number}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("file_path"), str):
            raise InputError(f"{where}: expected an object with a 'file_path' string")
        values = entry.get("visible", entry.get("attributes"))
        if not isinstance(values, dict) or not all(isinstance(values.get(g), str) for g in GROUPS):
            raise InputError(
                f"{where}: expected 'visible' or 'attributes' with a phrase for each of {', '.join(GROUPS)}"
            )
        labels[entry["file_path"].lstrip("/")] = {group: values[group] for group in GROUPS}
    if not labels:
        raise InputError(f"{source}: no labels")
    return labels


class LabelAccuracy:
    """Per group: corpus value == label, over every matched image and over those whose label is not unknown.

    A corpus sample matches a label by its ``file_path``, else by the last components of its ``source``
    (an absolute path ending in the label's relative path).
    """

    def __init__(self, labels: Mapping[str, Mapping[str, str]]) -> None:
        self.labels = labels
        self._depth = max(path.count("/") + 1 for path in labels)
        self.matched = 0
        self.unmatched = 0
        self.right: Counter = Counter()
        self.known: Counter = Counter()  # images whose label for the group is not unknown
        self.right_known: Counter = Counter()
        self.said_unknown: Counter = Counter()  # known label, corpus value unknown

    def _label(self, file_path: str, source: str) -> Mapping[str, str] | None:
        found = self.labels.get(file_path.lstrip("/"))
        if found is not None:
            return found
        parts = source.replace("\\", "/").split("/")
        for depth in range(min(self._depth, len(parts)), 0, -1):
            found = self.labels.get("/".join(parts[-depth:]))
            if found is not None:
                return found
        return None

    def add(self, file_path: str, source: str, attributes: str) -> None:
        label = self._label(file_path, source)
        if label is None:
            self.unmatched += 1
            return
        self.matched += 1
        for group, value in zip(GROUPS, attributes.split(",")):
            truth = label[group]
            self.right[group] += value == truth
            if truth != UNKNOWN:
                self.known[group] += 1
                self.right_known[group] += value == truth
                self.said_unknown[group] += value == UNKNOWN

    def add_table(self, table: pa.Table) -> None:
        for file_path, source, attributes in zip(
            *(table[c].to_pylist() for c in ("file_path", "source", "attributes"))
        ):
            self.add(file_path, source, attributes)

    def per_group(self) -> dict[str, dict[str, Any]]:
        out = {}
        for group in GROUPS:
            known = self.known[group]
            out[group] = {
                "accuracy": self.right[group] / self.matched if self.matched else None,
                "known": known,
                "accuracy_known": self.right_known[group] / known if known else None,
                "said_unknown": self.said_unknown[group],
            }
        return out

    def mean_accuracy(self) -> float | None:
        scores = [g["accuracy"] for g in self.per_group().values() if g["accuracy"] is not None]
        return sum(scores) / len(scores) if scores else None
