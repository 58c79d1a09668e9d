"""Figures for the embedded illustrator: the hero, animals, people, things, props and landmarks.

Each figure is drawn with a ``Pen`` in its own units (x across, y up from its feet, 1.0 about its
height), so the same drawing works at any size, facing either way, and the pen knows the box it
covered: the picture's layout and the tests both read the hero's box from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import ImageDraw

from bot.providers.local.vocab import Color, mix

Point = tuple[float, float]
BLACK: Color = (30, 28, 34)
WHITE: Color = (250, 250, 246)
EYE: Color = (34, 30, 36)
CREAM: Color = (246, 234, 208)
GOLD: Color = (240, 190, 60)
GLASS: Color = (190, 226, 240)


def shade(color: Color, amount: float = 0.35) -> Color:
    return mix(color, (0, 0, 0), amount)


def tint(color: Color, amount: float = 0.35) -> Color:
    return mix(color, (255, 255, 255), amount)


@dataclass
class Pen:
    """Draws in a figure's own units onto ``draw``; ``outline`` is None, "shade" or an ink colour."""

    draw: ImageDraw.ImageDraw
    x: float
    y: float
    size: float
    facing: int = 1
    outline: str | Color | None = "shade"
    width: int = 2
    box: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])

    def p(self, u: float, v: float) -> Point:
        return (self.x + self.facing * u * self.size, self.y - v * self.size)

    def _grow(self, points: Sequence[Point]) -> None:
        xs = [pt[0] for pt in points]
        ys = [pt[1] for pt in points]
        self.box = [
            min(self.box[0], *xs),
            min(self.box[1], *ys),
            max(self.box[2], *xs),
            max(self.box[3], *ys),
        ]

    def _edge(self, fill: Color, line: bool) -> tuple[Color | None, int]:
        if not line or self.outline is None or self.width <= 0:
            return None, 0
        if self.outline == "shade":
            return shade(fill, 0.45), self.width
        return self.outline if isinstance(self.outline, tuple) else BLACK, self.width

    def poly(self, points: Sequence[Point], fill: Color, line: bool = True) -> None:
        xy = [self.p(u, v) for u, v in points]
        self._grow(xy)
        edge, width = self._edge(fill, line)
        self.draw.polygon(xy, fill=fill, outline=edge, width=width)

    def ellipse(self, cu: float, cv: float, ru: float, rv: float, fill: Color, line: bool = True) -> None:
        (x0, y0), (x1, y1) = self.p(cu - ru, cv + rv), self.p(cu + ru, cv - rv)
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            return
        self._grow([(box[0], box[1]), (box[2], box[3])])
        edge, width = self._edge(fill, line)
        self.draw.ellipse(box, fill=fill, outline=edge, width=width)

    def rect(self, u0: float, v0: float, u1: float, v1: float, fill: Color, line: bool = True) -> None:
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], fill, line)

    def line(self, points: Sequence[Point], fill: Color, width: float) -> None:
        xy = [self.p(u, v) for u, v in points]
        self._grow(xy)
        self.draw.line(xy, fill=fill, width=max(1, round(width * self.size)), joint="curve")

    def eye(self, u: float, v: float, r: float = 0.035) -> None:
        self.ellipse(u, v, r, r * 1.15, EYE, line=False)
        self.ellipse(u + r * 0.35, v + r * 0.4, r * 0.38, r * 0.38, WHITE, line=False)

    def smile(self, u: float, v: float, r: float, width: float = 0.015) -> None:
        self.line(
            [(u - r, v + r * 0.3), (u - r * 0.4, v - r * 0.2), (u + r * 0.4, v - r * 0.2), (u + r, v + r * 0.3)],
            EYE,
            width,
        )

    @property
    def bounds(self) -> tuple[int, int, int, int]:
        return (math.floor(self.box[0]), math.floor(self.box[1]), math.ceil(self.box[2]), math.ceil(self.box[3]))


def _curve(points: Sequence[Point], steps: int = 10) -> list[Point]:
    """A smooth quadratic path through a start, a control point and an end."""
    (a, b), (c, d), (e, f) = points[0], points[1], points[2]
    out = []
    for i in range(steps + 1):
        t = i / steps
        out.append(
            ((1 - t) ** 2 * a + 2 * (1 - t) * t * c + t * t * e, (1 - t) ** 2 * b + 2 * (1 - t) * t * d + t * t * f)
        )
    return out


# --- four-legged animals ------------------------------------------------------------------------


@dataclass(frozen=True)
class Quad:
    body: tuple[float, float]  # length, height
    leg: float
    head: float  # radius
    snout: float  # how far the muzzle sticks out
    ears: str = "pointed"  # pointed, round, long, floppy, tiny, none
    tail: str = "thin"  # bushy, thin, curl, stub, long, puff, none, tuft
    extras: tuple[str, ...] = ()
    neck: float = 0.0  # how far up the head sits above the body


QUADS: dict[str, Quad] = {
    "fox": Quad((0.95, 0.36), 0.26, 0.2, 0.17, "pointed", "bushy", ("belly", "tail_tip", "socks")),
    "cat": Quad((0.82, 0.34), 0.26, 0.2, 0.06, "pointed", "long", ("belly",)),
    "dog": Quad((0.9, 0.38), 0.3, 0.21, 0.12, "floppy", "thin"),
    "wolf": Quad((1.0, 0.38), 0.32, 0.2, 0.17, "pointed", "bushy", ("belly",)),
    "bear": Quad((1.0, 0.5), 0.24, 0.24, 0.08, "round", "stub"),
    "polar_bear": Quad((1.05, 0.5), 0.24, 0.23, 0.1, "round", "stub"),
    "rabbit": Quad((0.62, 0.42), 0.14, 0.2, 0.04, "long", "puff", ("belly",), neck=0.12),
    "mouse": Quad((0.7, 0.34), 0.12, 0.18, 0.1, "big", "long"),
    "hedgehog": Quad((0.8, 0.42), 0.09, 0.15, 0.13, "tiny", "none", ("quills",)),
    "squirrel": Quad((0.6, 0.36), 0.16, 0.18, 0.06, "pointed", "curl", ("belly",), neck=0.1),
    "deer": Quad((0.9, 0.36), 0.46, 0.17, 0.1, "pointed", "stub", ("antlers", "spots"), neck=0.22),
    "horse": Quad((1.0, 0.4), 0.48, 0.17, 0.2, "pointed", "long", ("mane",), neck=0.24),
    "unicorn": Quad((1.0, 0.4), 0.48, 0.17, 0.2, "pointed", "long", ("mane", "horn"), neck=0.24),
    "lion": Quad((1.0, 0.42), 0.32, 0.22, 0.08, "round", "tuft", ("lionmane",)),
    "tiger": Quad((1.0, 0.4), 0.3, 0.21, 0.07, "round", "long", ("stripes", "belly")),
    "elephant": Quad((1.1, 0.6), 0.34, 0.27, 0.0, "elephant", "thin", ("trunk",)),
    "pig": Quad((0.9, 0.46), 0.18, 0.21, 0.05, "tiny", "curl", ("pigsnout",)),
    "sheep": Quad((0.9, 0.48), 0.24, 0.17, 0.05, "floppy", "stub", ("fleece",)),
    "cow": Quad((1.1, 0.5), 0.34, 0.21, 0.08, "floppy", "tuft", ("patches", "horns")),
    "otter": Quad((1.0, 0.3), 0.12, 0.17, 0.06, "tiny", "thick", ("belly",)),
    "raccoon": Quad((0.85, 0.38), 0.22, 0.2, 0.1, "pointed", "bushy", ("mask", "rings")),
    "panda": Quad((1.0, 0.5), 0.24, 0.25, 0.06, "round", "stub", ("panda",)),
    "camel": Quad((1.0, 0.38), 0.52, 0.15, 0.14, "tiny", "thin", ("hump",), neck=0.3),
    "monkey": Quad((0.7, 0.4), 0.3, 0.2, 0.05, "round", "curl", ("face",), neck=0.08),
    "dragon": Quad((1.1, 0.44), 0.3, 0.22, 0.17, "horns", "spike", ("wings", "spikes", "belly"), neck=0.18),
    "dinosaur": Quad((1.1, 0.5), 0.34, 0.23, 0.12, "none", "thick", ("spikes", "belly"), neck=0.1),
}


