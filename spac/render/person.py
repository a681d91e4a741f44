"""Procedural pedestrian renderer: labelled demo images with ground-truth attributes.

No photographs of people ship with the project, so it draws its own: a person with the schema's
garments, hair, shoes and belongings in a random pose, view, framing, background and camera quality.
`render_person` returns the image and the attributes a viewer could actually see in it (groups the
framing or view hides become "unknown"); `render_dataset` writes the `<root>/<identity>/<n>.jpg`
layout the pipeline reads, plus `labels.jsonl`.

The bundled samples in spac/assets/samples/ were made with:
    python -m spac.render spac/assets/samples --identities 12 --images-per-identity 8 --seed 0 --quality 90
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from tqdm import tqdm

from spac.attributes import UNKNOWN, Schema, load_schema
from spac.cli.support import CliError, OneLineArgumentParser, run_main
from spac.render_body import PARTS, Body, Painter, pose_body
from spac.render_figure import DRAWN_ITEMS, SKIN_TONES, draw_person
from spac.render_garments import Outfit
from spac.render_identity import random_identity
from spac.render_scene import Scene, apply_camera, draw_background, plain_scene, sample_scene

__all__ = ["PARTS", "Rendering", "random_identity", "render_person", "render_layers", "render_dataset", "cli_main"]

SUPERSAMPLE = 2          # draw at twice the size, then average down: smooth edges at little cost
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


def _visible(attributes: Mapping[str, str], items: Mapping[str, str], scene: Scene, body: Body,
             canvas: tuple[int, int]) -> dict[str, str]:
    """The attributes a viewer can see: framing cuts the bottom of the body, the back view hides a phone."""
    width, height = canvas
    bottom = (height - scene.top) / scene.unit            # lowest body height a viewer can see
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
    p.polygon([(left, band), (right, band), (right, band + 3.0), (left, band + 3.0)],
              tuple(c // 2 for c in colour), "background")


def _items(attributes: Mapping[str, str], schema: Schema) -> tuple[dict[str, str], dict[str, str], dict[str, tuple]]:
    """Validate a full attribute set; return it ordered, each group's item and each group's colour rgb (if any)."""
    ordered = schema.validate(attributes)
    missing = [g for g, v in ordered.items() if v == UNKNOWN]
    if missing:
        raise ValueError(f"render_person needs a known value for every group; unknown: {', '.join(missing)}")
    items, colours = {}, {}
    for group, phrase in ordered.items():
        value = schema.value(group, phrase)
        if value.item not in DRAWN_ITEMS[group]:
            raise ValueError(f"the renderer cannot draw {group} item {value.item!r}; it draws: "
                             f"{', '.join(DRAWN_ITEMS[group])}")
        items[group] = value.item
        if value.colour is not None:
            colours[group] = schema.colours[value.colour].rgb
    return ordered, items, colours


def render_layers(attributes: Mapping[str, str], seed: int, size: tuple[int, int] = DEFAULT_SIZE, *,
                  hidden_fraction: float = 0.15, plain: bool = False, with_parts: bool = False) -> Rendering:
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
    skin = SKIN_TONES[stable_seed(schema.to_released(ordered)) % len(SKIN_TONES)]
    outfit = Outfit(Painter(image, labels, scene), body, _jitter(skin, 8.0, rng), rng)
    colours = {g: _jitter(rgb, scene.colour_jitter, rng) for g, rgb in base_colours.items()}
    draw_person(outfit, items, colours)
    if scene.occluder:
        _occlude(outfit.p, scene.occluder, rng)
    image = apply_camera(image.reduce(SUPERSAMPLE), scene, seed)
    parts = np.asarray(labels.resize(size, Image.NEAREST)) if labels is not None else None
    return Rendering(image, _visible(ordered, items, scene, body, canvas), scene, parts)


def render_person(attributes: Mapping[str, str], seed: int, size: tuple[int, int] = DEFAULT_SIZE, *,
                  hidden_fraction: float = 0.15) -> tuple[Image.Image, dict[str, str]]:
    """An RGB image (width, height = size) of a person wearing `attributes`, and the attributes visible in it.

    The same attributes and seed always give the same image; another seed gives another pose, view,
    framing and background. With probability `hidden_fraction` the framing hides the lower body.
    """
    rendering = render_layers(attributes, seed, size, hidden_fraction=hidden_fraction)
    return rendering.image, rendering.visible


def stable_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from integers or strings (independent of Python's hash randomisation)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def render_dataset(root: str | Path, identities: int, images_per_identity: int, seed: int = 0,
                   hidden_fraction: float = 0.15, *, quality: int = 90, progress: bool = False) -> list[dict]:
    """Write `<root>/<identity:05d>/<n:03d>.jpg` and `<root>/labels.jsonl`; return the label records.

    Each record: file_path (relative to root), id, attributes (the identity's full set), visible.
    Same arguments, byte-identical files.
    """
    if identities < 1 or images_per_identity < 1:
        raise ValueError(f"need at least one identity and one image each, got {identities} x {images_per_identity}")
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be between 1 and 95, got {quality}")
    root = Path(root)
    records = []
    bar = tqdm(total=identities * images_per_identity, unit="img", disable=not progress, desc="render")
    for identity in range(identities):
        attributes = random_identity(random.Random(stable_seed(seed, identity)))
        folder = root / f"{identity:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(images_per_identity):
            image, visible = render_person(attributes, stable_seed(seed, identity, n), hidden_fraction=hidden_fraction)
            relative = f"{identity:05d}/{n:03d}.jpg"
            image.save(root / relative, "JPEG", quality=quality)
            records.append({"file_path": relative, "id": identity, "attributes": attributes, "visible": visible})
            bar.update()
    bar.close()
    with open(root / "labels.jsonl", "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return records


def cli_main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(
        prog="spac render",
        description="Render labelled demo pedestrians: OUT_DIR/<identity>/<n>.jpg plus OUT_DIR/labels.jsonl.")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write into (created if missing)")
    parser.add_argument("--identities", type=int, required=True, metavar="N",
                        help="number of people (identities) to draw")
    parser.add_argument("--images-per-identity", type=int, required=True, metavar="K",
                        help="images per person, each with another pose, view, background and camera")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="random seed; the same flags and seed give byte-identical files (default 0)")
    parser.add_argument("--hidden-fraction", type=float, default=0.15, metavar="F",
                        help="share of images cropped or blocked by a foreground object so that the shoes, and "
                             "sometimes the lower garment and hand-held things, are out of view (default 0.15)")
    parser.add_argument("--quality", type=int, default=90, metavar="Q",
                        help="JPEG quality of the written files, 1-95 (default 90)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    args = parser.parse_args(argv)
    if args.identities < 1:
        raise CliError(f"--identities must be at least 1, got {args.identities}")
    if args.images_per_identity < 1:
        raise CliError(f"--images-per-identity must be at least 1, got {args.images_per_identity}")
    if not 0.0 <= args.hidden_fraction <= 1.0:
        raise CliError(f"--hidden-fraction must be between 0 and 1, got {args.hidden_fraction}")
    if not 1 <= args.quality <= 95:
        raise CliError(f"--quality must be between 1 and 95, got {args.quality}")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} exists and is not a folder")
    try:
        records = render_dataset(out, args.identities, args.images_per_identity, args.seed, args.hidden_fraction,
                                 quality=args.quality, progress=not args.quiet)
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc.strerror or exc}") from None
    if not args.quiet:
        print(f"wrote {len(records)} images of {args.identities} identities and {out / 'labels.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main("spac render", cli_main))
