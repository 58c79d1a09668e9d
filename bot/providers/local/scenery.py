"""Backdrops for the embedded illustrator: the sky for a time of day and weather, one landscape per
setting, and the weather drawn over everything.

Scenery colours pass through ``Stage.env``, which tints them toward the story's palette and then
lights them for the time of day and the weather, so a night scene is a night scene everywhere but on
the hero, who keeps the bible's colours in every picture.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageDraw

from bot.providers.local.sprites import Pen, draw_landmark, draw_prop, shade, sky_object, tint
from bot.providers.local.vocab import Color, mix

SKIES: dict[str, tuple[Color, Color]] = {
    "dawn": ((246, 160, 126), (255, 222, 176)),
    "day": ((84, 150, 226), (196, 228, 250)),
    "dusk": ((74, 52, 124), (246, 142, 96)),
    "night": ((12, 18, 52), (48, 66, 120)),
}
LIGHT: dict[str, tuple[Color, float]] = {
    "dawn": ((255, 186, 150), 0.12),
    "day": ((255, 255, 255), 0.0),
    "dusk": ((110, 60, 100), 0.25),
    "night": ((16, 24, 64), 0.58),
}
OVERCAST: dict[str, tuple[Color, float]] = {
    "storm": ((58, 62, 78), 0.55),
    "rain": ((118, 126, 140), 0.4),
    "snow": ((214, 222, 234), 0.35),
    "fog": ((206, 208, 214), 0.45),
}
CLIFF_TOP = 0.5
GRASS: Color = (96, 160, 84)
WATER: Color = (56, 128, 186)
SAND: Color = (232, 206, 150)
ROCK: Color = (130, 124, 120)
SNOW: Color = (240, 244, 250)


@dataclass
class Stage:
    """One picture's canvas and its lighting."""

    image: Image.Image
    draw: ImageDraw.ImageDraw
    rng: random.Random
    palette: tuple[Color, Color, Color]
    time: str
    weather: str | None
    outline: str | Color | None
    outline_width: int
    banded: bool
    glow: bool
    feature_x: float | None = None  # where the landmark stands, so a coast puts its cliff there
    coarse: bool = False  # the style averages away fine detail (pixel art): rain and snow come thicker

    @property
    def width(self) -> int:
        return self.image.size[0]

    @property
    def height(self) -> int:
        return self.image.size[1]

    @property
    def unit(self) -> float:
        return float(min(self.width, self.height))

    @property
    def horizon(self) -> float:
        return self.height * 0.5

    @property
    def ground(self) -> float:
        """Where the hero stands: just above the caption band."""
        return self.height * 0.765

    @property
    def night(self) -> bool:
        return self.time == "night"

    def env(self, color: Color, palette_index: int | None = None, amount: float = 0.28) -> Color:
        """A scenery colour, toward the palette, then lit for the hour and the weather."""
        if palette_index is not None:
            color = mix(color, self.palette[palette_index], amount)
        light, strength = LIGHT[self.time]
        color = mix(color, light, strength)
        if self.weather in OVERCAST:
            cloud, cover = OVERCAST[self.weather]
            color = mix(color, cloud, cover * 0.5)
        return color

    def pen(self, x: float, y: float, size: float, facing: int = 1, outline: bool = True) -> Pen:
        return Pen(self.draw, x, y, size, facing, self.outline if outline else None, self.outline_width)


def sky_colors(time: str, weather: str | None, palette: tuple[Color, Color, Color]) -> tuple[Color, Color]:
    top, bottom = SKIES.get(time, SKIES["day"])
    top, bottom = mix(top, palette[2], 0.08), mix(bottom, palette[2], 0.12)
    if weather in OVERCAST:
        cloud, cover = OVERCAST[weather]
        top, bottom = mix(top, cloud, cover), mix(bottom, cloud, cover * 0.8)
    return top, bottom


_GRADIENT = Image.linear_gradient("L")


