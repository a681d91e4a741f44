"""The caption-model stage: texts written by a vision-language model, checked, asked again, else SPAC's own.

:func:`generate_checked` is the whole stage, over any :class:`~spac.generation.requests.TextGenerator`; the
synthesis job's inference step and ``spac caption`` both call it. For each image it asks ``texts_per_image``
texts (round 1: every image in one ``generate`` call), checks each (spac.generation.checks), asks each
rejected or failed text once more in another style (round 2: one call), and fills a slot still without a
text with the captioner's style caption for that slot. The library sentence is always the last text. So an
image keeps 2-3 distinct texts, and no rejected text is ever in an outcome.

Each outcome counts its requests: ``mllm_requested`` = ``mllm_kept`` + every ``mllm_rejected_<reason>`` +
every ``mllm_failed_<kind>``; ``mllm_fallback`` slots got the captioner's caption, ``mllm_unfilled`` slots
got nothing (the captioner writes one style caption when little is known, and ``texts_per_image`` may be 3).
The same items and the same answers give the same outcomes.

:func:`check_written` is the same check, slots and fallback for texts a model has already written, one per
slot and never asked again (``--captioner spac``: a neural captioner's two styles). Its counters and styles
carry the writer's name in place of ``mllm`` (``spac_requested``, ``spac:<style name>``), and add up alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.errors import InputError
from spac import language
from spac.attributes import AttributeValue, Schema, load_schema
from spac.captioning.captioner import TEMPLATE_STYLE, Caption, Captioner, check_style_names
from spac.generation.checks import DEFAULT_MAX_WORDS, DEFAULT_MIN_WORDS, rejection
from spac.generation.grounding import PredictedAttributes, trusted_values
from spac.generation.prompts import INSTRUCTIONS_FILE, Prompt, PromptBook, load_instructions, prompt_files_sha256
from spac.generation.requests import TextGenerator

DEFAULT_TEXTS = 2
MAX_TEXTS = 3
DEFAULT_MIN_CONFIDENCE = 0.5
MLLM = "mllm"  # the caption model's name in its texts' styles ("mllm:<style id>") and counters ("mllm_kept")
ROUNDS = 2  # the first ask, and one more in another style
FAILED_UNKNOWN = "error"  # the failure kind of an answer with neither text nor kind
Spans = tuple[tuple[int, int], ...]  # one text's attribute phrases, (start, end) each


@dataclass(frozen=True)
class CaptionItem:
    """One image to describe: its corpus JPEG, its attributes, and the captioner's texts for them
    (style captions, then the library sentence) to fall back on."""

    key: str
    image_jpeg: bytes
    prediction: PredictedAttributes
    fallbacks: tuple[Caption, ...]


def caption_item(
    key: str,
    image_jpeg: bytes,
    prediction: PredictedAttributes,
    captioner: Captioner,
    seed: int = 0,
    styles: Sequence[str] | None = None,
) -> CaptionItem:
    """An item whose fallbacks are ``captioner``'s texts for the prediction's attributes (as the template
    stage would write them for this key and seed)."""
    texts = captioner(prediction.attributes, key, seed, list(styles) if styles else None)
    return CaptionItem(key, image_jpeg, prediction, tuple(texts))


@dataclass(frozen=True)
class CheckSettings:
    """What a generated text is checked against: values at or above ``min_confidence`` are trusted."""

    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_words: int = DEFAULT_MIN_WORDS
    max_words: int = DEFAULT_MAX_WORDS
    schema: Schema = field(default_factory=load_schema)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise InputError(f"min confidence must be in [0, 1], got {self.min_confidence}")
        if not 1 <= self.min_words <= self.max_words:
            raise InputError(f"expected 1 <= min words <= max words, got {self.min_words} and {self.max_words}")

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for job.json."""
        return {"min_confidence": self.min_confidence, "min_words": self.min_words, "max_words": self.max_words}


