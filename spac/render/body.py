"""Body geometry and the painter the renderer draws with.

Coordinates are body units: 1/100 of the person's height, x = 0 on the body's centre line, y = 0 at
the top of the head, y = 100 at the soles. A side view faces +x; the painter's mirror flips x so one
drawing routine serves both facings (and both hands in front and back views).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from PIL import Image, ImageDraw

from spac.render.scene import Scene

Point = tuple[float, float]
RGB = tuple[int, int, int]

# Label ids of the debug part map, in drawing layers; "detail" marks seams, buttons, faces, shadows.
PARTS = ("background", "skin", "hair", "upper", "lower", "shoes", "belongings", "detail")
PART_IDS = {name: i for i, name in enumerate(PARTS)}

ARM_WIDTHS = (4.6, 3.8, 3.0)  # shoulder, elbow, wrist
LEG_WIDTHS = (7.6, 5.2, 3.7)  # hip, knee, ankle
UPPER_ARM, FOREARM, THIGH, SHIN = 16.0, 15.0, 22.0, 21.0


def rotate(origin: Point, length: float, degrees: float) -> Point:
    """The point `length` units from origin, `degrees` away from straight down (positive turns towards +x)."""
    a = math.radians(degrees)
    return (origin[0] + length * math.sin(a), origin[1] + length * math.cos(a))


def along(points: list[Point], fraction: float) -> list[Point]:
    """The polyline's first `fraction` of its length (for sleeves, shorts, boot shafts)."""
    lengths = [math.dist(a, b) for a, b in zip(points, points[1:])]
    remaining = fraction * sum(lengths)
    out = [points[0]]
    for (a, b), length in zip(zip(points, points[1:]), lengths):
        if remaining >= length:
            out.append(b)
            remaining -= length
            continue
        t = remaining / length if length else 0.0
        out.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
        break
    return out


def shade(rgb: RGB, factor: float) -> RGB:
    """A darker (factor < 1) or lighter (> 1) version; very dark colours get lighter so details stay visible."""
    if factor < 1 and sum(rgb) < 150:  # on near-black garments a darker seam would not show
        factor = 2.6 - factor
    return tuple(max(0, min(255, int(c * factor + (factor > 1) * 12))) for c in rgb)  # type: ignore[return-value]


class Painter:
    """Draws body-unit shapes onto the image and, for debugging, each shape's part id onto a label map."""

    def __init__(self, image: Image.Image, labels: Image.Image | None, scene: Scene):
        self._image = image
        self._draw = ImageDraw.Draw(image)
        self._labels = ImageDraw.Draw(labels) if labels is not None else None
        self._cx, self._top, self.unit, self._mirror = scene.cx, scene.top, scene.unit, scene.mirror

    def zoom(self, origin: Point, factor: float) -> Painter:
        """A painter drawing `factor` times larger around `origin` (small parts such as shoes read better)."""
        zoomed = copy.copy(self)
        zoomed._cx = self._cx + self._mirror * origin[0] * self.unit * (1 - factor)
        zoomed._top = self._top + origin[1] * self.unit * (1 - factor)
        zoomed.unit = self.unit * factor
        return zoomed

    def shadow(self, centre: Point, rx: float, ry: float) -> None:
        """A ground shadow: the background colour under `centre`, darkened (it is not part of the person)."""
        x, y = self.px(centre)
        width, height = self._image.size
        below = self._image.getpixel((min(max(int(x), 0), width - 1), min(max(int(y), 0), height - 1)))
        self.ellipse(centre, rx, ry, tuple(int(c * 0.6) for c in below), "background")

    def px(self, p: Point) -> Point:
        return (self._cx + self._mirror * p[0] * self.unit, self._top + p[1] * self.unit)

    def polygon(self, points: list[Point], rgb: RGB, part: str) -> None:
        pts = [self.px(p) for p in points]
        self._draw.polygon(pts, fill=rgb)
        if self._labels is not None:
            self._labels.polygon(pts, fill=PART_IDS[part])

    def ellipse(self, centre: Point, rx: float, ry: float, rgb: RGB, part: str) -> None:
        x, y = self.px(centre)
        box = (x - rx * self.unit, y - ry * self.unit, x + rx * self.unit, y + ry * self.unit)
        self._draw.ellipse(box, fill=rgb)
        if self._labels is not None:
            self._labels.ellipse(box, fill=PART_IDS[part])

    def chord(self, centre: Point, rx: float, ry: float, start: float, end: float, rgb: RGB, part: str) -> None:
        """Part of an ellipse cut by a straight line; angles in degrees, 0 = +x, 90 = down, as seen facing +x."""
        x, y = self.px(centre)
        if self._mirror < 0:
            start, end = 180.0 - end, 180.0 - start
        box = (x - rx * self.unit, y - ry * self.unit, x + rx * self.unit, y + ry * self.unit)
        self._draw.chord(box, start, end, fill=rgb)
        if self._labels is not None:
            self._labels.chord(box, start, end, fill=PART_IDS[part])

    def line(self, points: list[Point], width: float, rgb: RGB, part: str) -> None:
        pts = [self.px(p) for p in points]
        w = max(1, round(width * self.unit))
        self._draw.line(pts, fill=rgb, width=w, joint="curve")
        if self._labels is not None:
            self._labels.line(pts, fill=PART_IDS[part], width=w, joint="curve")

    def limb(self, points: list[Point], widths: list[float] | tuple[float, ...], rgb: RGB, part: str) -> None:
        """A tapered tube through the points, `widths[i]` wide at points[i], with rounded joints."""
        left, right = [], []
        for i, (x, y) in enumerate(points):
            a = points[max(0, i - 1)]
            b = points[min(len(points) - 1, i + 1)]
            dx, dy = b[0] - a[0], b[1] - a[1]
            norm = math.hypot(dx, dy) or 1.0
            nx, ny = -dy / norm * widths[i] / 2, dx / norm * widths[i] / 2
            left.append((x + nx, y + ny))
            right.append((x - nx, y - ny))
        self.polygon(left + right[::-1], rgb, part)
        for p, w in zip(points[1:], widths[1:]):
            self.ellipse(p, w / 2, w / 2, rgb, part)


