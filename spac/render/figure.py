"""Draws one posed person: head, face and hair, then garments and belongings in back-to-front order."""

from __future__ import annotations

import dataclasses
import math

from spac.render.body import LEG_WIDTHS, RGB, Point, shade
from spac.render.garments import LOWER, SHOES, UPPER_CUTS, WHITE, Outfit, draw_arm, draw_hood_behind, draw_upper_torso

SKIN_TONES: tuple[RGB, ...] = (
    (255, 222, 196),
    (240, 192, 158),
    (222, 170, 126),
    (196, 134, 92),
    (150, 96, 62),
    (98, 62, 42),
)
HAIR_STYLES = ("short hair", "long hair", "ponytail", "curly hair")
BELONGINGS = ("backpack", "handbag", "shoulder bag", "suitcase", "umbrella", "phone", "nothing")
# The items this renderer can draw, per group; a schema item outside these is refused with a clear error.
DRAWN_ITEMS: dict[str, tuple[str, ...]] = {
    "gender": ("man", "woman"),
    "hair": HAIR_STYLES,
    "upper": tuple(UPPER_CUTS),
    "lower": tuple(LOWER),
    "shoes": tuple(SHOES),
    "belongings": BELONGINGS,
}
SHOE_ZOOM = 1.2  # shoes drawn a little larger than life so their kind reads at 128x256
# Lower garments that boots are tucked over (long skirts and dresses fall over the boots instead).
_TUCKABLE = ("trousers", "jeans", "leggings", "sweatpants", "shorts")


def _face(o: Outfit) -> None:
    p, view = o.p, o.body.view
    dark, lips = (40, 30, 28), shade(o.skin, 0.75)
    if view == "front":
        for s in (1, -1):
            p.ellipse((s * 4.9, 7.8), 0.9, 1.4, shade(o.skin, 0.92), "detail")  # ears
            p.ellipse((s * 1.9, 7.5), 0.6, 0.55, dark, "detail")
            p.line([(s * 1.1, 6.0), (s * 2.8, 5.9)], 0.35, dark, "detail")
        p.line([(-1.2, 10.6), (1.2, 10.6)], 0.45, (170, 70, 70) if o.body.female else lips, "detail")
    elif view == "side":
        p.polygon([(4.7, 6.5), (6.0, 9.0), (4.7, 9.3)], o.skin, "skin")  # nose
        p.ellipse((3.2, 7.4), 0.5, 0.5, dark, "detail")
        p.line([(3.4, 10.8), (4.6, 10.7)], 0.45, lips, "detail")
        p.ellipse((-0.6, 7.8), 0.9, 1.4, shade(o.skin, 0.92), "detail")  # ear


def _hair_cap(o: Outfit, style: str, rgb: RGB) -> None:
    p, view = o.p, o.body.view
    curly = style == "curly hair"
    if view == "back":
        p.ellipse((0.0, 6.5), 5.4, 6.9, rgb, "hair")
        arc = range(0, 360, 30)
        centre, rx, ry = (0.0, 6.5), 5.5, 6.9
    elif view == "side":
        p.chord((0.2, 6.4), 5.6, 6.7, 105.0, 345.0, rgb, "hair")
        arc = range(120, 350, 25)
        centre, rx, ry = (0.2, 6.4), 5.6, 6.7
    else:
        p.chord((0.0, 5.8), 5.5, 5.9, 186.0, 354.0, rgb, "hair")
        for s in (1, -1):  # sideburns / temples
            p.polygon([(s * 5.3, 4.8), (s * 4.3, 4.2), (s * 4.4, 7.5), (s * 5.1, 8.5)], rgb, "hair")
        arc = range(185, 360, 22)
        centre, rx, ry = (0.0, 5.8), 5.5, 5.9
    if curly:  # a bumpy outline of small curls
        for a in arc:
            r = math.radians(a)
            c = (centre[0] + rx * math.cos(r), centre[1] + ry * math.sin(r))
            p.ellipse(c, 1.7, 1.7, rgb, "hair")
            p.ellipse(c, 0.6, 0.6, shade(rgb, 0.75), "detail")


