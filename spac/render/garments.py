"""Garment painters: one routine per upper-garment, lower-garment and shoe item of the schema.

Each routine draws its item in body units on a `Painter` (see spac.render.body) with the item's
colour; shapes are chosen so items stay distinguishable at 128x256 (sleeve length, collars, hems,
quilting bands, soles, shafts).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from spac.render.body import ARM_WIDTHS, LEG_WIDTHS, RGB, Body, Painter, Point, along, shade

WHITE: RGB = (238, 238, 234)


@dataclass
class Outfit:
    """Everything a garment routine needs: where to draw, the posed body, colours, and randomness."""

    p: Painter
    body: Body
    skin: RGB
    rng: random.Random


# ---------------------------------------------------------------- upper garments


@dataclass(frozen=True)
class UpperCut:
    hem: float  # y of the hem
    sleeve: float  # fraction of the arm the sleeve covers (0 = sleeveless)
    puff: float  # extra width in body units
    inset: float = 0.0  # narrower shoulders (vest)
    flare: float = 0.0  # extra width at the hem


UPPER_CUTS = {
    "t-shirt": UpperCut(49.0, 0.36, 0.4),
    "shirt": UpperCut(50.0, 1.0, 0.3),
    "jacket": UpperCut(49.0, 1.0, 0.9),
    "coat": UpperCut(74.0, 1.0, 1.0),
    "sweater": UpperCut(50.0, 1.0, 0.7),
    "hoodie": UpperCut(51.0, 1.0, 0.9),
    "vest": UpperCut(48.0, 0.0, 0.0, inset=3.2),
    "blouse": UpperCut(52.0, 0.68, 0.5, flare=2.0),
    "polo shirt": UpperCut(49.0, 0.36, 0.4),
    "down jacket": UpperCut(51.0, 1.0, 2.2),
}


def _torso_outline(o: Outfit, cut: UpperCut) -> list[Point]:
    pts = o.body.torso(cut.hem, cut.puff, cut.inset)
    if cut.flare:
        n = len(pts) // 2
        pts[n - 1] = (pts[n - 1][0] + cut.flare, pts[n - 1][1])
        pts[n] = (pts[n][0] - cut.flare, pts[n][1])
    return pts


def draw_arm(o: Outfit, arm: list[Point], item: str, rgb: RGB) -> None:
    """A bare arm and hand, then the sleeve of the upper garment over it."""
    cut = UPPER_CUTS[item]
    o.p.limb(arm, ARM_WIDTHS, o.skin, "skin")
    hand = arm[-1]
    wrist_dir = (hand[0] - arm[1][0], hand[1] - arm[1][1])
    o.p.ellipse((hand[0] + wrist_dir[0] * 0.12, hand[1] + wrist_dir[1] * 0.12), 1.9, 2.3, o.skin, "skin")
    if cut.sleeve <= 0:
        return
    sleeve = along(arm, cut.sleeve * 0.97)
    grow = 0.9 + cut.puff * 0.6
    widths = [w + grow for w in ARM_WIDTHS[: len(sleeve)]]
    if item == "blouse":  # bell sleeves widen towards the cuff
        widths[-1] += 1.6
    o.p.ellipse(arm[0], widths[0] / 2 + 0.4, widths[0] / 2 + 0.4, rgb, "upper")
    o.p.limb(sleeve, widths, rgb, "upper")
    end, before = sleeve[-1], sleeve[-2]
    if item in ("sweater", "polo shirt", "hoodie", "down jacket"):  # ribbed cuff / sleeve band
        band = [end, (end[0] + (before[0] - end[0]) * 0.2, end[1] + (before[1] - end[1]) * 0.2)]
        o.p.limb(band, [widths[-1] + 0.2] * 2, shade(rgb, 0.8), "detail")
    if item == "down jacket":  # quilting seams across the sleeve
        for f in (0.25, 0.5, 0.75):
            (ax, ay), (bx, by) = along(sleeve, f)[-1], along(sleeve, f + 0.05)[-1]
            norm = math.hypot(bx - ax, by - ay) or 1.0
            nx, ny = -(by - ay) / norm * widths[0] / 2, (bx - ax) / norm * widths[0] / 2
            o.p.line([(ax - nx, ay - ny), (ax + nx, ay + ny)], 0.5, shade(rgb, 0.7), "detail")


def _neckline(o: Outfit, depth: float, width: float) -> None:
    fx = o.body.front_x()
    if o.body.view == "back":
        return
    o.p.polygon([(fx - width, 15.4), (fx + width, 15.4), (fx, 15.4 + depth)], o.skin, "skin")


def _collar(o: Outfit, rgb: RGB) -> None:
    fx = o.body.front_x()
    colour = shade(rgb, 0.82)
    for s in (1, -1):
        o.p.polygon([(fx + s * 0.3, 15.6), (fx + s * 3.6, 15.2), (fx + s * 1.4, 19.5)], colour, "detail")


def _buttons(o: Outfit, rgb: RGB, ys: tuple[float, ...]) -> None:
    fx = o.body.front_x()
    colour = shade(rgb, 0.6)
    o.p.line([(fx, ys[0] - 1.5), (fx, ys[-1] + 1.5)], 0.35, colour, "detail")
    for y in ys:
        o.p.ellipse((fx, y), 0.55, 0.55, colour, "detail")


def _t_shirt(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    _neckline(o, 2.2, 2.3)


def _shirt(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    _neckline(o, 2.4, 1.2)
    if o.body.view != "back":
        _buttons(o, rgb, (21.0, 26.0, 31.0, 36.0, 41.0, 46.0))
    _collar(o, rgb)


def _polo(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    _neckline(o, 1.8, 1.0)
    if o.body.view != "back":
        _buttons(o, rgb, (18.5, 21.0))
    _collar(o, rgb)


def _jacket(o: Outfit, rgb: RGB, cut: UpperCut, always_open: bool = False) -> None:
    p, fx = o.p, o.body.front_x()
    if o.body.view != "back":
        if always_open or o.rng.random() < 0.5:  # open front: the top underneath shows
            inner = o.rng.choice((WHITE, (30, 30, 32), (150, 150, 150)))
            p.polygon([(fx - 2.4, 15.6), (fx + 2.4, 15.6), (fx + 1.6, 46.0), (fx - 1.6, 46.0)], inner, "detail")
            for s in (1, -1):  # lapels
                p.polygon([(fx + s * 2.4, 15.6), (fx + s * 4.4, 17.0), (fx + s * 1.6, 30.0)], shade(rgb, 0.8), "detail")
        else:  # closed with a zip
            p.line([(fx, 16.0), (fx, cut.hem - 0.5)], 0.45, shade(rgb, 0.6), "detail")
            _neckline(o, 1.2, 1.4)
    half = o.body.half_width(44.0)
    p.line([(half * 0.5 + fx, 44.0), (half * 0.9 + fx, 44.5)], 0.4, shade(rgb, 0.7), "detail")  # pocket flap


def _coat(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    _jacket(o, rgb, cut, always_open=True)
    if o.body.view != "back":
        for y in (34.0, 40.0):
            o.p.ellipse((o.body.front_x() + 2.2, y), 0.6, 0.6, shade(rgb, 0.6), "detail")


def _sweater(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    p = o.p
    if o.body.view != "back":
        p.ellipse((o.body.front_x(), 15.8), 2.9, 1.5, shade(rgb, 0.8), "detail")  # crew neck
        _neckline(o, 1.0, 2.0)
    hem, half = cut.hem, o.body.half_width(cut.hem) + cut.puff
    p.polygon([(-half, hem - 2.2), (half, hem - 2.2), (half, hem), (-half, hem)], shade(rgb, 0.82), "detail")
    for i in range(-4, 5):  # ribbed waistband
        p.line([(i * half / 4.5, hem - 2.2), (i * half / 4.5, hem)], 0.25, shade(rgb, 0.65), "detail")


def _hoodie(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    p, fx = o.p, o.body.front_x()
    if o.body.view == "back":  # the hood lies on the back
        p.ellipse((0.0, 20.0), 5.2, 4.6, shade(rgb, 0.85), "detail")
        p.line([(-4.0, 18.0), (0.0, 23.5), (4.0, 18.0)], 0.3, shade(rgb, 0.6), "detail")
        return
    _neckline(o, 1.4, 1.6)
    for s in (1, -1):  # drawstrings
        p.line([(fx + s * 1.3, 16.5), (fx + s * 1.6, 24.0)], 0.35, WHITE, "detail")
    pw = o.body.half_width(44.0) * 0.6  # front pocket
    p.polygon(
        [(fx - pw, 39.0), (fx + pw, 39.0), (fx + pw + 1.5, 47.0), (fx - pw - 1.5, 47.0)], shade(rgb, 0.85), "detail"
    )


def _vest(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    _neckline(o, 6.0, 3.0)


def _blouse(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    fx, half = o.body.front_x(), o.body.half_width(44.0)
    if o.body.view != "back":
        _neckline(o, 5.0, 2.4)
        for t in (0.25, 0.5, 0.75):  # frill along the V
            for s in (1, -1):
                o.p.ellipse((fx + s * 2.4 * (1 - t), 15.4 + 5.0 * t), 0.7, 0.7, shade(rgb, 1.2), "detail")
    o.p.line([(-half, 44.0), (half, 44.0)], 0.35, shade(rgb, 0.8), "detail")  # gathered waist


def _down_jacket(o: Outfit, rgb: RGB, cut: UpperCut) -> None:
    p, fx = o.p, o.body.front_x()
    for y in range(22, int(cut.hem), 5):  # horizontal quilting bands
        half = o.body.half_width(float(y)) + cut.puff
        p.line([(-half + 0.3, float(y)), (half - 0.3, float(y))], 0.55, shade(rgb, 0.7), "detail")
    if o.body.view != "back":
        p.line([(fx, 16.0), (fx, cut.hem - 0.5)], 0.35, shade(rgb, 0.55), "detail")
    p.ellipse((fx, 16.2), 3.4, 1.9, shade(rgb, 0.9), "detail")  # padded collar


UPPER_DETAILS: dict[str, Callable[[Outfit, RGB, UpperCut], None]] = {
    "t-shirt": _t_shirt,
    "shirt": _shirt,
    "jacket": _jacket,
    "coat": _coat,
    "sweater": _sweater,
    "hoodie": _hoodie,
    "vest": _vest,
    "blouse": _blouse,
    "polo shirt": _polo,
    "down jacket": _down_jacket,
}


def draw_upper_torso(o: Outfit, item: str, rgb: RGB) -> None:
    """The garment body and its details (sleeves are drawn with the arms)."""
    cut = UPPER_CUTS[item]
    if item == "coat":
        # Open below the waist (a back vent from behind): the slit shows the lower garment.
        b, fx = o.body, o.body.front_x()
        o.p.polygon(b.torso(46.0, cut.puff), rgb, "upper")
        ys = [45.5, 50.0, 60.0, 70.0, cut.hem]
        for s in (1, -1):
            outer = [(s * (b.half_width(y) + cut.puff), y) for y in ys]
            o.p.polygon([(fx + s * 0.3, 45.5)] + outer + [(fx + s * 3.0, cut.hem)], rgb, "upper")
    else:
        o.p.polygon(_torso_outline(o, cut), rgb, "upper")
    UPPER_DETAILS[item](o, rgb, cut)


def draw_hood_behind(o: Outfit, rgb: RGB) -> None:
    """The hood of a hoodie seen from the front or side: a roll around the neck, behind the head."""
    x = -3.0 if o.body.view == "side" else 0.0
    o.p.ellipse((x, 15.0), 6.0 if o.body.view != "side" else 4.0, 3.2, shade(rgb, 0.9), "detail")


# ---------------------------------------------------------------- lower garments


def _pelvis(o: Outfit, rgb: RGB, bottom: float = 57.0, extra: float = 0.4) -> None:
    b = o.body
    pts = [(b.half_width(y) + extra, y) for y in (43.0, 50.0)]
    crotch_w = b.hip * 0.55 * b.depth
    pts += [(crotch_w + extra, bottom), (-crotch_w - extra, bottom)] + [(-x, y) for x, y in pts[::-1]]
    o.p.polygon(pts, rgb, "lower")


def _legs_garment(o: Outfit, rgb: RGB, fraction: float, grow: float, part: str = "lower") -> list[list[Point]]:
    tubes = []
    for leg in o.body.legs[::-1]:  # far leg first
        tube = along(leg, fraction)
        o.p.limb(tube, [w + grow for w in LEG_WIDTHS[: len(tube)]], rgb, part)
        tubes.append(tube)
    return tubes


def _trousers(o: Outfit, rgb: RGB) -> None:
    _pelvis(o, rgb)
    for tube in _legs_garment(o, rgb, 0.97, 1.4):
        o.p.line([along(tube, 0.05)[-1], along(tube, 0.95)[-1]], 0.25, shade(rgb, 0.75), "detail")


def _jeans(o: Outfit, rgb: RGB) -> None:
    _pelvis(o, rgb)
    seam = shade(rgb, 1.35)
    for tube in _legs_garment(o, rgb, 0.97, 1.0):
        ox = 1.6 if tube[0][0] >= 0 else -1.6  # outer seam
        o.p.line([(x + ox, y) for x, y in along(tube, 0.97)], 0.3, seam, "detail")
        for _ in range(5):  # denim twill streaks
            f = o.rng.uniform(0.1, 0.9)
            x, y = along(tube, f)[-1]
            o.p.line([(x - 1.2, y), (x + 0.4, y - 1.6)], 0.2, shade(rgb, 0.8), "detail")
    for s in (1, -1):  # front pocket stitching
        o.p.line([(s * (o.body.hip - 1.0) * o.body.depth, 45.5), (s * 3.0 * o.body.depth, 48.5)], 0.3, seam, "detail")
    o.p.line([(-o.body.half_width(44.0), 44.0), (o.body.half_width(44.0), 44.0)], 0.3, seam, "detail")


def _shorts(o: Outfit, rgb: RGB) -> None:
    _pelvis(o, rgb)
    _legs_garment(o, rgb, 0.3, 2.2)


def _skirt_shape(o: Outfit, rgb: RGB, top: float, hem: float, flare: float) -> None:
    b = o.body
    t = b.half_width(top) + 0.5
    h = (b.hip * flare + abs(b.legs[0][1][0] - b.legs[1][1][0]) * 0.3) * b.depth
    o.p.polygon(
        [(t, top), (b.half_width(50.0) + 0.6, 50.0), (h, hem), (-h, hem), (-b.half_width(50.0) - 0.6, 50.0), (-t, top)],
        rgb,
        "lower",
    )
    o.p.line([(-h * 0.95, hem - 0.4), (h * 0.95, hem - 0.4)], 0.4, shade(rgb, 0.8), "detail")


def _skirt(o: Outfit, rgb: RGB) -> None:
    _skirt_shape(o, rgb, 43.0, 64.0, 1.45)


def _long_skirt(o: Outfit, rgb: RGB) -> None:
    _skirt_shape(o, rgb, 43.0, 90.0, 1.7)


def _dress(o: Outfit, rgb: RGB) -> None:
    _skirt_shape(o, rgb, 30.0, 76.0, 1.6)
    o.p.line([(-o.body.half_width(42.0), 42.0), (o.body.half_width(42.0), 42.0)], 0.6, shade(rgb, 0.75), "detail")


def _leggings(o: Outfit, rgb: RGB) -> None:
    _pelvis(o, rgb, 55.0, 0.1)
    _legs_garment(o, rgb, 0.99, 0.15)


def _sweatpants(o: Outfit, rgb: RGB) -> None:
    _pelvis(o, rgb, 57.0, 0.8)
    for tube in _legs_garment(o, rgb, 0.93, 2.8):
        cuff = tube[-1]
        o.p.ellipse((cuff[0], cuff[1]), (LEG_WIDTHS[-1] + 1.6) / 2, 1.3, shade(rgb, 0.8), "detail")
    o.p.line([(-0.8, 44.0), (-1.2, 49.0)], 0.3, WHITE, "detail")
    o.p.line([(0.8, 44.0), (1.2, 49.0)], 0.3, WHITE, "detail")


LOWER: dict[str, Callable[[Outfit, RGB], None]] = {
    "trousers": _trousers,
    "jeans": _jeans,
    "shorts": _shorts,
    "skirt": _skirt,
    "long skirt": _long_skirt,
    "dress": _dress,
    "leggings": _leggings,
    "sweatpants": _sweatpants,
}


# ---------------------------------------------------------------- shoes


def _foot(o: Outfit, ankle: Point, top: float, toe: float = 7.5) -> list[Point]:
    """Outline of a shoe over the foot below `ankle`, its top `top` units below the ankle."""
    x, y = ankle
    if o.body.view == "side":
        return [
            (x - 2.3, y + top),
            (x + 1.5, y + top + 0.5),
            (x + toe, y + 3.6),
            (x + toe + 0.2, y + 5.6),
            (x - 2.4, y + 5.6),
        ]
    return [(x - 2.3, y + top), (x + 2.3, y + top), (x + 2.7, y + 5.6), (x - 2.7, y + 5.6)]


def _sole(o: Outfit, ankle: Point, rgb: RGB, height: float, toe: float = 7.5) -> None:
    x, y = ankle
    x0, x1 = (x - 2.5, x + toe + 0.4) if o.body.view == "side" else (x - 2.9, x + 2.9)
    o.p.polygon([(x0, y + 5.6 - height), (x1, y + 5.6 - height), (x1, y + 5.8), (x0, y + 5.8)], rgb, "detail")


def _bare_foot(o: Outfit, ankle: Point) -> None:
    o.p.polygon(_foot(o, ankle, 0.0, 6.5), o.skin, "skin")


def _sneakers(o: Outfit, ankle: Point, rgb: RGB) -> None:
    o.p.polygon(_foot(o, ankle, -0.8), rgb, "shoes")
    _sole(o, ankle, (185, 185, 185) if sum(rgb) > 600 else WHITE, 1.5)
    x, y = ankle
    lace = WHITE if sum(rgb) < 600 else (120, 120, 120)
    dx = 2.0 if o.body.view == "side" else 0.0
    o.p.line([(x + dx - 0.9, y + 1.2), (x + dx + 0.9, y + 1.2)], 0.3, lace, "detail")
    o.p.line([(x + dx - 0.9, y + 2.4), (x + dx + 0.9, y + 2.4)], 0.3, lace, "detail")


def _boots(o: Outfit, ankle: Point, rgb: RGB) -> None:
    x, y = ankle
    o.p.polygon([(x - 2.9, y - 11.0), (x + 2.9, y - 11.0), (x + 2.8, y + 1.0), (x - 2.8, y + 1.0)], rgb, "shoes")
    o.p.polygon(_foot(o, ankle, 0.0), rgb, "shoes")
    o.p.line([(x - 2.9, y - 10.6), (x + 2.9, y - 10.6)], 0.5, shade(rgb, 0.75), "detail")
    _sole(o, ankle, shade(rgb, 0.55), 1.0)


def _sandals(o: Outfit, ankle: Point, rgb: RGB) -> None:
    _bare_foot(o, ankle)
    x, y = ankle
    _sole(o, ankle, rgb, 0.9, 6.5)
    dx = 2.5 if o.body.view == "side" else 0.0
    for yy in (1.5, 3.4):
        o.p.line([(x + dx - 2.4, y + yy), (x + dx + 2.4, y + yy + 0.4)], 0.7, rgb, "shoes")


def _leather(o: Outfit, ankle: Point, rgb: RGB) -> None:
    o.p.polygon(_foot(o, ankle, 1.4, 8.3), rgb, "shoes")
    x, y = ankle
    dx = 4.0 if o.body.view == "side" else 0.0
    o.p.ellipse((x + dx, y + 3.6), 1.1, 0.45, shade(rgb, 1.5), "detail")  # polish highlight
    _sole(o, ankle, (35, 28, 24), 0.6, 8.3)


def _high_heels(o: Outfit, ankle: Point, rgb: RGB) -> None:
    x, y = ankle
    if o.body.view == "side":
        o.p.polygon(
            [
                (x - 1.8, y),
                (x + 1.6, y + 0.4),
                (x + 6.8, y + 4.6),
                (x + 7.0, y + 5.6),
                (x + 3.0, y + 5.2),
                (x - 1.6, y + 2.6),
            ],
            o.skin,
            "skin",
        )
        o.p.polygon(
            [
                (x - 2.0, y + 1.8),
                (x + 0.5, y + 2.6),
                (x + 4.0, y + 4.0),
                (x + 7.2, y + 4.8),
                (x + 7.2, y + 5.8),
                (x + 3.0, y + 5.4),
                (x - 1.8, y + 3.4),
            ],
            rgb,
            "shoes",
        )
        o.p.line([(x - 1.6, y + 3.2), (x - 1.3, y + 5.8)], 0.7, rgb, "shoes")  # stiletto
    else:
        o.p.polygon([(x - 1.8, y), (x + 1.8, y), (x + 2.0, y + 3.0), (x - 2.0, y + 3.0)], o.skin, "skin")
        o.p.polygon([(x - 2.3, y + 2.8), (x + 2.3, y + 2.8), (x + 1.8, y + 5.8), (x - 1.8, y + 5.8)], rgb, "shoes")
        o.p.line([(x - 1.9, y + 1.6), (x + 1.9, y + 1.6)], 0.4, rgb, "shoes")  # ankle strap


def _canvas(o: Outfit, ankle: Point, rgb: RGB) -> None:
    o.p.polygon(_foot(o, ankle, 0.6, 7.0), rgb, "shoes")
    x, y = ankle
    _sole(o, ankle, WHITE, 1.0, 7.0)
    if o.body.view == "side":
        o.p.ellipse((x + 6.0, y + 4.3), 1.6, 1.0, WHITE, "detail")  # rubber toe cap
        o.p.line([(x - 2.0, y + 3.5), (x + 4.0, y + 3.5)], 0.3, WHITE, "detail")
    elif o.body.view == "front":
        o.p.ellipse((x, y + 4.5), 2.0, 0.9, WHITE, "detail")


SHOES: dict[str, Callable[[Outfit, Point, RGB], None]] = {
    "sneakers": _sneakers,
    "boots": _boots,
    "sandals": _sandals,
    "leather shoes": _leather,
    "high heels": _high_heels,
    "canvas shoes": _canvas,
}
