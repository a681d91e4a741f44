"""A captioner with two styles whose texts the test chooses: the interface of
spac.neural_captioner.files.LoadedCaptioner (style_names, caption_images) without a model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

STYLE_NAMES = ("cuhk", "icfg")
Script = Callable[[str, int], str]  # (image key, style) -> the text


@dataclass
class ScriptedCaptioner:
    """Writes ``script(key, style)`` for each image; records each call's size, style and decoding."""

    script: Script
    style_names: tuple[str, ...] = STYLE_NAMES
    calls: list[dict[str, Any]] = field(default_factory=list)

    def caption_images(
        self,
        images: Sequence[Any],
        style: int,
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
        keys: Sequence[str] | None = None,
    ) -> list[str]:
        assert keys is not None and len(keys) == len(images), "the stage names every image"
        assert all(image.mode == "RGB" for image in images)
        self.calls.append(
            {"images": len(images), "style": style, "temperature": temperature, "seed": seed, "tokens": max_new_tokens}
        )
        return [self.script(key, style) for key in keys]

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "style_names": list(self.style_names)}