@dataclass
class Body:
    """Joint positions of one posed person, in body units."""

    view: str
    female: bool
    depth: float  # torso width factor: 1 facing the camera, narrower from the side
    shoulder: float  # half-widths
    waist: float
    hip: float
    head: Point
    head_r: Point
    arms: list[list[Point]]  # [near/holding arm, other arm]: shoulder, elbow, hand
    arm_behind: list[bool]  # drawn before the torso (hidden hand or far arm)
    legs: list[list[Point]]  # [near leg, far leg]: hip, knee, ankle

    def half_width(self, y: float) -> float:
        """Torso half-width at height y (shoulders to below the hips)."""
        stops = (
            (18.0, self.shoulder),
            (26.0, self.shoulder - 1.0),
            (40.0, self.waist),
            (50.0, self.hip),
            (100.0, self.hip + 6.0),
        )
        if y <= stops[0][0]:
            return stops[0][1] * self.depth
        for (y0, w0), (y1, w1) in zip(stops, stops[1:]):
            if y <= y1:
                return (w0 + (w1 - w0) * (y - y0) / (y1 - y0)) * self.depth
        return stops[-1][1] * self.depth

    def torso(self, hem: float, extra: float = 0.0, inset: float = 0.0) -> list[Point]:
        """Outline of a garment body from the neck to `hem`, `extra` units wider, shoulders `inset` narrower."""
        neck = 2.6 * max(self.depth, 0.8)
        ys = [y for y in (26.0, 34.0, 40.0, 46.0, 50.0, 60.0, 70.0, 80.0) if y < hem] + [hem]
        right = [(neck, 15.6), ((self.shoulder - inset) * self.depth + extra * 0.6, 17.6)]
        right += [(self.half_width(y) + extra, y) for y in ys]
        left = [(-x, y) for x, y in right]
        return right + left[::-1]

    def front_x(self) -> float:
        """x of the garment centre line that faces the camera (the chest edge in a side view)."""
        return self.shoulder * self.depth * 0.75 if self.view == "side" else 0.0


def pose_body(scene: Scene, female: bool, belongings: str) -> Body:
    """Place the joints from the scene's pose; the holding arm follows what the person carries."""
    side = scene.view == "side"
    depth = 0.58 if side else 1.0
    shoulder = (9.0 if female else 10.6) * scene.build
    waist = (6.6 if female else 7.8) * scene.build
    hip = (8.6 if female else 8.0) * scene.build
    joint_x = 0.0 if side else shoulder - 2.2
    raised = belongings in ("phone", "umbrella")  # held in front of the chest by the first arm
    arms, behind = [], []
    for i, sign in enumerate((1, -1)):
        s = (sign * joint_x, 19.5)
        angle, bend = scene.arm_angles[i], scene.elbow_bends[i]
        if not side:
            angle, bend = sign * angle, sign * bend
        elbow = rotate(s, UPPER_ARM, angle)
        hand = rotate(elbow, FOREARM, angle + bend)
        if i == 0 and raised:
            elbow = rotate(s, UPPER_ARM, 8.0 if side else sign * 6.0)
            hand = (shoulder * depth + 3.5, 32.0) if side else (sign * joint_x * 0.3, 31.0)
        if i == 0 and belongings == "suitcase" and not side:
            elbow = rotate(s, UPPER_ARM, 16.0)
            hand = rotate(elbow, FOREARM, 20.0)
        arms.append([s, elbow, hand])
        behind.append(side and i == 1 or scene.view == "back" and i == 0 and raised)
    legs = []
    hip_x = 0.0 if side else hip * 0.5
    for i, sign in enumerate((1, -1)):
        h = (sign * hip_x, 50.0)
        angle = scene.leg_angles[i] if side else sign * scene.leg_angles[i]
        knee = rotate(h, THIGH, angle)
        ankle = rotate(knee, SHIN, angle - (12.0 if side and angle < 0 else 0.0))
        legs.append([h, knee, ankle])
    return Body(
        scene.view,
        female,
        depth,
        shoulder,
        waist,
        hip,
        (0.0, 7.0),
        (5.0 * (1.06 if side else 1.0), 6.6),
        arms,
        behind,
        legs,
    )