def _hair_behind_body(o: Outfit, style: str, rgb: RGB) -> None:
    """Long hair seen from the front: the mass behind the shoulders frames the neck and face."""
    if o.body.view == "front" and style in ("long hair", "curly hair"):
        length = 27.0 if style == "long hair" else 15.0
        o.p.polygon([(-6.0, 3.0), (6.0, 3.0), (7.0, length), (-7.0, length)], rgb, "hair")


def _hair_behind_head(o: Outfit, style: str, rgb: RGB) -> None:
    """Hair drawn over the garment but under the head: strands over the shoulders, ponytails."""
    p, view = o.p, o.body.view
    if style == "long hair" and view == "front":
        for s in (1, -1):
            p.limb([(s * 4.6, 8.0), (s * 5.6, 17.0), (s * 5.4, 25.0)], (2.6, 2.6, 1.6), rgb, "hair")
    elif style == "long hair" and view == "side":
        p.polygon([(-1.0, 1.0), (-5.8, 4.0), (-7.4, 28.0), (-2.0, 29.0), (0.0, 12.0)], rgb, "hair")
    elif style == "ponytail" and view == "front":
        p.ellipse((4.6, 1.8), 2.2, 2.0, rgb, "hair")
        p.limb([(5.2, 3.0), (6.6, 10.0), (6.4, 17.0)], (2.6, 2.2, 1.4), rgb, "hair")
    elif style == "ponytail" and view == "side":
        p.limb([(-5.0, 3.5), (-7.2, 10.0), (-6.8, 20.0)], (3.0, 2.6, 1.6), rgb, "hair")


def _hair_over_back(o: Outfit, style: str, rgb: RGB) -> None:
    """Hair seen from behind, drawn over the back of the garment."""
    if style == "long hair":
        o.p.polygon([(-5.6, 4.0), (5.6, 4.0), (6.6, 28.0), (0.0, 29.5), (-6.6, 28.0)], rgb, "hair")
    elif style == "ponytail":
        o.p.ellipse((0.0, 4.0), 1.2, 1.0, shade(rgb, 0.7), "detail")
        o.p.limb([(0.0, 4.5), (0.6, 12.0), (0.0, 21.0)], (3.2, 2.8, 1.6), rgb, "hair")


def _backpack(o: Outfit, rgb: RGB, stage: str) -> None:
    p, b = o.p, o.body
    if b.view == "front" and stage == "behind":
        p.polygon([(-7.0, 14.2), (7.0, 14.2), (8.2, 44.0), (-8.2, 44.0)], rgb, "belongings")
    elif b.view == "front" and stage == "front":
        for s in (1, -1):
            p.limb([(s * 4.4, 16.0), (s * 5.6, 26.0), (s * 6.0, 37.0)], (2.0, 2.0, 1.8), rgb, "belongings")
            p.ellipse((s * 6.0, 35.0), 0.7, 0.5, shade(rgb, 0.6), "detail")
    elif b.view == "back" and stage == "torso":
        p.polygon([(-7.4, 20.5), (-6.0, 19.0), (6.0, 19.0), (7.4, 20.5), (7.8, 45.0), (-7.8, 45.0)], rgb, "belongings")
        p.polygon([(-5.0, 33.0), (5.0, 33.0), (5.4, 43.5), (-5.4, 43.5)], shade(rgb, 0.8), "detail")
        p.line([(-5.0, 26.0), (5.0, 26.0)], 0.4, shade(rgb, 0.6), "detail")
    elif b.view == "side" and stage == "torso":
        back = -b.half_width(30.0)
        p.polygon(
            [(back + 0.8, 19.5), (back - 4.5, 20.0), (back - 6.2, 24.0), (back - 6.4, 44.0), (back + 0.8, 45.0)],
            rgb,
            "belongings",
        )
        p.line([(back - 5.4, 30.0), (back - 5.4, 42.0)], 0.4, shade(rgb, 0.7), "detail")
    elif b.view == "side" and stage == "front":
        p.limb([(0.5, 17.0), (2.6, 25.0), (1.0, 37.0)], (1.8, 1.8, 1.6), rgb, "belongings")


