"""Per-image scene parameters for the renderer (view, framing, pose, lighting, camera defects),
the background painter and the camera-defect pass (blur, noise, JPEG)."""

from __future__ import annotations

import functools
import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

VIEWS = ("front", "back", "side")
# Framing: "full" shows the whole person; the crops cut the frame at a body height given in units of
# 1/100 of the person's height (0 = top of the head, 100 = soles): "knees" hides the shoes,
# "waist" hides the lower garment and the shoes too.
CROPS = {"full": (100.0, 100.0), "knees": (66.0, 84.0), "waist": (42.0, 55.0)}
# Views that hide part of the person: the two crops, or a foreground object (a parked car, a bench)
# whose top edge lies between these body heights.
HIDING = ("knees", "waist", "occluded")
OCCLUDER_TOP = (52.0, 82.0)


@dataclass(frozen=True)
class Scene:
    view: str  # front | back | side
    mirror: int  # +1 or -1: which way a side view faces, which hand holds things
    crop: str  # a key of CROPS
    occluder: float  # body height of a foreground object's top edge; 0 = nothing in front
    unit: float  # pixels (at the drawing scale) per body unit
    top: float  # y pixel of the top of the head
    cx: float  # x pixel of the body's centre line
    build: float  # body width factor
    arm_angles: tuple[float, float]  # degrees: abduction (front/back) or swing (side), per arm
    elbow_bends: tuple[float, float]  # degrees added to the forearm
    leg_angles: tuple[float, float]  # degrees: spread (front/back) or stride (side), per leg
    background: str  # gradient | street | texture | clutter | plain
    gain: float  # overall brightness factor
    light_slope: tuple[float, float]  # brightness change across the image, x and y
    blur: float  # 0 = sharp; else the image is scaled down by 1 + blur and back up
    noise: float  # Gaussian noise sigma in 0-255 levels
    jpeg_quality: int  # 0 = no JPEG round trip
    colour_jitter: float  # max per-channel change of garment colours


def sample_scene(rng: random.Random, canvas: tuple[int, int], hidden_fraction: float, headroom: float = 0.0) -> Scene:
    """Random scene for a drawing canvas (width, height); a crop that hides body parts with probability
    hidden_fraction; `headroom` body units above the head stay in frame (for an umbrella)."""
    width, height = canvas
    view = rng.choices(VIEWS, weights=(0.45, 0.25, 0.30))[0]
    hiding = rng.choice(HIDING) if rng.random() < hidden_fraction else "full"
    crop = "full" if hiding == "occluded" else hiding
    lo, hi = CROPS[crop]
    if crop == "full":
        unit = height * rng.uniform(0.80, 0.95) / (100.0 + headroom)
        top = headroom * unit + rng.uniform(0.1, 0.9) * (height - (100.0 + headroom) * unit)
    else:
        unit = height * rng.uniform(0.94, 0.99) / (rng.uniform(lo, hi) + headroom)
        top = headroom * unit + rng.uniform(0.01, 0.04) * height
    # Keep the hands inside the frame; close-ups stay near the centre.
    slack = max(0.0, width / 2 - 20.0 * unit)
    cx = width / 2 + rng.uniform(-0.6, 0.6) * slack
    if view == "side":
        arms = (rng.uniform(-30, 30), rng.uniform(-30, 30))
        bends = (rng.uniform(0, 35), rng.uniform(0, 35))
        stride = rng.uniform(3, 24)
        legs = (stride, -stride * rng.uniform(0.6, 1.0))
    else:
        arms = (rng.uniform(3, 18), rng.uniform(3, 18))
        bends = (rng.uniform(-6, 10), rng.uniform(-6, 10))
        legs = (rng.uniform(0, 7), rng.uniform(0, 7))
    sharp = rng.random() < 0.35
    return Scene(
        view=view,
        mirror=rng.choice((1, -1)),
        crop=crop,
        occluder=rng.uniform(*OCCLUDER_TOP) if hiding == "occluded" else 0.0,
        unit=unit,
        top=top,
        cx=cx,
        build=rng.uniform(0.9, 1.1),
        arm_angles=arms,
        elbow_bends=bends,
        leg_angles=legs,
        background=rng.choices(("gradient", "street", "texture", "clutter"), weights=(1, 3, 1, 2))[0],
        gain=rng.uniform(0.72, 1.2),
        light_slope=(rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)),
        blur=0.0 if sharp else rng.uniform(0.15, 1.0),
        noise=rng.uniform(0.0, 9.0),
        jpeg_quality=0 if rng.random() < 0.2 else rng.randint(25, 95),
        colour_jitter=10.0,
    )


def plain_scene(canvas: tuple[int, int]) -> Scene:
    """A neutral front view on a flat grey background with no camera defects (for tests and debugging)."""
    width, height = canvas
    unit = height * 0.9 / 100.0
    return Scene(
        view="front",
        mirror=1,
        crop="full",
        occluder=0.0,
        unit=unit,
        top=0.05 * height,
        cx=width / 2,
        build=1.0,
        arm_angles=(10.0, 10.0),
        elbow_bends=(0.0, 0.0),
        leg_angles=(3.0, 3.0),
        background="plain",
        gain=1.0,
        light_slope=(0.0, 0.0),
        blur=0.0,
        noise=0.0,
        jpeg_quality=0,
        colour_jitter=0.0,
    )