def paint_gradient(stage: Stage, top: Color, bottom: Color, y0: float = 0, y1: float | None = None) -> None:
    end = round(y1 if y1 is not None else stage.height)
    start = round(y0)
    if end <= start:
        return
    size = (stage.width, end - start)
    if stage.banded:
        bands = 4
        for i in range(bands):
            color = mix(top, bottom, i / (bands - 1))
            stage.draw.rectangle(
                [0, start + i * size[1] // bands, stage.width, start + (i + 1) * size[1] // bands], fill=color
            )
        return
    # One column of the gradient, stretched sideways: far cheaper than blending two whole images.
    column = _GRADIENT.resize((1, size[1]), Image.Resampling.BILINEAR)
    channels = [column.point(lambda v, a=a, b=b: a + (b - a) * v // 255) for a, b in zip(top, bottom, strict=True)]
    stage.image.paste(Image.merge("RGB", channels).resize(size, Image.Resampling.NEAREST), (0, start))


def draw_sky(stage: Stage) -> None:
    top, bottom = sky_colors(stage.time, stage.weather, stage.palette)
    paint_gradient(stage, top, bottom, 0, stage.height)
    draw = stage.draw
    rng = stage.rng
    w, h = stage.width, stage.height
    overcast = stage.weather in ("storm", "rain", "fog", "snow")
    if stage.night and not overcast:
        for _ in range(90):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h * 0.55), rng.choice((1, 1, 1.5, 2))
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 235, rng.randrange(110, 255)))
    if not overcast or stage.weather == "snow":
        high = stage.time == "day"
        cx = rng.uniform(w * 0.12, w * 0.88)
        cy = h * (0.16 if high or stage.night else 0.36) + rng.uniform(-h * 0.04, h * 0.04)
        radius = stage.unit * (0.06 if not stage.night else 0.055)
        light = {"night": (244, 240, 214), "dusk": (255, 196, 120), "dawn": (255, 232, 180)}.get(
            stage.time, (255, 238, 150)
        )
        if stage.glow:
            for step in range(8, 0, -1):
                glow = radius * (1 + step * 0.22)
                draw.ellipse([cx - glow, cy - glow, cx + glow, cy + glow], fill=(*light, 10 + 4 * (8 - step)))
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=light)
        if stage.night:
            for u, v, r in ((-0.3, -0.2, 0.22), (0.25, 0.3, 0.16), (0.1, -0.45, 0.12)):
                draw.ellipse(
                    [cx + (u - r) * radius, cy + (v - r) * radius, cx + (u + r) * radius, cy + (v + r) * radius],
                    fill=shade(light, 0.1),
                )
    clouds = {"storm": 9, "rain": 7, "fog": 3, "snow": 6}.get(stage.weather or "", 0 if stage.night else 4)
    dark = stage.weather in ("storm", "rain")
    for _ in range(clouds):
        cx, cy = rng.uniform(-w * 0.05, w * 1.05), rng.uniform(h * 0.04, h * (0.22 if dark else 0.32))
        base = (70, 74, 88) if stage.weather == "storm" else (150, 156, 168) if dark else (255, 255, 255)
        alpha = 235 if dark else 150
        for _ in range(5):
            cw, ch = rng.uniform(0.06, 0.13) * w, rng.uniform(0.035, 0.06) * h
            dx, dy = rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.025, 0.025) * h
            draw.ellipse([cx + dx - cw, cy + dy - ch, cx + dx + cw, cy + dy + ch], fill=(*base, alpha))


def hills(stage: Stage, base: float, amplitude: float, color: Color, phase: float, freq: float = 1.6) -> None:
    w, h = stage.width, stage.height
    points = [(x, base + amplitude * math.sin(x / w * math.tau * freq / 2 + phase)) for x in range(0, w + 24, 24)]
    stage.draw.polygon([*points, (w, h), (0, h)], fill=color)


def ground_band(stage: Stage, color: Color, top: float | None = None, wave: float = 0.012) -> None:
    top = stage.height * 0.7 if top is None else top
    hills(stage, top, stage.height * wave, color, stage.rng.uniform(0, math.tau), 1.2)