def _shoulder_bag(o: Outfit, rgb: RGB) -> None:
    p, b = o.p, o.body
    if b.view == "side":
        start, bag = (0.5, 17.5), (-0.5, 49.0)
    else:
        start, bag = (-(b.shoulder - 3.0), 17.4), (b.shoulder + 0.2, 49.0)
    p.line([start, (bag[0], bag[1] - 4.0)], 0.9, shade(rgb, 0.8), "belongings")
    x, y = bag
    p.polygon([(x - 3.6, y - 4.0), (x + 3.6, y - 4.0), (x + 3.8, y + 4.0), (x - 3.8, y + 4.0)], rgb, "belongings")
    p.polygon(
        [(x - 3.6, y - 4.0), (x + 3.6, y - 4.0), (x + 3.4, y - 0.5), (x - 3.4, y - 0.5)], shade(rgb, 0.8), "detail"
    )


def _handbag(o: Outfit, rgb: RGB, hand: Point) -> None:
    x, y = hand
    o.p.line(
        [(x - 2.0, y + 3.0), (x - 0.6, y - 0.4), (x + 0.6, y - 0.4), (x + 2.0, y + 3.0)],
        0.6,
        shade(rgb, 0.7),
        "belongings",
    )
    o.p.polygon([(x - 3.6, y + 2.6), (x + 3.6, y + 2.6), (x + 4.4, y + 10.0), (x - 4.4, y + 10.0)], rgb, "belongings")
    o.p.line([(x - 3.5, y + 4.6), (x + 3.5, y + 4.6)], 0.3, shade(rgb, 0.7), "detail")


def _suitcase(o: Outfit, rgb: RGB, hand: Point) -> None:
    x, y = hand
    cx = x + (3.5 if o.body.view != "side" else 0.0)
    rod = (40, 40, 44)
    for dx in (-1.2, 1.2):
        o.p.line([(x + dx, y), (cx + dx * 1.5, y + 7.0)], 0.45, rod, "belongings")
    o.p.polygon([(cx - 5.8, y + 7.0), (cx + 5.8, y + 7.0), (cx + 5.8, 96.5), (cx - 5.8, 96.5)], rgb, "belongings")
    for dy in (0.3, 0.6):
        ry = y + 7.0 + dy * (96.5 - y - 7.0)
        o.p.line([(cx - 5.2, ry), (cx + 5.2, ry)], 0.35, shade(rgb, 0.7), "detail")
    for dx in (-4.2, 4.2):
        o.p.ellipse((cx + dx, 97.6), 1.0, 1.0, (30, 30, 30), "detail")


def _umbrella(o: Outfit, rgb: RGB, hand: Point) -> None:
    top_x = hand[0] * 0.5 if o.body.view != "side" else 2.0
    start = hand if o.body.view != "back" else (top_x, 1.0)
    o.p.line([start, (top_x, -4.0)], 0.5, (45, 45, 45), "belongings")
    o.p.chord((top_x, -0.5), 15.0, 8.0, 180.0, 360.0, rgb, "belongings")
    for dx in (-9.0, 0.0, 9.0):
        o.p.line([(top_x, -8.3), (top_x + dx, -0.7)], 0.3, shade(rgb, 0.7), "detail")
    o.p.line([(top_x, -8.3), (top_x, -9.5)], 0.5, (45, 45, 45), "belongings")


