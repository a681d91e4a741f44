"""Texts written by a captioner with styles of its own (``--captioner spac``), checked as the caption-model stage
checks its texts.

A :class:`StyledCaptioner` (:class:`spac.neural_captioner.files.LoadedCaptioner`, or any object with its
interface) writes one text per image in each of its styles. :class:`StyledWriter` asks it for every style of a
batch of corpus JPEGs, in chunks of one fixed size (a short chunk padded with copies of its last image, as the
attribute predictor pads its batches), so a text never depends on how a runner happened to batch the images:
the same images and settings give the same texts. :func:`caption_styled` checks the texts
(:func:`spac.generation.stage.check_written`): each slot keeps its style's text when it passes, else gets the
template caption of that slot; the library sentence stays the last text. Styles read ``spac:<style name>``,
counters ``spac_requested`` = ``spac_kept`` + every ``spac_rejected_<reason>``; ``spac_fallback`` slots got
the template caption.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from common.errors import InputError
from spac.generation.stage import CaptionItem, CaptionOutcome, CheckSettings, check_written

WRITER = "spac"  # in the texts' styles ("spac:<style name>") and the stage's counters ("spac_kept")
DEFAULT_MAX_NEW_TOKENS = 64
DEFAULT_BATCH_SIZE = 32


class StyledCaptioner(Protocol):
    """What the stage needs of a captioner: its style names, and texts for images in one of them."""

    style_names: tuple[str, ...]

    def caption_images(
        self,
        images: Sequence[Image.Image],
        style: int,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int = 0,
        keys: Sequence[str] | None = None,
    ) -> list[str]: ...


@dataclass(frozen=True)
class StyledDecoding:
    """How the captioner decodes: greedy at temperature 0, else sampled with ``seed`` (and each image's key)."""

    temperature: float = 0.0
    seed: int = 0
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise InputError(f"temperature must be at least 0, got {self.temperature}")
        if self.max_new_tokens < 1:
            raise InputError(f"max new tokens must be at least 1, got {self.max_new_tokens}")

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for job.json."""
        return dataclasses.asdict(self)


class StyledWriter:
    """The captioner with its decoding and fixed chunk size. With a shared model (Beam's ``large_model``) this
    object lives in the model's process and is called through a proxy, so :meth:`write` does a whole batch in
    one call, encoded images in and texts out, and :meth:`styles` is a method, not an attribute."""

    def __init__(self, captioner: StyledCaptioner, decoding: StyledDecoding, batch_size: int = DEFAULT_BATCH_SIZE):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._captioner = captioner
        self._decoding = decoding
        self._batch_size = batch_size

    def styles(self) -> tuple[str, ...]:
        return tuple(self._captioner.style_names)

    def write(self, jpegs: Sequence[bytes], keys: Sequence[str]) -> list[tuple[str, ...]]:
        """Per image, in order, its text in each style (style 0 first)."""
        texts: list[tuple[str, ...]] = []
        for start in range(0, len(jpegs), self._batch_size):
            texts += self._write_chunk(jpegs[start : start + self._batch_size], keys[start : start + self._batch_size])
        return texts

    def _write_chunk(self, jpegs: Sequence[bytes], keys: Sequence[str]) -> list[tuple[str, ...]]:
        images = [_decoded(jpeg) for jpeg in jpegs]
        padding = self._batch_size - len(images)
        images += [images[-1]] * padding
        padded_keys = [*keys, *[keys[-1]] * padding]
        decoding = self._decoding
        per_style = [
            self._captioner.caption_images(
                images,
                style,
                max_new_tokens=decoding.max_new_tokens,
                temperature=decoding.temperature,
                seed=decoding.seed,
                keys=padded_keys,
            )
            for style in range(len(self._captioner.style_names))
        ]
        return [tuple(texts) for texts in zip(*per_style)][: len(jpegs)]


def _decoded(jpeg: bytes) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as image:
        return image.convert("RGB")


def caption_styled(items: Sequence[CaptionItem], writer: StyledWriter, checks: CheckSettings) -> list[CaptionOutcome]:
    """The stage for a batch of images (module doc): one outcome per item, in order."""
    if not items:
        return []
    written = writer.write([item.image_jpeg for item in items], [item.key for item in items])
    return check_written(items, written, writer.styles(), checks, WRITER)