def tree(stage: Stage, x: float, y: float, size: float, kind: str = "round", snowy: bool = False) -> None:
    draw = stage.draw
    trunk = stage.env((112, 80, 52))
    leaf = stage.env((62, 132, 70) if kind != "dark" else (40, 96, 60), 1, 0.25)
    draw.rectangle([x - size * 0.05, y - size * 0.45, x + size * 0.05, y], fill=trunk)
    if kind in ("pine", "dark"):
        for i in range(3):
            top = y - size * (0.35 + i * 0.22)
            half = size * (0.32 - i * 0.08)
            draw.polygon(
                [(x - half, top + size * 0.25), (x, top - size * 0.2), (x + half, top + size * 0.25)], fill=leaf
            )
            if snowy:
                draw.polygon(
                    [(x - half * 0.45, top), (x, top - size * 0.2), (x + half * 0.45, top)], fill=stage.env(SNOW)
                )
    else:
        draw.ellipse([x - size * 0.3, y - size * 1.0, x + size * 0.3, y - size * 0.4], fill=leaf)
        draw.ellipse([x - size * 0.22, y - size * 0.95, x + size * 0.08, y - size * 0.65], fill=tint(leaf, 0.12))
        if snowy:
            draw.ellipse([x - size * 0.22, y - size * 1.0, x + size * 0.2, y - size * 0.85], fill=stage.env(SNOW))


def waves(stage: Stage, top: float, bottom: float, color: Color) -> None:
    draw = stage.draw
    rng = stage.rng
    w = stage.width
    rough = 2.2 if stage.weather == "storm" else 1.0
    for _ in range(int(28 * rough)):
        y = rng.uniform(top + 4, bottom)
        x = rng.uniform(0, w)
        length = (12 + 40 * (y - top) / max(1.0, bottom - top)) * rough
        draw.arc([x - length, y - length * 0.3, x + length, y + length * 0.3], 200, 340, fill=color, width=2)


# --- one backdrop per setting -----------------------------------------------------------------------


def _meadow(stage: Stage) -> None:
    h = stage.height
    rng = stage.rng
    hills(stage, h * 0.5, h * 0.04, stage.env((150, 190, 130), 0), rng.uniform(0, 6))
    hills(stage, h * 0.58, h * 0.035, stage.env((110, 170, 96), 1), rng.uniform(0, 6))
    for _ in range(rng.randrange(3, 6)):
        tree(stage, rng.uniform(0, stage.width), h * rng.uniform(0.6, 0.64), stage.unit * rng.uniform(0.1, 0.16))
    ground_band(stage, stage.env(GRASS, 1, 0.2))
    _flowers(stage, 14)


def _flowers(stage: Stage, count: int) -> None:
    rng = stage.rng
    for _ in range(count):
        x, y = rng.uniform(0, stage.width), rng.uniform(stage.height * 0.72, stage.height * 0.98)
        r = stage.unit * 0.006
        color = stage.env(rng.choice([(250, 230, 110), (245, 140, 170), (255, 255, 255), stage.palette[0]]))
        stage.draw.ellipse([x - r, y - r, x + r, y + r], fill=color)