def draw_quad(pen: Pen, spec: Quad, fur: Color, accent: Color | None) -> None:
    length, height = spec.body
    half = length / 2
    leg = spec.leg
    body_v = leg + height / 2
    dark = shade(fur, 0.25)
    light = mix(fur, CREAM, 0.75) if "belly" in spec.extras else fur
    head_u = half + spec.head * 0.15
    head_v = leg + height + spec.neck + spec.head * 0.3
    # tail first, so the body overlaps its root
    tail_root = (-half * 0.92, body_v + height * 0.15)
    _tail(pen, spec, tail_root, fur, height)
    # far legs, darker
    for u in (-half * 0.55, half * 0.55):
        _leg(pen, u + 0.06, body_v, dark, dark)
    if "wings" in spec.extras:
        wing = shade(fur, 0.15)
        pen.poly(
            [
                (-0.1, body_v + height * 0.3),
                (-0.45, body_v + height + 0.45),
                (-0.2, body_v + height + 0.2),
                (0.05, body_v + height + 0.5),
                (0.2, body_v + height * 0.4),
            ],
            wing,
        )
    if "hump" in spec.extras:
        pen.ellipse(-0.05, body_v + height * 0.45, half * 0.45, height * 0.5, fur)
    pen.ellipse(0, body_v, half, height / 2, fur)
    if "belly" in spec.extras:
        pen.ellipse(0.05, body_v - height * 0.18, half * 0.7, height * 0.28, light, line=False)
    if "fleece" in spec.extras:
        for i in range(7):
            angle = i / 7 * math.tau
            pen.ellipse(
                math.cos(angle) * half * 0.75,
                body_v + math.sin(angle) * height * 0.35,
                height * 0.28,
                height * 0.26,
                tint(fur, 0.2),
            )
    if "stripes" in spec.extras:
        for i in range(4):
            u = -half * 0.6 + i * half * 0.4
            pen.poly(
                [(u, body_v + height * 0.48), (u + 0.05, body_v + height * 0.1), (u + 0.09, body_v + height * 0.46)],
                BLACK,
                line=False,
            )
    if "spots" in spec.extras or "patches" in spec.extras:
        for u, v, r in ((-half * 0.4, 0.1, 0.07), (half * 0.1, 0.16, 0.06), (half * 0.45, 0.05, 0.05)):
            pen.ellipse(u, body_v + v * height, r, r * 0.8, WHITE if "spots" in spec.extras else BLACK, line=False)
    if "quills" in spec.extras:
        for i in range(9):
            u = -half * 0.9 + i * half * 0.22
            top = body_v + height * (0.45 + 0.08 * math.sin(i))
            pen.poly(
                [(u - 0.06, body_v + height * 0.1), (u + 0.02, top + 0.12), (u + 0.08, body_v + height * 0.1)],
                shade(fur, 0.35),
            )
    if "spikes" in spec.extras:
        for i in range(5):
            u = -half * 0.6 + i * half * 0.3
            pen.poly(
                [
                    (u - 0.05, body_v + height * 0.45),
                    (u, body_v + height * 0.45 + 0.1),
                    (u + 0.05, body_v + height * 0.45),
                ],
                accent or shade(fur, 0.3),
            )
    if "panda" in spec.extras:
        pen.ellipse(half * 0.15, body_v + height * 0.05, half * 0.35, height * 0.5, BLACK, line=False)
    # near legs
    socks = BLACK if "socks" in spec.extras or "panda" in spec.extras else shade(fur, 0.1)
    for u in (-half * 0.55, half * 0.55):
        _leg(pen, u, body_v, fur, socks)
    # neck
    if spec.neck > 0.05:
        pen.poly(
            [
                (half * 0.55, body_v + height * 0.2),
                (head_u - spec.head * 0.6, head_v - spec.head * 0.3),
                (head_u + spec.head * 0.5, head_v - spec.head * 0.5),
                (half * 0.95, body_v),
            ],
            fur,
        )
    if "mane" in spec.extras:
        pen.poly(
            [
                (half * 0.5, body_v + height * 0.45),
                (head_u - spec.head * 0.7, head_v + spec.head * 0.6),
                (head_u - spec.head * 0.2, head_v),
                (half * 0.75, body_v + height * 0.2),
            ],
            accent or shade(fur, 0.4),
        )
    if "lionmane" in spec.extras:
        pen.ellipse(head_u - 0.02, head_v, spec.head * 1.55, spec.head * 1.5, shade(fur, 0.35))
    if accent is not None:
        # the scarf the bible names, tied where the neck meets the body
        nu = half * 0.8 * 0.4 + (head_u - spec.head * 0.35) * 0.6
        nv = (body_v + height * 0.38) * 0.4 + (head_v - spec.head * 0.75) * 0.6
        pen.ellipse(nu, nv, 0.1, 0.07, accent)
        pen.poly([(nu - 0.06, nv), (nu - 0.14, nv - 0.2), (nu - 0.04, nv - 0.2), (nu + 0.02, nv - 0.03)], accent)
    _head(pen, spec, head_u, head_v, fur, accent)


def _leg(pen: Pen, u: float, top: float, fur: Color, paw: Color) -> None:
    """A leg that tapers to a rounded paw."""
    pen.poly([(u - 0.065, top), (u + 0.065, top), (u + 0.045, 0.04), (u - 0.045, 0.04)], fur)
    pen.ellipse(u + 0.015, 0.035, 0.065, 0.04, paw)


def _tail(pen: Pen, spec: Quad, root: Point, fur: Color, height: float) -> None:
    u, v = root
    kind = spec.tail
    if kind == "bushy":
        pen.poly(
            [(u + 0.05, v + 0.02), (u - 0.25, v + 0.2), (u - 0.42, v + 0.02), (u - 0.3, v - 0.12), (u, v - 0.08)], fur
        )
        if "tail_tip" in spec.extras:
            pen.poly([(u - 0.3, v + 0.16), (u - 0.42, v + 0.02), (u - 0.33, v - 0.06)], WHITE, line=False)
    elif kind in ("thin", "long", "tuft"):
        reach = 0.38 if kind == "long" else 0.28
        pen.line(_curve([(u + 0.02, v), (u - reach * 0.6, v + 0.02), (u - reach, v + 0.22)]), fur, 0.045)
        if kind == "tuft":
            pen.ellipse(u - reach, v + 0.22, 0.05, 0.05, shade(fur, 0.4))
    elif kind == "curl":
        pen.line(_curve([(u, v), (u - 0.35, v - 0.05), (u - 0.25, v + 0.32)]), fur, 0.08)
    elif kind == "thick":
        pen.poly([(u + 0.1, v + 0.1), (u - 0.45, v - 0.05), (u + 0.05, v - height * 0.4)], fur)
    elif kind == "spike":
        pen.poly(
            [
                (u + 0.1, v + 0.08),
                (u - 0.45, v + 0.1),
                (u - 0.55, v + 0.2),
                (u - 0.5, v + 0.05),
                (u + 0.05, v - height * 0.35),
            ],
            fur,
        )
    elif kind == "puff":
        pen.ellipse(u + 0.02, v, 0.07, 0.07, WHITE)
    elif kind == "stub":
        pen.ellipse(u + 0.02, v, 0.05, 0.04, fur)