@dataclass(frozen=True)
class GenerationSettings:
    """The stage's settings; ``prompts`` should use the captioner's sentence library (see :func:`prompt_book`)."""

    prompts: PromptBook
    texts_per_image: int = DEFAULT_TEXTS
    seed: int = 0
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    min_words: int = DEFAULT_MIN_WORDS
    max_words: int = DEFAULT_MAX_WORDS
    schema: Schema = field(default_factory=load_schema)

    def __post_init__(self) -> None:
        if not 1 <= self.texts_per_image <= MAX_TEXTS:
            raise InputError(f"texts per image must be 1 to {MAX_TEXTS}, got {self.texts_per_image}")
        if ROUNDS * self.texts_per_image > self.prompts.pool_size:
            raise InputError(
                f"{self.texts_per_image} texts per image and their retries need "
                f"{ROUNDS * self.texts_per_image} style instructions; the prompts have "
                f"{self.prompts.pool_size} (the chosen styles' and the example sentences')"
            )
        CheckSettings(self.min_confidence, self.min_words, self.max_words, self.schema)  # refuses a bad number

    @property
    def checks(self) -> CheckSettings:
        return CheckSettings(self.min_confidence, self.min_words, self.max_words, self.schema)

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for job.json: the numbers, the prompts' version, their files' sha256 and the library."""
        return {
            "texts_per_image": self.texts_per_image,
            "seed": self.seed,
            **self.checks.describe(),
            "prompts_version": self.prompts.instructions.version,
            "prompt_files_sha256": prompt_files_sha256(INSTRUCTIONS_FILE),
            "example_library": self.prompts.library.source,
        }


def prompt_book(captioner: Captioner, styles: Sequence[str] | None = None) -> PromptBook:
    """The bundled instructions with ``captioner``'s sentence library (the bundled one or ``--sentences``), their
    style instructions those of ``styles`` alone (default: the captioner's default styles, as it captions)."""
    chosen = check_style_names(styles, captioner.style_names) if styles is not None else captioner.default_styles
    return PromptBook(load_instructions(captioner.schema).only(chosen), captioner.library)


@dataclass(frozen=True)
class Rejection:
    """A text the stage did not keep: ``reason`` is the check's (spac.generation.checks.REASONS) when
    ``text`` is set, the backend's failure kind when the request failed (``text`` None)."""

    style: str
    reason: str
    text: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"style": self.style, "reason": self.reason, "text": self.text}