def _forest(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    hills(stage, h * 0.46, h * 0.03, stage.env((120, 160, 130), 0), rng.uniform(0, 6))
    snowy = stage.weather == "snow"
    # the shade under the trees, so no sky shows between the rows
    hills(stage, h * 0.52, h * 0.015, stage.env((52, 92, 62), 1, 0.15), rng.uniform(0, 6), 3.0)
    for row, (y, size, count) in enumerate(((0.5, 0.2, 14), (0.6, 0.28, 10), (0.68, 0.36, 6))):
        for i in range(count):
            x = (i + rng.uniform(-0.3, 0.3)) * w / (count - 1)
            tree(stage, x, h * y, stage.unit * size, rng.choice(("pine", "dark", "round")) if row else "pine", snowy)
    ground_band(stage, stage.env(SNOW if snowy else (86, 130, 70), 1, 0.2), h * 0.72)
    stage.draw.polygon(
        [(w * 0.42, h * 0.72), (w * 0.58, h * 0.72), (w * 0.75, h), (w * 0.25, h)],
        fill=stage.env((150, 120, 84) if not snowy else (220, 226, 236)),
    )


def _jungle(stage: Stage) -> None:
    _forest(stage)
    rng = stage.rng
    for _ in range(6):
        x, y = rng.uniform(0, stage.width), stage.height * rng.uniform(0.0, 0.2)
        stage.draw.line(
            [(x, 0), (x + rng.uniform(-20, 20), y + stage.height * 0.2)], fill=stage.env((60, 120, 60)), width=4
        )
    for side in (0, stage.width):
        for i in range(4):
            pen = stage.pen(side, stage.height * (0.75 + i * 0.06), stage.unit * 0.35, 1 if side == 0 else -1)
            pen.poly([(0, 0), (0.6, 0.25 + i * 0.05), (0.9, 0.1), (0.4, -0.1)], stage.env((50, 140, 70), 1))


def _sea(stage: Stage, shore: bool = True) -> None:
    h, w = stage.height, stage.width
    stage.draw.rectangle([0, h * 0.5, w, h], fill=stage.env(WATER, 1, 0.2))
    far = stage.env(tint(WATER, 0.25), 1, 0.2)
    stage.draw.rectangle([0, h * 0.5, w, h * 0.55], fill=far)
    waves(stage, h * 0.52, h * 0.95, stage.env(tint(WATER, 0.45)))
    if shore:
        ground_band(stage, stage.env(SAND, 2, 0.2), h * 0.72, 0.02)


def _coast(stage: Stage) -> None:
    _sea(stage)
    h, w = stage.height, stage.width
    x0 = (stage.feature_x - w * 0.14) if stage.feature_x is not None else w * stage.rng.choice((0.0, 0.72))
    x0 = min(max(x0, -w * 0.05), w * 0.77)
    top = h * CLIFF_TOP
    stage.draw.polygon(
        [(x0 - w * 0.2, top - h * 0.01), (x0 + w * 0.28, top), (x0 + w * 0.33, h * 0.8), (x0 - w * 0.2, h * 0.8)],
        fill=stage.env(ROCK, 0),
    )
    stage.draw.polygon(
        [
            (x0 - w * 0.2, top - h * 0.01),
            (x0 + w * 0.28, top),
            (x0 + w * 0.285, top + h * 0.03),
            (x0 - w * 0.2, top + h * 0.03),
        ],
        fill=stage.env(GRASS, 1),
    )


def _island(stage: Stage) -> None:
    _sea(stage)
    h, w = stage.height, stage.width
    cx = stage.rng.uniform(w * 0.55, w * 0.8)
    stage.draw.ellipse([cx - w * 0.14, h * 0.49, cx + w * 0.14, h * 0.58], fill=stage.env(SAND, 2))
    pen = stage.pen(cx, h * 0.52, stage.unit * 0.22)
    draw_prop(pen, "palm", stage.palette[0])


def _river(stage: Stage) -> None:
    _meadow_base(stage)
    h, w = stage.height, stage.width
    cx = stage.rng.uniform(w * 0.4, w * 0.6)
    stage.draw.polygon(
        [(cx - w * 0.02, h * 0.55), (cx + w * 0.02, h * 0.55), (cx + w * 0.3, h), (cx - w * 0.25, h)],
        fill=stage.env(WATER, 1, 0.2),
    )
    waves(stage, h * 0.7, h * 0.98, stage.env(tint(WATER, 0.4)))


def _meadow_base(stage: Stage) -> None:
    h = stage.height
    hills(stage, h * 0.5, h * 0.04, stage.env((150, 190, 130), 0), stage.rng.uniform(0, 6))
    hills(stage, h * 0.58, h * 0.03, stage.env((110, 170, 96), 1), stage.rng.uniform(0, 6))
    ground_band(stage, stage.env(GRASS, 1, 0.2), h * 0.66)


def _lake(stage: Stage) -> None:
    _meadow_base(stage)
    h, w = stage.height, stage.width
    stage.draw.ellipse([w * 0.1, h * 0.6, w * 0.9, h * 0.74], fill=stage.env(WATER, 1, 0.2))
    stage.draw.ellipse([w * 0.2, h * 0.62, w * 0.6, h * 0.66], fill=stage.env(tint(WATER, 0.35)))


def _underwater(stage: Stage) -> None:
    h, w = stage.height, stage.width
    paint_gradient(stage, stage.env((40, 150, 190), 1, 0.2), stage.env((12, 50, 100), 1, 0.2))
    rng = stage.rng
    for _ in range(5):
        x = rng.uniform(0, w)
        stage.draw.polygon(
            [(x, 0), (x + w * 0.05, 0), (x + w * 0.12, h * 0.7), (x + w * 0.06, h * 0.7)], fill=(255, 255, 255, 28)
        )
    ground_band(stage, stage.env(SAND, 2, 0.2), h * 0.74)
    for _ in range(10):
        x = rng.uniform(0, w)
        pen = stage.pen(x, h * rng.uniform(0.74, 0.8), stage.unit * rng.uniform(0.15, 0.3))
        pen.line([(0, 0), (0.05, 0.3), (-0.05, 0.6), (0.03, 0.9)], stage.env((40, 150, 90)), 0.05)
    for _ in range(25):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h * 0.7), rng.uniform(2, 6)
        stage.draw.ellipse([x - r, y - r, x + r, y + r], outline=(220, 240, 255, 160), width=1)