def _head(pen: Pen, spec: Quad, u: float, v: float, fur: Color, accent: Color | None) -> None:
    r = spec.head
    inner = tint(fur, 0.5)
    ears = spec.ears
    if ears == "pointed":
        for du in (-0.55, 0.25):
            pen.poly(
                [(u + du * r, v + r * 0.6), (u + (du + 0.2) * r, v + r * 1.55), (u + (du + 0.6) * r, v + r * 0.75)], fur
            )
    elif ears == "round":
        for du in (-0.6, 0.45):
            pen.ellipse(u + du * r, v + r * 0.8, r * 0.32, r * 0.32, fur)
    elif ears == "big":
        for du in (-0.55, 0.35):
            pen.ellipse(u + du * r, v + r * 0.9, r * 0.5, r * 0.5, fur)
            pen.ellipse(u + du * r, v + r * 0.9, r * 0.3, r * 0.3, (240, 170, 180), line=False)
    elif ears == "long":
        for du in (-0.35, 0.15):
            pen.ellipse(u + du * r, v + r * 1.6, r * 0.22, r * 0.85, fur)
            pen.ellipse(u + du * r, v + r * 1.6, r * 0.1, r * 0.6, (240, 180, 190), line=False)
    elif ears == "horns":
        for du in (-0.45, 0.15):
            pen.poly(
                [(u + du * r, v + r * 0.7), (u + (du - 0.25) * r, v + r * 1.6), (u + (du + 0.25) * r, v + r * 0.8)],
                CREAM,
            )
    elif ears == "elephant":
        pen.ellipse(u - r * 0.6, v - r * 0.1, r * 0.7, r * 0.9, shade(fur, 0.1))
    elif ears == "tiny":
        pen.poly([(u - r * 0.2, v + r * 0.8), (u, v + r * 1.25), (u + r * 0.3, v + r * 0.85)], fur)
    if "antlers" in spec.extras:
        for du in (-0.3, 0.2):
            pen.line(
                [(u + du * r, v + r), (u + du * r, v + r * 2.0), (u + (du - 0.4) * r, v + r * 2.5)],
                (140, 100, 60),
                0.03,
            )
            pen.line([(u + du * r, v + r * 1.6), (u + (du + 0.4) * r, v + r * 2.2)], (140, 100, 60), 0.03)
    if "horns" in spec.extras:
        pen.line([(u - r * 0.4, v + r * 0.8), (u - r * 0.7, v + r * 1.3)], CREAM, 0.03)
    if "horn" in spec.extras:
        pen.poly([(u + r * 0.1, v + r * 0.8), (u + r * 0.55, v + r * 2.1), (u + r * 0.45, v + r * 0.7)], GOLD)
    pen.ellipse(u, v, r, r * 0.92, fur)
    if "face" in spec.extras or "panda" in spec.extras:
        pen.ellipse(u + r * 0.25, v - r * 0.1, r * 0.6, r * 0.55, CREAM if "face" in spec.extras else WHITE, line=False)
    if "mask" in spec.extras:
        pen.ellipse(u + r * 0.35, v + r * 0.15, r * 0.55, r * 0.25, BLACK, line=False)
    if spec.snout > 0:
        pen.poly(
            [
                (u + r * 0.4, v + r * 0.25),
                (u + r + spec.snout, v - r * 0.05),
                (u + r + spec.snout * 0.8, v - r * 0.35),
                (u + r * 0.3, v - r * 0.5),
            ],
            fur,
        )
        pen.poly(
            [
                (u + r * 0.35, v - r * 0.05),
                (u + r + spec.snout * 0.9, v - r * 0.12),
                (u + r + spec.snout * 0.7, v - r * 0.38),
                (u + r * 0.3, v - r * 0.5),
            ],
            inner,
            line=False,
        )
        pen.ellipse(u + r + spec.snout, v - r * 0.05, r * 0.13, r * 0.11, EYE, line=False)
    if "pigsnout" in spec.extras:
        pen.ellipse(u + r * 0.95, v - r * 0.15, r * 0.28, r * 0.3, tint(fur, 0.3))
    if "trunk" in spec.extras:
        pen.line(
            _curve([(u + r * 0.7, v - r * 0.1), (u + r * 1.6, v - r * 0.5), (u + r * 1.2, v - r * 1.6)]), fur, 0.09
        )
    eye_u = u + r * 0.45
    pen.eye(eye_u, v + r * 0.2, r * 0.16)
    if "panda" in spec.extras:
        pen.ellipse(eye_u, v + r * 0.2, r * 0.26, r * 0.22, BLACK, line=False)
        pen.eye(eye_u, v + r * 0.22, r * 0.12)


# --- birds, swimmers and the rest of the animals ------------------------------------------------

BIRDS = {"owl", "crow", "bird", "gull", "duck", "goose", "penguin", "parrot", "eagle", "chicken", "bat"}
SWIMMERS = {"fish", "whale", "dolphin", "shark"}


def draw_bird(pen: Pen, kind: str, body: Color, accent: Color | None) -> None:
    beak = (240, 150, 40)
    belly = tint(body, 0.6)
    if kind == "penguin":
        belly = WHITE
    if kind == "bat":
        for side in (-1, 1):
            pen.poly([(0, 0.6), (side * 0.7, 0.9), (side * 0.55, 0.6), (side * 0.45, 0.7), (side * 0.3, 0.45)], body)
        pen.ellipse(0, 0.55, 0.16, 0.22, body)
        for du in (-0.08, 0.06):
            pen.poly([(du, 0.7), (du + 0.03, 0.9), (du + 0.07, 0.72)], body)
        pen.eye(0.06, 0.6, 0.03)
        return
    upright = kind in ("owl", "penguin")
    for du in (-0.06, 0.08):
        pen.line([(du, 0.0), (du, 0.22)], beak, 0.025)
    if upright:
        pen.ellipse(0, 0.5, 0.3, 0.42, body)
        pen.ellipse(0.06, 0.42, 0.2, 0.3, belly, line=False)
        head_u, head_v = 0.0, 0.82
        pen.ellipse(-0.2, 0.48, 0.1, 0.25, shade(body, 0.2))
    else:
        if kind == "parrot":
            pen.poly([(-0.25, 0.45), (-0.65, 0.2), (-0.55, 0.15), (-0.2, 0.35)], accent or (60, 120, 220))
        pen.poly([(-0.3, 0.5), (-0.55, 0.62), (-0.5, 0.42)], shade(body, 0.2))
        pen.ellipse(0, 0.45, 0.35, 0.25, body)
        pen.ellipse(0.05, 0.38, 0.22, 0.14, belly, line=False)
        pen.ellipse(-0.08, 0.5, 0.22, 0.12, shade(body, 0.2))
        head_u, head_v = 0.3, 0.72
    pen.ellipse(head_u, head_v, 0.2, 0.19, body)
    if kind == "owl":
        for du in (-0.12, 0.1):
            pen.poly([(du - 0.06, 0.95), (du, 1.08), (du + 0.05, 0.95)], body)
            pen.ellipse(du, 0.84, 0.08, 0.08, CREAM, line=False)
            pen.eye(du, 0.84, 0.045)
        pen.poly([(-0.02, 0.78), (0.02, 0.7), (0.05, 0.78)], beak)
    else:
        if kind == "chicken":
            pen.ellipse(head_u, head_v + 0.2, 0.08, 0.06, (220, 40, 40))
        long_beak = kind in ("duck", "goose")
        tip = 0.27 if long_beak else 0.2
        hook = kind == "eagle"
        pen.poly(
            [
                (head_u + 0.15, head_v + 0.05),
                (head_u + tip + 0.1, head_v - (0.06 if hook else 0.0)),
                (head_u + 0.15, head_v - 0.07),
            ],
            beak if kind != "crow" else (60, 60, 60),
        )
        pen.eye(head_u + 0.07, head_v + 0.05, 0.04)
    if accent is not None:
        pen.ellipse(head_u, head_v - 0.19, 0.16, 0.05, accent)