@dataclass(frozen=True)
class CaptionOutcome:
    """One image's texts: ``captions`` (generated or fallback, in slot order) with their ``styles``, then the
    library sentence (``prompt_caption``, zero or one); ``attribute_spans`` per text of ``texts``."""

    key: str
    captions: tuple[str, ...]
    styles: tuple[str, ...]
    prompt_caption: tuple[str, ...]
    attribute_spans: tuple[Spans, ...]
    counters: Mapping[str, int]
    rejections: tuple[Rejection, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        return (*self.captions, *self.prompt_caption)

    def record_fields(self) -> dict[str, Any]:
        """The corpus record's text fields (shards.sample): captions, styles, prompt_caption, attribute_spans."""
        return {
            "captions": list(self.captions),
            "styles": list(self.styles),
            "prompt_caption": list(self.prompt_caption),
            "attribute_spans": [[[start, end] for start, end in spans] for spans in self.attribute_spans],
        }

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the record fields, the counters and the rejections (``spac caption --json``)."""
        return {
            "key": self.key,
            **self.record_fields(),
            "counters": dict(self.counters),
            "rejections": [r.as_dict() for r in self.rejections],
        }


@dataclass
class _Kept:
    text: str
    style: str
    spans: Spans | None  # None: a template text the captioner gave without spans, found once the stage keeps it


@dataclass
class _Image:
    """One item while the stage works on it; ``writer`` names its texts' styles and counters (:data:`MLLM`)."""

    item: CaptionItem
    trusted: Mapping[str, AttributeValue]
    writer: str = MLLM
    kept: dict[int, _Kept] = field(default_factory=dict)
    counters: Counter = field(default_factory=Counter)
    rejections: list[Rejection] = field(default_factory=list)

    def others(self, slot: int) -> list[str]:
        """What a new text of ``slot`` may not repeat: every text of the captioner and the kept texts."""
        return [c.text for c in self.item.fallbacks] + [k.text for s, k in sorted(self.kept.items()) if s != slot]

    def judge(
        self,
        slot: int,
        style_id: str,
        text: str,
        found: list[language.AttributeMention],
        checks: CheckSettings,
        example: str | None = None,
    ) -> None:
        """Keep ``text`` for ``slot`` when it passes the checks (it may not repeat ``example`` either, the
        sentence its prompt showed); else count and record why not."""
        style = f"{self.writer}:{style_id}"
        others = self.others(slot) + ([example] if example else [])
        reason = rejection(text, found, self.trusted, others, checks.min_words, checks.max_words, checks.schema)
        if reason is None:
            self.counters[f"{self.writer}_kept"] += 1
            self.kept[slot] = _Kept(text, style, tuple((m.start, m.end) for m in found))
        else:
            self.counters[f"{self.writer}_rejected_{reason}"] += 1
            self.rejections.append(Rejection(style, reason, text))

    def fail(self, prompt: Prompt, kind: str) -> None:
        self.counters[f"{self.writer}_failed_{kind}"] += 1
        self.rejections.append(Rejection(f"{self.writer}:{prompt.request.style_id}", kind, None))

    def fill_slots(self, texts_per_image: int) -> list[_Kept]:
        """The image's texts: each slot's kept text, else the captioner's caption for it; then the library sentence."""
        styled = [c for c in self.item.fallbacks if c.style != TEMPLATE_STYLE]
        library = [c for c in self.item.fallbacks if c.style == TEMPLATE_STYLE][:1]
        texts: list[_Kept] = []
        for slot in range(texts_per_image):
            if slot in self.kept:
                texts.append(self.kept[slot])
            elif slot < len(styled):
                self.counters[f"{self.writer}_fallback"] += 1
                texts.append(_Kept(styled[slot].text, styled[slot].style, styled[slot].spans))
            else:
                self.counters[f"{self.writer}_unfilled"] += 1
        return texts + [_Kept(c.text, c.style, c.spans) for c in library]


def _ask(asks: list[tuple[_Image, int]], attempt: int, generator: TextGenerator, settings: GenerationSettings) -> None:
    """One round: one request per (image, slot), in one generate() call; keeps the texts that pass."""
    if not asks:
        return
    turn = attempt * settings.texts_per_image
    prompts = [
        settings.prompts.prompt(image.item.key, image.item.image_jpeg, image.trusted, settings.seed, turn + slot)
        for image, slot in asks
    ]
    answers = generator.generate([p.request for p in prompts])
    if len(answers) != len(prompts):
        raise RuntimeError(f"the text generator answered {len(answers)} of {len(prompts)} requests")
    texts = [a.text.strip() if a.text is not None else None for a in answers]
    mentions = iter(language.extract_attributes_batch([t for t in texts if t is not None], settings.schema))
    for (image, slot), prompt, answer, text in zip(asks, prompts, answers, texts):
        image.counters[f"{image.writer}_requested"] += 1
        if text is None:
            image.fail(prompt, answer.failure or FAILED_UNKNOWN)
        else:
            image.judge(slot, prompt.request.style_id, text, next(mentions), settings.checks, prompt.example)


_ALWAYS_COUNTED = ("requested", "kept", "fallback")  # in every outcome, zeros included


def _outcome(image: _Image, texts: list[_Kept], spans_of: Mapping[str, Spans]) -> CaptionOutcome:
    captions = [k for k in texts if k.style != TEMPLATE_STYLE]
    counters = {f"{image.writer}_{name}": image.counters[f"{image.writer}_{name}"] for name in _ALWAYS_COUNTED}
    counters.update(sorted(image.counters.items()))
    return CaptionOutcome(
        image.item.key,
        tuple(k.text for k in captions),
        tuple(k.style for k in captions),
        tuple(k.text for k in texts if k.style == TEMPLATE_STYLE),
        tuple(spans_of[k.text] if k.spans is None else k.spans for k in texts),
        counters,
        tuple(image.rejections),
    )


def generate_checked(
    items: Sequence[CaptionItem], generator: TextGenerator, settings: GenerationSettings
) -> list[CaptionOutcome]:
    """The stage for a batch of images (module doc): one outcome per item, in order. At most two generate()
    calls; a backend's per-request failure is a counted fallback, never an exception."""
    images = [_Image(item, trusted_values(item.prediction, settings.min_confidence, settings.schema)) for item in items]
    asks = [(image, slot) for image in images for slot in range(settings.texts_per_image)]
    _ask(asks, 0, generator, settings)
    _ask([(image, slot) for image, slot in asks if slot not in image.kept], 1, generator, settings)
    return _outcomes(images, settings.texts_per_image, settings.schema)


def _outcomes(images: Sequence[_Image], texts_per_image: int, schema: Schema) -> list[CaptionOutcome]:
    """Each image's slots filled (kept text, else the captioner's caption) and the spans of its texts."""
    texts = [image.fill_slots(texts_per_image) for image in images]
    templates = sorted({k.text for kept in texts for k in kept if k.spans is None})  # one spaCy batch for all
    found = language.attribute_spans(templates, schema) if templates else []  # none: spaCy not even loaded
    spans_of = dict(zip(templates, (tuple(s) for s in found)))
    return [_outcome(image, kept, spans_of) for image, kept in zip(images, texts)]


def check_written(
    items: Sequence[CaptionItem],
    written: Sequence[Sequence[str]],
    style_names: Sequence[str],
    checks: CheckSettings,
    writer: str,
) -> list[CaptionOutcome]:
    """The stage over texts already written (module doc): ``written[i][slot]`` is item i's text in
    ``style_names[slot]``, kept when it passes the checks, else the captioner's caption for that slot. Styles
    are ``<writer>:<style name>``, counters ``<writer>_<name>``; one outcome per item, in order."""
    if len(written) != len(items) or any(len(texts) != len(style_names) for texts in written):
        raise RuntimeError(f"expected {len(style_names)} written texts for each of {len(items)} items")
    images = [
        _Image(item, trusted_values(item.prediction, checks.min_confidence, checks.schema), writer) for item in items
    ]
    stripped = [text.strip() for texts in written for text in texts]
    mentions = iter(language.extract_attributes_batch(stripped, checks.schema))
    texts = iter(stripped)
    for image in images:
        for slot, style in enumerate(style_names):
            image.counters[f"{writer}_requested"] += 1
            image.judge(slot, style, next(texts), next(mentions), checks)
    return _outcomes(images, len(style_names), checks.schema)


def total_counters(outcomes: Sequence[CaptionOutcome]) -> dict[str, int]:
    """The outcomes' counters summed, by name."""
    total: Counter = Counter()
    for outcome in outcomes:
        total.update(outcome.counters)
    return dict(sorted(total.items()))