def _city(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    for layer, (base, tallest, color) in enumerate(((0.62, 0.32, (120, 130, 160)), (0.7, 0.26, (90, 96, 120)))):
        x = -rng.uniform(0, 40)
        while x < w:
            bw = w * rng.uniform(0.06, 0.11)
            top = h * (base - rng.uniform(0.08, tallest))
            fill = stage.env(color, layer, 0.3)
            stage.draw.rectangle([x, top, x + bw, h * base + 2], fill=fill)
            lit = (255, 220, 120) if stage.night or stage.time == "dusk" else tint(fill, 0.25)
            for wy in range(int(top + 10), int(h * base - 8), 18):
                for wx in range(int(x + 6), int(x + bw - 8), 14):
                    if rng.random() < (0.45 if stage.night else 0.7):
                        stage.draw.rectangle([wx, wy, wx + 6, wy + 8], fill=lit)
            x += bw + rng.uniform(2, 10)
    stage.draw.rectangle([0, h * 0.7, w, h], fill=stage.env((120, 120, 128), 0, 0.15))
    stage.draw.rectangle([0, h * 0.7, w, h * 0.72], fill=stage.env((170, 170, 176)))
    for i in range(6):
        x = (i + 0.5) * w / 6
        stage.draw.rectangle([x - w * 0.03, h * 0.86, x + w * 0.03, h * 0.87], fill=stage.env((230, 230, 220)))


def _village(stage: Stage) -> None:
    _meadow_base(stage)
    h, w = stage.height, stage.width
    rng = stage.rng
    for i in range(5):
        x = (i + rng.uniform(0.2, 0.8)) * w / 5
        pen = stage.pen(x, h * rng.uniform(0.6, 0.64), stage.unit * rng.uniform(0.16, 0.22))
        draw_landmark(pen, "house", stage.env(rng.choice(stage.palette[:2])), stage.night)
    stage.draw.polygon(
        [(w * 0.45, h * 0.66), (w * 0.55, h * 0.66), (w * 0.7, h), (w * 0.3, h)], fill=stage.env((200, 176, 130))
    )


def _desert(stage: Stage) -> None:
    h = stage.height
    rng = stage.rng
    hills(stage, h * 0.5, h * 0.05, stage.env((236, 196, 130), 0), rng.uniform(0, 6), 2.4)
    hills(stage, h * 0.6, h * 0.05, stage.env((226, 180, 110), 2), rng.uniform(0, 6), 1.8)
    ground_band(stage, stage.env(SAND, 2, 0.2), h * 0.7, 0.02)
    for _ in range(2):
        pen = stage.pen(rng.uniform(0, stage.width), h * rng.uniform(0.62, 0.68), stage.unit * 0.12)
        draw_prop(pen, "cactus", stage.palette[0])


def _mountains(stage: Stage, volcano: bool = False) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    for layer, (base, color) in enumerate(((0.55, (150, 160, 190)), (0.62, (120, 126, 150)))):
        x = -w * 0.1
        while x < w * 1.1:
            width = w * rng.uniform(0.18, 0.3)
            peak = h * rng.uniform(0.14, 0.3) + layer * h * 0.08
            fill = stage.env(color, layer, 0.25)
            stage.draw.polygon([(x, h * base), (x + width / 2, peak), (x + width, h * base)], fill=fill)
            cap = stage.env(SNOW)
            stage.draw.polygon(
                [
                    (x + width / 2 - width * 0.12, peak + (h * base - peak) * 0.24),
                    (x + width / 2, peak),
                    (x + width / 2 + width * 0.12, peak + (h * base - peak) * 0.24),
                ],
                fill=cap,
            )
            x += width * 0.7
    if volcano:
        cx = w * rng.uniform(0.35, 0.65)
        stage.draw.polygon(
            [
                (cx - w * 0.25, h * 0.66),
                (cx - w * 0.05, h * 0.22),
                (cx + w * 0.05, h * 0.22),
                (cx + w * 0.25, h * 0.66),
            ],
            fill=stage.env((90, 70, 66)),
        )
        stage.draw.polygon(
            [(cx - w * 0.05, h * 0.22), (cx + w * 0.05, h * 0.22), (cx + w * 0.02, h * 0.32), (cx - w * 0.03, h * 0.3)],
            fill=(255, 120, 40),
        )
        for i in range(4):
            r = stage.unit * (0.04 + i * 0.015)
            y = h * (0.18 - i * 0.04)
            stage.draw.ellipse([cx - r + i * 8, y - r, cx + r + i * 8, y + r], fill=(110, 106, 110, 170))
    ground_band(stage, stage.env((120, 150, 100), 1, 0.2), h * 0.68)
    for _ in range(4):
        x, y = rng.uniform(0, w), h * rng.uniform(0.72, 0.95)
        r = stage.unit * rng.uniform(0.015, 0.03)
        stage.draw.ellipse([x - r * 1.4, y - r, x + r * 1.4, y + r * 0.4], fill=stage.env(ROCK))


def _snowland(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    hills(stage, h * 0.52, h * 0.03, stage.env((200, 220, 236), 0, 0.15), rng.uniform(0, 6))
    for _ in range(3):
        x = rng.uniform(0, w)
        stage.draw.polygon(
            [(x, h * 0.6), (x + w * 0.04, h * 0.45), (x + w * 0.1, h * 0.5), (x + w * 0.14, h * 0.6)],
            fill=stage.env((190, 220, 240)),
        )
    for _ in range(3):
        tree(stage, rng.uniform(0, w), h * rng.uniform(0.62, 0.66), stage.unit * 0.18, "pine", snowy=True)
    ground_band(stage, stage.env(SNOW, 2, 0.1), h * 0.68)


def _space(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    paint_gradient(stage, mix((8, 8, 30), stage.palette[0], 0.15), mix((30, 20, 70), stage.palette[1], 0.2))
    for _ in range(160):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h * 0.75), rng.choice((1, 1, 1.5, 2.2))
        stage.draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 240, rng.randrange(120, 255)))
    pen = stage.pen(rng.uniform(w * 0.15, w * 0.85), h * 0.2, stage.unit * 0.22, outline=False)
    sky_object(pen, "planet", stage.palette[1])
    stage.draw.ellipse([-w * 0.3, h * 0.66, w * 1.3, h * 1.6], fill=mix((170, 170, 180), stage.palette[2], 0.2))
    for _ in range(6):
        x, y = rng.uniform(0, w), h * rng.uniform(0.72, 0.95)
        r = stage.unit * rng.uniform(0.02, 0.05)
        stage.draw.ellipse([x - r * 1.6, y - r * 0.5, x + r * 1.6, y + r * 0.5], fill=(140, 140, 152))


