"""One rendered pedestrian: a person with the schema's garments, hair, shoes and belongings in a random
pose, view, framing, background and camera quality, and the attributes a viewer could actually see in
it (groups the framing or view hides become "unknown").
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from common.digests import stable_int
from spac.attributes import UNKNOWN, Schema, load_schema
from spac.render.body import PARTS, Body, Painter, pose_body
from spac.render.figure import DRAWN_ITEMS, SKIN_TONES, draw_person
from spac.render.garments import Outfit
from spac.render.scene import Scene, apply_camera, draw_background, plain_scene, sample_scene

SUPERSAMPLE = 2  # draw at twice the size, then average down: smooth edges at little cost
DEFAULT_SIZE = (128, 256)
UMBRELLA_HEADROOM = 9.0  # body units kept in frame above the head for an open umbrella
LOWER_VISIBLE_FROM = 62.0  # the lower garment counts as seen when the view reaches this body height


@dataclass(frozen=True)
class Rendering:
    """One rendered image with its visible attributes; `parts` (debug) maps each pixel to an index of PARTS."""

    image: Image.Image
    visible: dict[str, str]
    scene: Scene
    parts: np.ndarray | None = None

    def mask(self, part: str) -> np.ndarray:
        """Boolean mask of the pixels painted as `part` (one of PARTS); needs `with_parts=True`."""
        if self.parts is None:
            raise ValueError("this rendering has no part map; render it with with_parts=True")
        return self.parts == PARTS.index(part)


def _jitter(rgb: tuple[int, int, int], amount: float, rng: random.Random) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c + rng.uniform(-amount, amount)))) for c in rgb)  # type: ignore[return-value]


def _visible(
    attributes: Mapping[str, str], items: Mapping[str, str], scene: Scene, body: Body, canvas: tuple[int, int]
) -> dict[str, str]:
    """The attributes a viewer can see: framing cuts the bottom of the body, the back view hides a phone."""
    width, height = canvas
    bottom = (height - scene.top) / scene.unit  # lowest body height a viewer can see
    if scene.occluder:
        bottom = min(bottom, scene.occluder)

    def in_frame(point: tuple[float, float], below: float = 0.0) -> bool:
        x = scene.cx + scene.mirror * point[0] * scene.unit
        return 0 <= x < width and point[1] + below <= bottom

    hands = [arm[-1] for arm in body.arms]
    belongings = items["belongings"]
    seen = {
        "backpack": bottom >= 32.0,
        "shoulder bag": bottom >= 40.0,
        "umbrella": True,
        "phone": body.view != "back" and in_frame(hands[0], 1.0),
        "handbag": in_frame(hands[0], 9.0),
        "suitcase": in_frame(hands[0], 20.0),
        "nothing": all(in_frame(h, 2.0) for h in hands),
    }[belongings]
    visible = dict(attributes)
    if bottom < LOWER_VISIBLE_FROM:
        visible["lower"] = UNKNOWN
    if bottom < max(leg[-1][1] for leg in body.legs) + 4.0:
        visible["shoes"] = UNKNOWN
    if not seen:
        visible["belongings"] = UNKNOWN
    return visible


def _occlude(p: Painter, top: float, rng: random.Random) -> None:
    """A foreground object across the person below body height `top`: a car, a bench, a barrier."""
    left, right = -rng.uniform(30.0, 60.0), rng.uniform(30.0, 60.0)
    colour = tuple(rng.randint(30, 220) for _ in range(3))
    p.polygon([(left, top), (right, top), (right, 140.0), (left, 140.0)], colour, "background")
    band = top + rng.uniform(4.0, 10.0)
    p.polygon(
        [(left, band), (right, band), (right, band + 3.0), (left, band + 3.0)],
        tuple(c // 2 for c in colour),
        "background",
    )


def _items(attributes: Mapping[str, str], schema: Schema) -> tuple[dict[str, str], dict[str, str], dict[str, tuple]]:
    """Validate a full attribute set; return it ordered, each group's item and each group's colour rgb (if any)."""
    ordered = schema.validate(attributes)
    missing = [g for g, v in ordered.items() if v == UNKNOWN]
    if missing:
        raise ValueError(f"render_person needs a known value for every group; unknown: {', '.join(missing)}")
    items, colours = {}, {}
    for group, phrase in ordered.items():
        value = schema.value(group, phrase)
        if value.bare:
            raise ValueError(
                f"the renderer cannot draw the bare {group} value {phrase!r}: a drawn garment needs a colour"
            )
        if value.item not in DRAWN_ITEMS[group]:
            raise ValueError(
                f"the renderer cannot draw {group} item {value.item!r}; it draws: {', '.join(DRAWN_ITEMS[group])}"
            )
        items[group] = value.item
        if value.colour is not None:
            colours[group] = schema.colours[value.colour].rgb
    return ordered, items, colours


def render_layers(
    attributes: Mapping[str, str],
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    hidden_fraction: float = 0.15,
    plain: bool = False,
    with_parts: bool = False,
) -> Rendering:
    """Render one image; `plain` gives a flat front view without camera defects, `with_parts` a part map."""
    if size[0] < 16 or size[1] < 32:
        raise ValueError(f"image size must be at least 16x32 (width x height), got {size[0]}x{size[1]}")
    if not 0.0 <= hidden_fraction <= 1.0:
        raise ValueError(f"hidden_fraction must be between 0 and 1, got {hidden_fraction}")
    schema = load_schema()
    ordered, items, base_colours = _items(attributes, schema)
    rng = random.Random(seed)
    canvas = (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE)
    headroom = UMBRELLA_HEADROOM if items["belongings"] == "umbrella" else 0.0
    scene = plain_scene(canvas) if plain else sample_scene(rng, canvas, hidden_fraction, headroom)
    body = pose_body(scene, items["gender"] == "woman", items["belongings"])
    image = draw_background(canvas, scene, rng)
    labels = Image.new("L", canvas, 0) if with_parts else None
    # The skin tone belongs to the person, not the photo: derive it from the attributes, not the seed.
    skin = SKIN_TONES[stable_int(schema.to_released(ordered)) % len(SKIN_TONES)]
    outfit = Outfit(Painter(image, labels, scene), body, _jitter(skin, 8.0, rng), rng)
    colours = {g: _jitter(rgb, scene.colour_jitter, rng) for g, rgb in base_colours.items()}
    draw_person(outfit, items, colours)
    if scene.occluder:
        _occlude(outfit.p, scene.occluder, rng)
    image = apply_camera(image.reduce(SUPERSAMPLE), scene, seed)
    parts = np.asarray(labels.resize(size, Image.NEAREST)) if labels is not None else None
    return Rendering(image, _visible(ordered, items, scene, body, canvas), scene, parts)


def render_person(
    attributes: Mapping[str, str], seed: int, size: tuple[int, int] = DEFAULT_SIZE, *, hidden_fraction: float = 0.15
) -> tuple[Image.Image, dict[str, str]]:
    """An RGB image (width, height = size) of a person wearing `attributes`, and the attributes visible in it.

    The same attributes and seed always give the same image; another seed gives another pose, view,
    framing and background. With probability `hidden_fraction` the framing hides the lower body.
    """
    rendering = render_layers(attributes, seed, size, hidden_fraction=hidden_fraction)
    return rendering.image, rendering.visible
