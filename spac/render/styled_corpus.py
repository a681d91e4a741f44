"""Rendered people as corpus records whose texts come from named style modules: what the neural captioner's
trainer reads when it learns styles, made here without photographs or human captions (the caller writes
them as shards: the renderer does not know the corpus format)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from spac.attributes import Schema, load_schema
from spac.captioning.captioner import caption
from spac.render.training_source import training_people


def styled_people(
    seed: int, count: int, styles: Sequence[str], schema: Schema | None = None
) -> list[tuple[dict[str, Any], Image.Image]]:
    """(record, image) for ``count`` rendered training people of ``seed``: each record holds one caption per
    style module of ``styles`` over the person's true attributes, its ``styles`` naming them."""
    schema = schema or load_schema()
    people, rendered = training_people(seed, count, schema), []
    for index in range(count):
        image, attributes = people[index]
        captions = [c for c in caption(attributes, f"s{seed}p{index}", styles=list(styles)) if c.style in styles]
        record = {
            "key": f"s{seed}_{index:06d}",
            "id": index,
            "file_path": f"Part1/{index}/0.jpg",
            "attributes": {g: {"value": attributes[g], "confidence": 1.0} for g in schema.group_names},
            "captions": [c.text for c in captions],
            "styles": [c.style for c in captions],
            "prompt_caption": [],
            "source": f"rendered/{seed}/{index}.png",
        }
        rendered.append((record, image))
    return rendered