def _random_colour(rng: random.Random, lo: int = 40, hi: int = 220) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _gradient(width: int, height: int, top: tuple[int, ...], bottom: tuple[int, ...]) -> Image.Image:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    # One pixel wide, then stretched: much cheaper than filling the full array.
    return Image.fromarray(column.astype(np.uint8), "RGB").resize((width, height), Image.NEAREST)


def _street(image: Image.Image, rng: random.Random) -> None:
    """Building fronts of several colours with windows above a pavement with perspective seams."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.45, 0.7))
    x = -rng.randint(0, width // 3)
    while x < width:
        w = rng.randint(width // 4, width)
        colour = _random_colour(rng, 50, 210)
        roof = rng.randint(0, horizon // 3)
        draw.rectangle((x, roof, x + w, horizon), fill=colour)
        window = tuple(max(0, c - rng.randint(30, 70)) for c in colour)
        step = rng.randint(height // 16, height // 8)
        for wy in range(roof + step // 2, horizon - step, step):
            for wx in range(x + step // 3, x + w - step // 2, step):
                draw.rectangle((wx, wy, wx + step // 2, wy + step // 2), fill=window)
        x += w
    ground = _random_colour(rng, 70, 170)
    draw.rectangle((0, horizon, width, height), fill=ground)
    seam = tuple(max(0, c - 25) for c in ground)
    for i in range(-4, 9):
        draw.line((width / 2 + i * width / 8, horizon, width / 2 + i * width / 2.5, height), fill=seam, width=2)
    for y in range(horizon, height, max(4, height // 14)):
        draw.line((0, y, width, y), fill=seam, width=1)


def _texture(image: Image.Image, rng: random.Random) -> None:
    """Brick or stripe pattern over the whole frame."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    colour = _random_colour(rng)
    mortar = tuple(min(255, c + rng.randint(20, 60)) for c in colour)
    bh = rng.randint(height // 40, height // 12)
    bw = bh * rng.randint(2, 4)
    if rng.random() < 0.5:
        for row, y in enumerate(range(0, height, bh)):
            draw.line((0, y, width, y), fill=mortar, width=2)
            for x in range(-(row % 2) * bw // 2, width, bw):
                draw.line((x, y, x, y + bh), fill=mortar, width=2)
    else:
        for x in range(-height, width, bw):
            draw.line((x, 0, x + height * rng.uniform(0.0, 0.6), height), fill=mortar, width=max(2, bh // 2))


def _clutter(image: Image.Image, rng: random.Random) -> None:
    """Random boxes, poles and blobs: parked things, signs, plants."""
    width, height = image.size
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(4, 12)):
        colour = _random_colour(rng, 20, 235)
        x, y = rng.uniform(-0.1, 1.0) * width, rng.uniform(0.0, 1.0) * height
        w, h = rng.uniform(0.05, 0.5) * width, rng.uniform(0.03, 0.3) * height
        kind = rng.random()
        if kind < 0.4:
            draw.rectangle((x, y, x + w, y + h), fill=colour)
        elif kind < 0.7:
            draw.ellipse((x, y, x + w, y + h), fill=colour)
        else:
            draw.rectangle((x, y, x + max(2.0, w / 10), height), fill=colour)


def draw_background(size: tuple[int, int], scene: Scene, rng: random.Random) -> Image.Image:
    width, height = size
    if scene.background == "plain":
        return Image.new("RGB", size, (128, 128, 128))
    image = _gradient(width, height, _random_colour(rng), _random_colour(rng))
    if scene.background == "street":
        _street(image, rng)
    elif scene.background == "texture":
        _texture(image, rng)
    elif scene.background == "clutter":
        if rng.random() < 0.5:
            _street(image, rng)
        _clutter(image, rng)
    return image


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Standard normal samples drawn once; images take slices of it (drawing fresh ones costs more than the rest)."""
    return np.random.default_rng(20240607).standard_normal(1 << 21, dtype=np.float32)


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    count = int(np.prod(shape))
    bank = _noise_bank()
    if count > bank.size // 2:
        return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    start = random.Random(seed).randrange(bank.size - count)
    return bank[start : start + count].reshape(shape)


def apply_camera(image: Image.Image, scene: Scene, seed: int) -> Image.Image:
    """Low-resolution blur, lighting (overall gain and a linear slope), Gaussian noise, then a JPEG round trip."""
    if scene.blur > 0:
        # A camera that resolved less: scale down and back up (cheaper than a Gaussian, and looks the part).
        width, height = image.size
        factor = 1.0 + scene.blur
        small = image.resize((max(1, round(width / factor)), max(1, round(height / factor))), Image.BILINEAR)
        image = small.resize((width, height), Image.BILINEAR)
    if scene.gain != 1.0 or scene.light_slope != (0.0, 0.0) or scene.noise > 0:
        width, height = image.size
        sx, sy = scene.light_slope
        gx = np.linspace(-sx, sx, width, dtype=np.float32)[None, :]
        gy = np.linspace(-sy, sy, height, dtype=np.float32)[:, None]
        gain = (scene.gain * (1.0 + gx + gy))[:, :, None]
        pixels = np.asarray(image, dtype=np.float32) * gain
        if scene.noise > 0:
            pixels += _noise(pixels.shape, seed) * scene.noise
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if scene.jpeg_quality:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=scene.jpeg_quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            image = decoded.convert("RGB")
    return image