def draw_swimmer(pen: Pen, kind: str, body: Color, accent: Color | None) -> None:
    belly = tint(body, 0.55)
    length = {"whale": 1.5, "dolphin": 1.2, "shark": 1.3, "fish": 0.8}[kind]
    height = {"whale": 0.55, "dolphin": 0.35, "shark": 0.38, "fish": 0.42}[kind]
    half = length / 2
    mid = height / 2 + 0.05
    pen.poly([(-half * 0.8, mid), (-half - 0.25, mid + 0.25), (-half - 0.15, mid), (-half - 0.25, mid - 0.22)], body)
    if kind in ("dolphin", "shark"):
        pen.poly([(-0.1, mid + height * 0.4), (0.05, mid + height * 0.9), (0.15, mid + height * 0.4)], body)
    pen.ellipse(0, mid, half, height / 2, body)
    pen.ellipse(0.05, mid - height * 0.2, half * 0.8, height * 0.22, belly, line=False)
    if kind == "whale":
        for du in (-0.05, 0.05):
            pen.line(
                [(half * 0.3, mid + height / 2), (half * 0.3 + du * 3, mid + height / 2 + 0.2)], (170, 215, 245), 0.03
            )
    if kind == "fish":
        for i in range(3):
            pen.line(
                [(-half * 0.3 + i * 0.12, mid + height * 0.35), (-half * 0.3 + i * 0.12, mid - height * 0.35)],
                shade(body, 0.2),
                0.02,
            )
    pen.eye(half * 0.55, mid + height * 0.12, 0.045)
    if accent is not None:
        pen.line([(half * 0.25, mid + height * 0.45), (half * 0.25, mid - height * 0.45)], accent, 0.06)


def draw_octopus(pen: Pen, body: Color, accent: Color | None) -> None:
    for i in range(6):
        u = -0.36 + i * 0.145
        pen.line(_curve([(u, 0.4), (u + 0.18 * math.sin(i), 0.18), (u - 0.12 + 0.08 * i % 0.3, 0.02)]), body, 0.08)
    pen.ellipse(0, 0.62, 0.38, 0.36, body)
    for du in (-0.12, 0.14):
        pen.ellipse(du, 0.6, 0.08, 0.09, WHITE, line=False)
        pen.eye(du + 0.02, 0.6, 0.045)
    pen.smile(0.01, 0.47, 0.08)
    if accent is not None:
        pen.ellipse(0, 0.35, 0.36, 0.06, accent)


def draw_small_animal(pen: Pen, kind: str, body: Color, accent: Color | None) -> None:
    if kind == "turtle":
        for u in (-0.3, 0.25):
            pen.rect(u - 0.06, 0.0, u + 0.06, 0.2, (120, 160, 80))
        pen.ellipse(0.48, 0.3, 0.16, 0.13, (120, 160, 80))
        pen.eye(0.55, 0.34, 0.035)
        pen.ellipse(0, 0.3, 0.45, 0.3, body)
        for du in (-0.2, 0.0, 0.2):
            pen.ellipse(du, 0.36, 0.09, 0.08, shade(body, 0.2), line=False)
    elif kind == "frog":
        pen.ellipse(0, 0.28, 0.42, 0.28, body)
        pen.ellipse(0.05, 0.2, 0.28, 0.14, tint(body, 0.5), line=False)
        for du in (-0.18, 0.18):
            pen.ellipse(du, 0.55, 0.12, 0.12, body)
            pen.eye(du, 0.57, 0.06)
        pen.smile(0, 0.35, 0.15)
        for du in (-0.35, 0.35):
            pen.ellipse(du, 0.05, 0.14, 0.06, shade(body, 0.15))
    elif kind == "snail":
        pen.poly([(-0.45, 0.0), (0.45, 0.0), (0.55, 0.25), (0.35, 0.12), (-0.4, 0.12)], (200, 180, 150))
        pen.line([(0.45, 0.2), (0.5, 0.45)], (200, 180, 150), 0.03)
        pen.eye(0.5, 0.45, 0.03)
        pen.ellipse(-0.05, 0.38, 0.32, 0.32, body)
        pen.line(_curve([(-0.05, 0.38), (0.15, 0.5), (-0.05, 0.58)]), shade(body, 0.35), 0.025)
    elif kind == "crab":
        for side in (-1, 1):
            pen.line([(side * 0.2, 0.2), (side * 0.45, 0.0)], body, 0.03)
            pen.ellipse(side * 0.5, 0.45, 0.12, 0.1, body)
        pen.ellipse(0, 0.25, 0.38, 0.2, body)
        for du in (-0.1, 0.1):
            pen.line([(du, 0.4), (du, 0.55)], body, 0.02)
            pen.eye(du, 0.57, 0.035)
    elif kind in ("butterfly", "bee"):
        wing = tint(accent or body, 0.3) if kind == "butterfly" else (220, 235, 250)
        pen.ellipse(-0.2, 0.65, 0.22, 0.25, wing)
        pen.ellipse(0.15, 0.7, 0.2, 0.22, wing)
        pen.ellipse(0, 0.45, 0.12 if kind == "butterfly" else 0.25, 0.2 if kind == "butterfly" else 0.17, body)
        if kind == "bee":
            for du in (-0.08, 0.06):
                pen.rect(du - 0.03, 0.3, du + 0.03, 0.6, BLACK, line=False)
        pen.eye(0.12, 0.5, 0.03)
    elif kind == "snake":
        pen.line(_curve([(-0.55, 0.08), (-0.1, 0.25), (0.3, 0.08)], 12), body, 0.14)
        pen.line(_curve([(0.3, 0.08), (0.5, 0.0), (0.45, 0.35)]), body, 0.13)
        pen.ellipse(0.47, 0.4, 0.12, 0.1, body)
        pen.eye(0.5, 0.44, 0.03)


# --- people, robots and things ------------------------------------------------------------------

HATS = {
    "keeper": "cap",
    "sailor": "cap",
    "captain": "cap",
    "pirate": "tricorn",
    "knight": "helmet",
    "princess": "crown",
    "prince": "crown",
    "queen": "crown",
    "king": "crown",
    "wizard": "pointed",
    "witch": "pointed",
    "astronaut": "bubble",
    "baker": "chef",
    "farmer": "brim",
    "detective": "brim",
    "explorer": "brim",
}