def _phone(o: Outfit, hand: Point) -> None:
    x, y = hand
    body = o.rng.choice(((25, 25, 28), (220, 220, 222), (70, 90, 120)))
    o.p.polygon([(x - 1.2, y - 3.4), (x + 1.2, y - 3.4), (x + 1.2, y + 0.8), (x - 1.2, y + 0.8)], body, "belongings")
    if o.body.view == "front":
        o.p.polygon(
            [(x - 0.8, y - 3.0), (x + 0.8, y - 3.0), (x + 0.8, y + 0.2), (x - 0.8, y + 0.2)],
            (90, 150, 200),
            "belongings",
        )
    o.p.ellipse((x, y + 0.8), 1.6, 1.2, o.skin, "skin")  # fingers around it


def _shoes(o: Outfit, item: str, rgb: RGB) -> None:
    for leg in o.body.legs[::-1]:
        ankle = leg[-1]
        SHOES[item](dataclasses.replace(o, p=o.p.zoom(ankle, SHOE_ZOOM)), ankle, rgb)


def draw_person(o: Outfit, items: dict[str, str], colours: dict[str, RGB]) -> None:
    """Draw the person whose item per group is `items` (gender excluded) with the jittered `colours`."""
    b, p = o.body, o.p
    hair, upper, lower, shoes, belongings = (items[g] for g in ("hair", "upper", "lower", "shoes", "belongings"))
    feet_y = max(leg[-1][1] for leg in b.legs) + SHOE_ZOOM * 5.8
    p.shadow((0.0, feet_y), 13.0 if b.view != "side" else 16.0, 2.2)
    bag = colours.get("belongings", WHITE)
    if belongings == "backpack":
        _backpack(o, bag, "behind")
    _hair_behind_body(o, hair, colours["hair"])
    for arm, behind in zip(b.arms, b.arm_behind):
        if behind:
            draw_arm(o, arm, upper, colours["upper"])
    for leg in b.legs[::-1]:
        p.limb(leg, LEG_WIDTHS, o.skin, "skin")
    tucked = shoes == "boots" and lower in _TUCKABLE
    if not tucked:
        _shoes(o, shoes, colours["shoes"])
    LOWER[lower](o, colours["lower"])
    if tucked:
        _shoes(o, shoes, colours["shoes"])
    p.polygon([(-2.1, 10.0), (2.1, 10.0), (2.3, 17.0), (-2.3, 17.0)], shade(o.skin, 0.9), "skin")  # neck
    draw_upper_torso(o, upper, colours["upper"])
    if belongings == "backpack":
        _backpack(o, bag, "torso")
    if upper == "hoodie" and b.view != "back":
        draw_hood_behind(o, colours["upper"])
    _hair_behind_head(o, hair, colours["hair"])
    p.ellipse(b.head, b.head_r[0], b.head_r[1], o.skin, "skin")
    _face(o)
    _hair_cap(o, hair, colours["hair"])
    if b.view == "back":
        _hair_over_back(o, hair, colours["hair"])
    if belongings == "shoulder bag" and b.view == "back":
        _shoulder_bag(o, bag)
    for arm, behind in zip(b.arms, b.arm_behind):
        if not behind:
            draw_arm(o, arm, upper, colours["upper"])
    hand = b.arms[0][-1]
    if belongings == "backpack":
        _backpack(o, bag, "front")
    elif belongings == "shoulder bag" and b.view != "back":
        _shoulder_bag(o, bag)
    elif belongings == "handbag":
        _handbag(o, bag, hand)
        p.ellipse(hand, 1.9, 2.1, o.skin, "skin")
    elif belongings == "suitcase":
        _suitcase(o, bag, hand)
        p.ellipse(hand, 1.9, 2.1, o.skin, "skin")
    elif belongings == "umbrella":
        _umbrella(o, bag, hand)
    elif belongings == "phone" and b.view != "back":
        _phone(o, hand)