def _sky(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    for row, (y, size, alpha) in enumerate(((0.62, 0.1, 200), (0.72, 0.14, 235), (0.84, 0.18, 255))):
        color = stage.env((255, 255, 255), 2, 0.1)
        for i in range(9 - row * 2):
            x = (i + rng.uniform(-0.3, 0.3)) * w / (8 - row * 2)
            r = stage.unit * size
            stage.draw.ellipse([x - r * 1.3, h * y - r * 0.6, x + r * 1.3, h * y + r * 0.6], fill=(*color, alpha))
    stage.draw.rectangle([0, h * 0.84, w, h], fill=stage.env((255, 255, 255), 2, 0.1))


def _cave(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    paint_gradient(stage, stage.env((40, 34, 46)), stage.env((70, 60, 70)))
    for _ in range(12):
        x = rng.uniform(0, w)
        length = h * rng.uniform(0.08, 0.22)
        stage.draw.polygon([(x - 14, 0), (x, length), (x + 14, 0)], fill=stage.env((60, 52, 62)))
    for _ in range(4):
        pen = stage.pen(rng.uniform(0, w), h * rng.uniform(0.66, 0.7), stage.unit * 0.16)
        draw_prop(pen, "crystal", stage.palette[1])
    ground_band(stage, stage.env((90, 80, 84), 0, 0.15), h * 0.7)


def _garden(stage: Stage) -> None:
    _meadow_base(stage)
    h, w = stage.height, stage.width
    stage.draw.rectangle([0, h * 0.55, w, h * 0.62], fill=stage.env((60, 120, 60), 1, 0.2))
    for i in range(14):
        x = i * w / 13
        stage.draw.rectangle([x - 3, h * 0.6, x + 3, h * 0.68], fill=stage.env((236, 230, 214)))
    stage.draw.rectangle([0, h * 0.62, w, h * 0.63], fill=stage.env((236, 230, 214)))
    _flowers(stage, 30)


def _farm(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    for i in range(4):
        y0 = h * (0.5 + i * 0.04)
        color = stage.env(((200, 180, 90), (120, 170, 90))[i % 2], 2 if i % 2 else 1, 0.2)
        hills(stage, y0, h * 0.012, color, rng.uniform(0, 6), 1.0)
    pen = stage.pen(w * rng.choice((0.15, 0.85)), h * 0.62, stage.unit * 0.24)
    draw_landmark(pen, "house", stage.env((190, 50, 40)), stage.night)
    ground_band(stage, stage.env(GRASS, 1, 0.2), h * 0.68)
    for i in range(12):
        x = i * w / 11
        stage.draw.rectangle([x - 3, h * 0.66, x + 3, h * 0.72], fill=stage.env((150, 110, 70)))
    stage.draw.rectangle([0, h * 0.68, w, h * 0.69], fill=stage.env((150, 110, 70)))


def _swamp(stage: Stage) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    hills(stage, h * 0.5, h * 0.02, stage.env((90, 120, 90), 0), rng.uniform(0, 6))
    stage.draw.rectangle([0, h * 0.58, w, h], fill=stage.env((70, 100, 80), 1, 0.2))
    for _ in range(5):
        x = rng.uniform(0, w)
        tree(stage, x, h * 0.6, stage.unit * rng.uniform(0.25, 0.35), "dark")
    for _ in range(30):
        x, y = rng.uniform(0, w), h * rng.uniform(0.62, 0.98)
        stage.draw.line(
            [(x, y), (x + rng.uniform(-4, 4), y - stage.unit * 0.05)], fill=stage.env((70, 110, 50)), width=2
        )
    ground_band(stage, stage.env((96, 120, 70), 1, 0.2), h * 0.73)


def _indoors(stage: Stage, shelves: bool) -> None:
    h, w = stage.height, stage.width
    rng = stage.rng
    wall = mix((230, 214, 186), stage.palette[2], 0.4)
    stage.draw.rectangle([0, 0, w, h * 0.7], fill=stage.env(wall, None) if not stage.night else shade(wall, 0.35))
    window_x = w * rng.uniform(0.55, 0.75)
    top, bottom = sky_colors(stage.time, stage.weather, stage.palette)
    stage.draw.rectangle([window_x, h * 0.12, window_x + w * 0.18, h * 0.45], fill=top)
    stage.draw.rectangle([window_x, h * 0.3, window_x + w * 0.18, h * 0.45], fill=bottom)
    frame = (120, 84, 54)
    stage.draw.rectangle([window_x, h * 0.12, window_x + w * 0.18, h * 0.45], outline=frame, width=6)
    stage.draw.line([(window_x + w * 0.09, h * 0.12), (window_x + w * 0.09, h * 0.45)], fill=frame, width=4)
    if shelves:
        for shelf in range(4):
            y = h * (0.16 + shelf * 0.14)
            x = w * 0.04
            while x < w * 0.5:
                bw = w * rng.uniform(0.012, 0.022)
                stage.draw.rectangle(
                    [x, y, x + bw, y + h * 0.11],
                    fill=rng.choice([stage.palette[0], stage.palette[1], (180, 60, 50), (60, 90, 150)]),
                )
                x += bw + 1
            stage.draw.rectangle([w * 0.03, y + h * 0.11, w * 0.51, y + h * 0.125], fill=frame)
    stage.draw.rectangle([0, h * 0.7, w, h], fill=stage.env((170, 120, 80), 0, 0.2))
    for i in range(8):
        y = h * (0.7 + i * 0.04)
        stage.draw.line([(0, y), (w, y)], fill=stage.env((140, 98, 64)), width=2)
    stage.draw.ellipse([w * 0.22, h * 0.72, w * 0.78, h * 0.84], fill=stage.env(stage.palette[1], None))


BACKDROPS: dict[str, Callable[[Stage], None]] = {
    "meadow": _meadow,
    "forest": _forest,
    "jungle": _jungle,
    "sea": _sea,
    "coast": _coast,
    "island": _island,
    "river": _river,
    "lake": _lake,
    "underwater": _underwater,
    "city": _city,
    "village": _village,
    "castle": _meadow,
    "desert": _desert,
    "mountains": _mountains,
    "volcano": lambda stage: _mountains(stage, volcano=True),
    "snowland": _snowland,
    "space": _space,
    "sky": _sky,
    "cave": _cave,
    "garden": _garden,
    "farm": _farm,
    "swamp": _swamp,
    "library": lambda stage: _indoors(stage, shelves=True),
    "room": lambda stage: _indoors(stage, shelves=False),
}
# Settings that replace the sky with their own background.
OWN_SKY = frozenset({"underwater", "space", "cave", "library", "room"})
WATER_FOREGROUND = frozenset({"sea", "river", "lake", "swamp"})


def draw_backdrop(stage: Stage, setting: str) -> None:
    if setting not in OWN_SKY:
        draw_sky(stage)
    BACKDROPS.get(setting, _meadow)(stage)


SHELTERED = frozenset({"room", "library", "underwater", "space", "cave"})


def draw_mist(stage: Stage, setting: str) -> None:
    """Fog over the scenery, drawn before the hero: the hero stays in the bible's colours, in front of it."""
    if setting in SHELTERED or stage.weather != "fog":
        return
    w, h = stage.width, stage.height
    for i in range(5):
        y = h * (0.35 + i * 0.12)
        stage.draw.ellipse([-w * 0.2, y - h * 0.06, w * 1.2, y + h * 0.06], fill=(236, 238, 242, 80))


def draw_weather(stage: Stage, setting: str, avoid: tuple[float, float] | None = None) -> None:
    """Rain, snow, wind and lightning over everything drawn so far (none indoors, in space or under
    the sea)."""
    if setting in SHELTERED:
        return
    draw = stage.draw
    rng = stage.rng
    w, h = stage.width, stage.height
    weather = stage.weather
    if weather in ("rain", "storm"):
        slant = w * 0.012 if weather == "rain" else w * 0.03
        for _ in range((170 if weather == "storm" else 130) // (3 if stage.coarse else 1)):
            x, y = rng.uniform(-slant, w), rng.uniform(0, h)
            length = h * rng.uniform(0.03, 0.06)
            draw.line([(x, y), (x + slant, y + length)], fill=(210, 220, 240, 130), width=7 if stage.coarse else 2)
    if weather == "storm":
        # lightning strikes well away from the hero (``avoid`` is the hero's left and right)
        lanes = [
            x
            for x in (w * 0.15, w * 0.3, w * 0.5, w * 0.7, w * 0.85)
            if avoid is None or not avoid[0] - w * 0.12 < x < avoid[1] + w * 0.12
        ]
        x = rng.choice(lanes or [w * 0.1])
        points = [(x, 0.0)]
        y = 0.0
        while y < h * 0.45:
            y += h * rng.uniform(0.05, 0.09)
            x += rng.uniform(-w * 0.04, w * 0.04)
            points.append((x, y))
        draw.line(points, fill=(255, 250, 200, 255), width=max(3, round(stage.unit * 0.008)))
        draw.line(points, fill=(255, 255, 255, 120), width=max(8, round(stage.unit * 0.02)))
    if weather == "snow":
        for _ in range(150):
            x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(1.5, 4.5) * (2.5 if stage.coarse else 1)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255, 220))
    if weather == "fog":
        for i in range(2):
            y = h * (0.12 + i * 0.1)
            draw.ellipse([-w * 0.2, y - h * 0.05, w * 1.2, y + h * 0.05], fill=(236, 238, 242, 60))
    if weather == "wind":
        for _ in range(9):
            x, y = rng.uniform(0, w * 0.8), rng.uniform(h * 0.15, h * 0.7)
            length = w * rng.uniform(0.08, 0.16)
            draw.arc([x, y, x + length, y + h * 0.05], 180, 340, fill=(255, 255, 255, 170), width=3)
        for _ in range(10):
            x, y = rng.uniform(0, w), rng.uniform(h * 0.2, h * 0.7)
            r = stage.unit * 0.008
            draw.ellipse([x - r * 2, y - r, x + r * 2, y + r], fill=(*stage.env((200, 120, 50)), 230))