def draw_person(pen: Pen, kind: str, coat: Color, accent: Color, hair: Color, skin: Color) -> None:
    if kind == "ghost":
        pen.poly(
            [(-0.28, 0.0), (-0.3, 0.7), (0.0, 0.98), (0.3, 0.7), (0.28, 0.0), (0.14, 0.08), (0.0, 0.0), (-0.14, 0.08)],
            tint(coat, 0.7),
        )
        pen.eye(-0.08, 0.7, 0.04)
        pen.eye(0.1, 0.7, 0.04)
        return
    giant = kind == "giant"
    legs = shade(coat, 0.55)
    boot = accent
    for du in (-0.08, 0.08):
        pen.rect(du - 0.045, 0.04, du + 0.045, 0.3, legs)
        pen.ellipse(du + 0.03, 0.04, 0.08, 0.045, boot)
    # the coat: a rounded A-line
    pen.poly([(-0.2, 0.22), (-0.14, 0.64), (0.14, 0.64), (0.2, 0.22)], coat)
    pen.ellipse(0, 0.62, 0.16, 0.07, coat)
    # arms
    pen.line([(-0.13, 0.6), (-0.22, 0.36)], shade(coat, 0.1), 0.07)
    pen.line([(0.13, 0.6), (0.24, 0.4)], shade(coat, 0.1), 0.07)
    pen.ellipse(-0.22, 0.34, 0.035, 0.035, skin)
    pen.ellipse(0.24, 0.38, 0.035, 0.035, skin)
    # the scarf or belt the bible names
    pen.rect(-0.15, 0.58, 0.15, 0.64, accent)
    pen.poly([(0.06, 0.6), (0.12, 0.45), (0.17, 0.47), (0.12, 0.6)], accent)
    head_v = 0.78
    r = 0.13 if not giant else 0.12
    hat = HATS.get(kind, "hair")
    if hat != "helmet":
        pen.ellipse(-0.02, head_v + 0.01, r * 1.05, r * 1.02, hair)  # hair behind the face
    pen.ellipse(0.01, head_v - 0.015, r * 0.92, r * 0.92, skin)
    pen.eye(0.06, head_v, 0.022)
    pen.eye(-0.03, head_v, 0.022)
    pen.ellipse(0.09, head_v - 0.05, 0.025, 0.015, (235, 150, 140), line=False)
    if hat == "helmet":
        pen.poly(
            [
                (-0.14, head_v - 0.02),
                (-0.13, head_v + 0.12),
                (0.0, head_v + 0.17),
                (0.13, head_v + 0.12),
                (0.14, head_v - 0.02),
                (0.13, head_v + 0.04),
                (-0.05, head_v + 0.04),
            ],
            (180, 186, 196),
        )
        pen.line([(0.0, head_v + 0.16), (-0.12, head_v + 0.28)], accent, 0.04)
    elif hat == "crown":
        pen.ellipse(-0.02, head_v + 0.08, r, 0.05, hair, line=False)
        pen.poly(
            [
                (-0.1, head_v + 0.1),
                (-0.1, head_v + 0.22),
                (-0.05, head_v + 0.15),
                (0.0, head_v + 0.24),
                (0.05, head_v + 0.15),
                (0.1, head_v + 0.22),
                (0.1, head_v + 0.1),
            ],
            GOLD,
        )
    elif hat == "pointed":
        pen.poly([(-0.2, head_v + 0.07), (0.03, head_v + 0.42), (0.2, head_v + 0.07)], shade(coat, 0.3))
        pen.rect(-0.16, head_v + 0.07, 0.16, head_v + 0.11, accent)
    elif hat == "cap":
        pen.poly(
            [(0.0, head_v + 0.07), (0.2, head_v + 0.06), (0.19, head_v + 0.09), (0.0, head_v + 0.1)], shade(accent, 0.3)
        )
        pen.ellipse(-0.01, head_v + 0.09, 0.13, 0.07, accent)
    elif hat == "tricorn":
        pen.poly(
            [
                (-0.2, head_v + 0.08),
                (-0.1, head_v + 0.2),
                (0.1, head_v + 0.2),
                (0.2, head_v + 0.08),
                (0, head_v + 0.12),
            ],
            BLACK,
        )
    elif hat == "chef":
        pen.rect(-0.1, head_v + 0.08, 0.1, head_v + 0.2, WHITE)
        pen.ellipse(0, head_v + 0.23, 0.14, 0.07, WHITE)
    elif hat == "brim":
        pen.ellipse(0, head_v + 0.08, 0.22, 0.04, shade(accent, 0.2))
        pen.ellipse(0, head_v + 0.13, 0.11, 0.07, shade(accent, 0.2))
    elif hat == "bubble":
        pen.ellipse(0.0, head_v, 0.19, 0.19, GLASS)
        pen.ellipse(0.01, head_v - 0.015, r * 0.92, r * 0.92, skin, line=False)
        pen.eye(0.06, head_v, 0.022)
        pen.eye(-0.03, head_v, 0.022)
        pen.ellipse(-0.08, head_v + 0.09, 0.04, 0.03, WHITE, line=False)


def draw_robot(pen: Pen, plates: Color, light: Color) -> None:
    joint = shade(plates, 0.45)
    for du in (-0.1, 0.1):
        pen.rect(du - 0.04, 0.05, du + 0.04, 0.22, joint)
        pen.rect(du - 0.08, 0.0, du + 0.08, 0.06, shade(plates, 0.25))
    pen.line([(-0.22, 0.55), (-0.3, 0.35)], joint, 0.05)
    pen.line([(0.22, 0.55), (0.32, 0.4)], joint, 0.05)
    pen.rect(-0.23, 0.2, 0.23, 0.6, plates)
    pen.rect(-0.12, 0.3, 0.12, 0.48, shade(plates, 0.15))
    for i, du in enumerate((-0.06, 0.0, 0.06)):
        pen.ellipse(du, 0.39, 0.02, 0.02, (light if i == 1 else (120, 230, 160)), line=False)
    pen.rect(-0.05, 0.6, 0.05, 0.65, joint)
    pen.rect(-0.17, 0.64, 0.17, 0.9, plates)
    pen.rect(-0.11, 0.7, 0.15, 0.84, (40, 50, 60), line=False)
    for du in (-0.04, 0.08):
        pen.ellipse(du, 0.78, 0.03, 0.03, (140, 230, 255), line=False)
    pen.line([(0.0, 0.9), (0.0, 1.02)], joint, 0.02)
    pen.ellipse(0.0, 1.04, 0.045, 0.045, light)


def draw_thing(pen: Pen, kind: str, main: Color, accent: Color, face: bool) -> None:
    """The things a story may star (with a face) or just show (without)."""
    face_at: tuple[float, float, float] | None = None
    if kind == "teapot":
        pen.line(_curve([(0.3, 0.35), (0.52, 0.45), (0.45, 0.7)]), main, 0.06)
        pen.line(_curve([(-0.3, 0.55), (-0.5, 0.45), (-0.3, 0.25)]), main, 0.05)
        pen.ellipse(0, 0.32, 0.36, 0.3, main)
        pen.ellipse(0, 0.62, 0.2, 0.06, shade(main, 0.15))
        pen.ellipse(0, 0.7, 0.05, 0.05, accent)
        pen.rect(-0.36, 0.3, 0.36, 0.36, accent)
        face_at = (0.0, 0.22, 0.09)
    elif kind == "kite":
        pen.line(_curve([(0.0, 0.3), (-0.2, 0.15), (0.1, 0.0)]), accent, 0.015)
        pen.poly([(0.0, 1.0), (0.28, 0.65), (0.0, 0.3), (-0.28, 0.65)], main)
        pen.line([(0.0, 1.0), (0.0, 0.3)], shade(main, 0.3), 0.015)
        for v in (0.15, 0.06):
            pen.poly([(-0.03 - v, v + 0.05), (-v, v + 0.1), (0.03 - v, v + 0.05)], accent, line=False)
        face_at = (0.0, 0.62, 0.08)
    elif kind == "umbrella":
        pen.line([(0.0, 0.85), (0.0, 0.1)], (90, 70, 60), 0.03)
        pen.line(_curve([(0.0, 0.1), (0.0, 0.0), (0.1, 0.05)]), (90, 70, 60), 0.03)
        pen.poly(
            [
                (-0.42, 0.6),
                (-0.3, 0.82),
                (0.0, 0.95),
                (0.3, 0.82),
                (0.42, 0.6),
                (0.28, 0.64),
                (0.14, 0.6),
                (0.0, 0.64),
                (-0.14, 0.6),
                (-0.28, 0.64),
            ],
            main,
        )
        pen.line([(0.0, 0.95), (0.0, 1.02)], accent, 0.04)
        face_at = (0.0, 0.73, 0.08)
    elif kind == "lantern":
        pen.line(_curve([(-0.12, 0.82), (0.0, 1.0), (0.12, 0.82)]), BLACK, 0.025)
        pen.rect(-0.2, 0.72, 0.2, 0.82, shade(main, 0.35))
        pen.rect(-0.17, 0.12, 0.17, 0.72, (255, 224, 130))
        pen.ellipse(0, 0.42, 0.12, 0.18, (255, 244, 190), line=False)
        for du in (-0.17, 0.17):
            pen.rect(du - 0.025, 0.12, du + 0.025, 0.72, main)
        pen.rect(-0.22, 0.04, 0.22, 0.14, main)
        pen.rect(-0.2, 0.66, 0.2, 0.71, accent)
        face_at = (0.0, 0.4, 0.08)
    elif kind == "clock":
        pen.rect(-0.22, 0.0, 0.22, 0.5, shade(main, 0.2))
        pen.ellipse(0, 0.7, 0.3, 0.3, main)
        pen.ellipse(0, 0.7, 0.23, 0.23, CREAM)
        pen.line([(0, 0.7), (0.0, 0.86)], BLACK, 0.02)
        pen.line([(0, 0.7), (0.12, 0.7)], BLACK, 0.02)
        pen.rect(-0.22, 0.18, 0.22, 0.24, accent)
        face_at = (0.0, 0.3, 0.07)
    elif kind == "balloon":
        pen.line(_curve([(0.0, 0.35), (0.08, 0.18), (0.0, 0.0)]), (120, 110, 100), 0.012)
        pen.ellipse(0, 0.68, 0.28, 0.33, main)
        pen.poly([(-0.04, 0.33), (0.04, 0.33), (0.0, 0.37)], main)
        pen.ellipse(-0.1, 0.8, 0.06, 0.09, tint(main, 0.5), line=False)
        pen.rect(-0.05, 0.33, 0.05, 0.36, accent)
        face_at = (0.0, 0.66, 0.08)
    elif kind == "snowman":
        pen.ellipse(0, 0.25, 0.3, 0.26, WHITE)
        pen.ellipse(0, 0.63, 0.2, 0.19, WHITE)
        pen.poly([(0.02, 0.63), (0.22, 0.6), (0.02, 0.58)], (240, 130, 40))
        pen.rect(-0.2, 0.44, 0.2, 0.5, accent)
        pen.rect(-0.14, 0.8, 0.14, 0.95, main)
        pen.rect(-0.2, 0.78, 0.2, 0.82, main)
        face_at = (0.0, 0.68, 0.0)
    elif kind == "book":
        pen.poly([(-0.35, 0.1), (0.0, 0.05), (0.0, 0.65), (-0.35, 0.7)], main)
        pen.poly([(0.35, 0.1), (0.0, 0.05), (0.0, 0.65), (0.35, 0.7)], shade(main, 0.15))
        pen.poly([(-0.3, 0.16), (0.0, 0.11), (0.0, 0.6), (-0.3, 0.64)], CREAM, line=False)
        pen.line([(0.0, 0.65), (0.05, 0.2)], accent, 0.03)
        face_at = (-0.15, 0.38, 0.07)
    elif kind == "car":
        pen.poly(
            [
                (-0.45, 0.12),
                (-0.45, 0.35),
                (-0.25, 0.38),
                (-0.15, 0.6),
                (0.2, 0.6),
                (0.32, 0.38),
                (0.48, 0.34),
                (0.48, 0.12),
            ],
            main,
        )
        pen.poly([(-0.1, 0.4), (-0.05, 0.55), (0.17, 0.55), (0.25, 0.4)], GLASS)
        for du in (-0.28, 0.3):
            pen.ellipse(du, 0.1, 0.1, 0.1, (50, 50, 56))
        pen.rect(-0.45, 0.22, 0.48, 0.26, accent)
        face_at = (0.07, 0.47, 0.06)
    elif kind == "tree":
        pen.rect(-0.06, 0.0, 0.06, 0.4, (120, 84, 54))
        pen.ellipse(0, 0.62, 0.34, 0.32, main)
        pen.ellipse(-0.16, 0.52, 0.2, 0.18, shade(main, 0.1))
        pen.rect(-0.07, 0.2, 0.07, 0.25, accent)
        face_at = (0.0, 0.62, 0.08)
    elif kind == "star":
        points = [
            (
                0.42 * math.sin(i * math.pi / 5) * (1 if i % 2 == 0 else 0.45),
                0.5 + 0.42 * math.cos(i * math.pi / 5) * (1 if i % 2 == 0 else 0.45),
            )
            for i in range(10)
        ]
        pen.poly(points, main)
        pen.ellipse(0, 0.05, 0.1, 0.03, accent)
        face_at = (0.0, 0.48, 0.07)
    elif kind == "cloud":
        for u, v, r in ((-0.25, 0.35, 0.2), (0.0, 0.45, 0.27), (0.26, 0.35, 0.2)):
            pen.ellipse(u, v, r * 1.2, r, main)
        pen.rect(-0.35, 0.17, 0.35, 0.3, main, line=False)
        face_at = (0.0, 0.38, 0.08)
    elif kind in ("boat", "ship", "raft"):
        _vessel(pen, kind, main, accent)
        face_at = (0.22, 0.1, 0.05) if kind != "raft" else None
    elif kind == "train":
        pen.rect(-0.5, 0.1, 0.25, 0.45, main)
        pen.rect(0.25, 0.1, 0.5, 0.6, shade(main, 0.15))
        pen.rect(-0.4, 0.45, -0.25, 0.62, BLACK)
        pen.rect(0.3, 0.35, 0.45, 0.52, GLASS)
        for du in (-0.35, 0.0, 0.35):
            pen.ellipse(du, 0.1, 0.09, 0.09, (50, 50, 56))
        pen.rect(-0.5, 0.3, 0.25, 0.34, accent)
        face_at = (-0.1, 0.25, 0.06)
    elif kind == "rocket":
        pen.poly([(-0.18, 0.1), (-0.32, 0.0), (-0.28, 0.3), (-0.16, 0.35)], accent)
        pen.poly([(0.18, 0.1), (0.32, 0.0), (0.28, 0.3), (0.16, 0.35)], accent)
        pen.poly([(-0.18, 0.1), (-0.18, 0.7), (0.0, 1.0), (0.18, 0.7), (0.18, 0.1)], main)
        pen.ellipse(0, 0.6, 0.09, 0.09, GLASS)
        pen.poly([(-0.1, 0.1), (0.0, -0.1), (0.1, 0.1)], (255, 170, 50), line=False)
        face_at = (0.0, 0.38, 0.07)
    if face and face_at is not None:
        u, v, r = face_at
        pen.eye(u - r * 0.6 - 0.02, v + 0.04, 0.03)
        pen.eye(u + r * 0.6 + 0.02, v + 0.04, 0.03)
        if r:
            pen.smile(u, v - 0.02, r * 0.6)


def _vessel(pen: Pen, kind: str, main: Color, accent: Color) -> None:
    wood = (150, 100, 60)
    if kind == "raft":
        for i in range(6):
            u = -0.5 + i * 0.2
            pen.rect(u, 0.0, u + 0.19, 0.12, wood if i % 2 else shade(wood, 0.15))
        pen.line([(0.05, 0.12), (0.05, 0.8)], shade(wood, 0.3), 0.03)
        pen.poly([(0.07, 0.78), (0.45, 0.5), (0.07, 0.3)], accent)
        return
    length = 0.55 if kind == "boat" else 0.7
    pen.poly([(-length, 0.22), (length, 0.22), (length * 0.75, 0.0), (-length * 0.8, 0.0)], main)
    pen.rect(-length * 0.95, 0.18, length, 0.24, shade(main, 0.3))
    pen.line([(0.0, 0.22), (0.0, 1.0 if kind == "ship" else 0.85)], shade(wood, 0.3), 0.03)
    pen.poly([(0.03, 0.95 if kind == "ship" else 0.82), (0.4, 0.35), (0.03, 0.3)], CREAM)
    if kind == "ship":
        pen.poly([(-0.03, 0.9), (-0.45, 0.35), (-0.03, 0.3)], tint(accent, 0.4))
        pen.poly([(0.0, 1.0), (0.18, 0.95), (0.0, 0.9)], accent)


def draw_creature(pen: Pen, main: Color, accent: Color) -> None:
    """Something the vocabulary cannot name: a round little being in the story's colours."""
    for du in (-0.12, 0.12):
        pen.ellipse(du, 0.05, 0.08, 0.05, shade(main, 0.3))
    pen.ellipse(0, 0.42, 0.34, 0.38, main)
    pen.ellipse(0.05, 0.34, 0.2, 0.2, tint(main, 0.4), line=False)
    for du in (-0.1, 0.12):
        pen.ellipse(du, 0.55, 0.07, 0.08, WHITE, line=False)
        pen.eye(du + 0.02, 0.55, 0.04)
    pen.smile(0.02, 0.42, 0.07)
    pen.poly([(-0.1, 0.76), (-0.04, 0.92), (0.02, 0.78)], accent)


# --- props, landmarks and things in the sky -------------------------------------------------------


def draw_prop(pen: Pen, kind: str, accent: Color) -> None:
    if kind == "chest":
        pen.rect(-0.4, 0.0, 0.4, 0.42, (150, 95, 50))
        pen.poly([(-0.4, 0.42), (-0.3, 0.62), (0.3, 0.62), (0.4, 0.42)], (170, 110, 60))
        for du in (-0.3, 0.3):
            pen.rect(du - 0.04, 0.0, du + 0.04, 0.62, GOLD, line=False)
        pen.rect(-0.07, 0.3, 0.07, 0.48, GOLD)
        pen.ellipse(0.0, 0.66, 0.22, 0.05, (255, 220, 90), line=False)
    elif kind == "map":
        pen.poly([(-0.45, 0.0), (0.45, 0.0), (0.4, 0.5), (-0.4, 0.55)], CREAM)
        pen.line([(-0.3, 0.1), (-0.1, 0.3), (0.1, 0.2), (0.25, 0.4)], (200, 60, 50), 0.03)
        pen.line([(0.2, 0.35), (0.3, 0.45)], (200, 60, 50), 0.03)
        pen.line([(0.3, 0.35), (0.2, 0.45)], (200, 60, 50), 0.03)
    elif kind == "key":
        pen.ellipse(-0.3, 0.3, 0.15, 0.15, GOLD)
        pen.ellipse(-0.3, 0.3, 0.06, 0.06, shade(GOLD, 0.4), line=False)
        pen.rect(-0.15, 0.26, 0.4, 0.34, GOLD)
        pen.rect(0.25, 0.14, 0.3, 0.26, GOLD)
        pen.rect(0.35, 0.14, 0.4, 0.26, GOLD)
    elif kind == "flower":
        for du, color in ((-0.3, accent), (0.0, (240, 120, 160)), (0.28, (250, 210, 70))):
            pen.line([(du, 0.0), (du, 0.55)], (70, 140, 60), 0.03)
            for i in range(5):
                angle = i / 5 * math.tau
                pen.ellipse(du + 0.1 * math.cos(angle), 0.6 + 0.1 * math.sin(angle), 0.07, 0.07, color)
            pen.ellipse(du, 0.6, 0.05, 0.05, (250, 220, 90))
    elif kind == "mushroom":
        for du, s in ((-0.25, 0.7), (0.15, 1.0)):
            pen.rect(du - 0.06 * s, 0.0, du + 0.06 * s, 0.35 * s, CREAM)
            pen.poly([(du - 0.25 * s, 0.3 * s), (du, 0.6 * s), (du + 0.25 * s, 0.3 * s)], (210, 60, 50))
            pen.ellipse(du - 0.06 * s, 0.4 * s, 0.04 * s, 0.04 * s, WHITE, line=False)
    elif kind == "campfire":
        for du in (-0.25, 0.25):
            pen.line([(du, 0.0), (-du, 0.15)], (110, 70, 40), 0.06)
        pen.poly([(-0.22, 0.08), (-0.1, 0.5), (0.0, 0.3), (0.08, 0.7), (0.22, 0.08)], (250, 140, 40))
        pen.poly([(-0.1, 0.08), (0.0, 0.35), (0.1, 0.08)], (255, 220, 90), line=False)
    elif kind == "cactus":
        green = (80, 150, 80)
        pen.rect(-0.08, 0.0, 0.08, 0.9, green)
        pen.line([(-0.08, 0.4), (-0.28, 0.45), (-0.28, 0.7)], green, 0.1)
        pen.line([(0.08, 0.55), (0.26, 0.6), (0.26, 0.8)], green, 0.1)
    elif kind == "palm":
        pen.line(_curve([(0.0, 0.0), (0.05, 0.5), (0.15, 0.95)]), (140, 100, 60), 0.06)
        for angle in (-150, -110, -70, -30, 10):
            rad = math.radians(angle)
            pen.poly(
                [
                    (0.15, 0.95),
                    (0.15 + 0.45 * math.cos(rad) * -1, 0.95 + 0.3 * math.sin(rad) * -1 - 0.15),
                    (0.15 + 0.2 * math.cos(rad) * -1, 0.95 + 0.05),
                ],
                (60, 150, 70),
            )
    elif kind == "crown":
        pen.poly([(-0.3, 0.0), (-0.35, 0.4), (-0.15, 0.2), (0.0, 0.45), (0.15, 0.2), (0.35, 0.4), (0.3, 0.0)], GOLD)
        pen.ellipse(0.0, 0.12, 0.05, 0.05, accent)
    elif kind == "bell":
        pen.poly([(-0.3, 0.1), (-0.2, 0.6), (0.0, 0.7), (0.2, 0.6), (0.3, 0.1)], GOLD)
        pen.ellipse(0, 0.08, 0.07, 0.07, shade(GOLD, 0.3))
    elif kind == "sled":
        pen.rect(-0.45, 0.15, 0.45, 0.25, accent)
        pen.line([(-0.5, 0.02), (0.45, 0.02), (0.55, 0.15)], (120, 120, 130), 0.03)
        for du in (-0.3, 0.3):
            pen.line([(du, 0.02), (du, 0.15)], (120, 120, 130), 0.025)
    elif kind == "egg":
        pen.ellipse(0, 0.3, 0.2, 0.3, CREAM)
        pen.ellipse(0.05, 0.35, 0.05, 0.04, accent, line=False)
    elif kind == "crystal":
        for du, h, color in ((-0.2, 0.6, (150, 120, 230)), (0.05, 0.9, (120, 200, 240)), (0.25, 0.5, (200, 140, 230))):
            pen.poly([(du - 0.1, 0.0), (du - 0.1, h * 0.7), (du, h), (du + 0.1, h * 0.7), (du + 0.1, 0.0)], color)


def draw_landmark(pen: Pen, kind: str, accent: Color, night: bool) -> None:
    wall = (226, 216, 196)
    roof = accent
    if kind == "lighthouse":
        pen.poly([(-0.14, 0.0), (-0.09, 0.78), (0.09, 0.78), (0.14, 0.0)], WHITE)
        for v in (0.12, 0.38, 0.62):
            top = 0.78 * (v + 0.12) / 0.78
            pen.poly(
                [
                    (-0.14 + 0.05 * v / 0.78, v),
                    (-0.14 + 0.05 * top / 0.78, top),
                    (0.14 - 0.05 * top / 0.78, top),
                    (0.14 - 0.05 * v / 0.78, v),
                ],
                (200, 50, 50),
            )
        pen.rect(-0.12, 0.78, 0.12, 0.81, BLACK)
        pen.rect(-0.07, 0.81, 0.07, 0.92, (255, 230, 120) if night else GLASS)
        pen.poly([(-0.1, 0.92), (0.0, 1.0), (0.1, 0.92)], (200, 50, 50))
    elif kind == "castle":
        stone = (196, 190, 180)
        pen.rect(-0.45, 0.0, 0.45, 0.45, stone)
        for du in (-0.45, 0.45):
            pen.rect(du - 0.1, 0.0, du + 0.1, 0.68, shade(stone, 0.08))
            pen.poly([(du - 0.13, 0.68), (du, 0.9), (du + 0.13, 0.68)], roof)
        pen.rect(-0.14, 0.0, 0.14, 0.85, shade(stone, 0.05))
        pen.poly([(-0.17, 0.85), (0.0, 1.1), (0.17, 0.85)], roof)
        pen.line([(0.0, 1.1), (0.0, 1.22)], BLACK, 0.01)
        pen.poly([(0.0, 1.22), (0.12, 1.18), (0.0, 1.14)], tint(roof, 0.3))
        for i in range(6):
            u = -0.35 + i * 0.14
            pen.rect(u - 0.03, 0.45, u + 0.03, 0.5, stone, line=False)
        pen.poly([(-0.07, 0.0), (-0.07, 0.18), (0.0, 0.24), (0.07, 0.18), (0.07, 0.0)], (90, 60, 40))
        window = (255, 220, 120) if night else (60, 60, 80)
        for du in (-0.45, 0.0, 0.45):
            pen.rect(du - 0.025, 0.5, du + 0.025, 0.58, window, line=False)
    elif kind == "tower":
        pen.rect(-0.15, 0.0, 0.15, 0.8, (200, 190, 175))
        pen.poly([(-0.2, 0.8), (0.0, 1.05), (0.2, 0.8)], roof)
        pen.rect(-0.04, 0.55, 0.04, 0.67, (255, 220, 120) if night else (60, 60, 80), line=False)
    elif kind == "windmill":
        pen.poly([(-0.18, 0.0), (-0.12, 0.6), (0.12, 0.6), (0.18, 0.0)], wall)
        pen.poly([(-0.15, 0.6), (0.0, 0.75), (0.15, 0.6)], roof)
        for angle in (20, 110, 200, 290):
            rad = math.radians(angle)
            end = (0.5 * math.cos(rad), 0.65 + 0.5 * math.sin(rad))
            pen.line([(0.0, 0.65), end], (140, 100, 70), 0.025)
            pen.poly(
                [
                    (0.1 * math.cos(rad), 0.65 + 0.1 * math.sin(rad)),
                    end,
                    (end[0] + 0.08 * math.cos(rad + 1.5), end[1] + 0.08 * math.sin(rad + 1.5)),
                ],
                CREAM,
            )
    elif kind == "pyramid":
        pen.poly([(-0.7, 0.0), (0.0, 0.7), (0.7, 0.0)], (222, 186, 120))
        pen.poly([(0.0, 0.7), (0.7, 0.0), (0.2, 0.0)], (196, 156, 96), line=False)
    elif kind == "bridge":
        stone = (170, 160, 150)
        pen.poly(
            [
                (-0.8, 0.0),
                (-0.8, 0.35),
                (0.8, 0.35),
                (0.8, 0.0),
                (0.5, 0.0),
                (0.4, 0.2),
                (0.0, 0.25),
                (-0.4, 0.2),
                (-0.5, 0.0),
            ],
            stone,
        )
        pen.rect(-0.85, 0.35, 0.85, 0.4, shade(stone, 0.2))
    elif kind == "igloo":
        pen.ellipse(0.0, 0.0, 0.5, 0.45, (236, 244, 250))
        pen.ellipse(0.3, 0.05, 0.14, 0.16, (70, 90, 120))
        for v in (0.15, 0.3):
            pen.line([(-0.45, v), (0.45, v)], (190, 210, 225), 0.01)
    elif kind == "house":
        pen.rect(-0.35, 0.0, 0.35, 0.45, wall)
        pen.poly([(-0.42, 0.45), (0.0, 0.8), (0.42, 0.45)], roof)
        pen.rect(-0.08, 0.0, 0.08, 0.25, (110, 70, 50))
        window = (255, 220, 120) if night else GLASS
        for du in (-0.22, 0.22):
            pen.rect(du - 0.07, 0.22, du + 0.07, 0.34, window)
    elif kind == "tent":
        pen.poly([(-0.45, 0.0), (0.0, 0.6), (0.45, 0.0)], accent)
        pen.poly([(-0.1, 0.0), (0.0, 0.4), (0.1, 0.0)], shade(accent, 0.4))


def sky_object(pen: Pen, kind: str, accent: Color) -> None:
    if kind == "moon":
        pen.ellipse(0, 0.5, 0.5, 0.5, (246, 240, 210))
        for u, v, r in ((-0.18, 0.58, 0.12), (0.2, 0.3, 0.08)):
            pen.ellipse(u, v, r, r, (240, 234, 205), line=False)  # faint, so no style outlines a face
    elif kind == "planet":
        pen.ellipse(0, 0.5, 0.42, 0.42, accent)
        pen.ellipse(0, 0.5, 0.75, 0.12, tint(accent, 0.5), line=False)
        pen.ellipse(0, 0.6, 0.4, 0.2, accent, line=False)
    elif kind == "balloon":
        pen.ellipse(0, 0.62, 0.36, 0.4, accent)
        for du in (-0.18, 0.0, 0.18):
            pen.line(_curve([(du * 0.3, 0.22), (du * 1.6, 0.6), (du * 0.9, 1.0)]), shade(accent, 0.3), 0.015)
        pen.line([(-0.12, 0.22), (-0.08, 0.1)], BLACK, 0.01)
        pen.line([(0.12, 0.22), (0.08, 0.1)], BLACK, 0.01)
        pen.rect(-0.09, 0.0, 0.09, 0.1, (150, 100, 60))
    elif kind == "kite":
        draw_thing(pen, "kite", accent, (250, 210, 70), face=False)
    elif kind == "bird":
        for du in (-0.3, 0.1, 0.4):
            pen.line([(du - 0.1, 0.55), (du, 0.5), (du + 0.1, 0.55)], (50, 50, 60), 0.02)
    elif kind == "star":
        draw_thing(pen, "star", (250, 226, 110), accent, face=False)
    elif kind == "cloud":
        draw_thing(pen, "cloud", WHITE, accent, face=False)
