"""A small PNG of the last 24 hours: success rate (top) and p50 latency (bottom), one line per model."""

from __future__ import annotations

import io
import math
from collections import defaultdict

from PIL import Image, ImageDraw, ImageFont

from bot.health.model import ChartPoint

WIDTH, HEIGHT = 720, 400
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP = 64, 16, 24
PANEL_HEIGHT, PANEL_GAP, LEGEND_HEIGHT = 130, 40, 40
MAX_LINES = 6  # more models than this on one small chart is noise; the busiest are drawn
PALETTE = ((88, 101, 242), (87, 242, 135), (254, 231, 92), (235, 69, 158), (237, 66, 69), (153, 170, 181))
BACKGROUND, GRID, TEXT = (43, 45, 49), (70, 73, 79), (219, 222, 225)


def render_chart(points: list[ChartPoint]) -> bytes:
    """The chart as PNG bytes; points are ChartPoint rows (per model, per hour)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    series = _series(points)
    hours = sorted({p.hour_start for p in points})
    top = (MARGIN_TOP, MARGIN_TOP + PANEL_HEIGHT)
    bottom = (top[1] + PANEL_GAP, top[1] + PANEL_GAP + PANEL_HEIGHT)
    latencies = [p.p50_ms for p in points if p.p50_ms is not None]
    ceiling = _nice_ceiling(max(latencies)) if latencies else 1000.0
    _panel(draw, font, top, "success rate", [(0.0, "0 %"), (0.5, "50 %"), (1.0, "100 %")])
    _panel(draw, font, bottom, "p50 latency", [(f, _millis(ceiling * f)) for f in (0.0, 0.5, 1.0)])
    _hour_labels(draw, font, hours, bottom[1])
    if not series:
        draw.text((WIDTH // 2 - 90, top[0] + PANEL_HEIGHT // 2), "no calls in the last 24 hours", fill=TEXT, font=font)
    for index, (key, rows) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        _line(draw, hours, top, [(p.hour_start, p.success_rate) for p in rows], colour)
        scaled = [(p.hour_start, None if p.p50_ms is None else min(p.p50_ms / ceiling, 1.0)) for p in rows]
        _line(draw, hours, bottom, scaled, colour)
        x = MARGIN_LEFT + (index % 3) * 210
        y = HEIGHT - LEGEND_HEIGHT + (index // 3) * 18
        draw.rectangle((x, y + 3, x + 10, y + 13), fill=colour)
        draw.text((x + 16, y + 2), key[:30], fill=TEXT, font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _series(points: list[ChartPoint]) -> list[tuple[str, list[ChartPoint]]]:
    by_model: dict[str, list[ChartPoint]] = defaultdict(list)
    for point in points:
        by_model[point.model_key].append(point)
    busy = [(key, rows) for key, rows in by_model.items() if any(p.success_rate is not None for p in rows)]
    busy.sort(key=lambda item: (-sum(p.success_rate is not None for p in item[1]), item[0]))
    return [(key, sorted(rows, key=lambda p: p.hour_start)) for key, rows in busy[:MAX_LINES]]


def _millis(value: float) -> str:
    return f"{value:g} ms" if value < 1000 else f"{value / 1000:g} s"


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _x(hours: list[float], hour: float) -> float:
    span = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    if len(hours) < 2:
        return MARGIN_LEFT + span / 2
    return MARGIN_LEFT + span * (hour - hours[0]) / (hours[-1] - hours[0])


def _y(panel: tuple[int, int], fraction: float) -> float:
    return panel[1] - (panel[1] - panel[0]) * fraction


def _panel(
    draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, panel: tuple[int, int],
    title: str, ticks: list[tuple[float, str]],
) -> None:  # fmt: skip
    draw.text((MARGIN_LEFT, panel[0] - 14), title, fill=TEXT, font=font)
    for fraction, label in ticks:
        y = _y(panel, fraction)
        draw.line((MARGIN_LEFT, y, WIDTH - MARGIN_RIGHT, y), fill=GRID)
        draw.text((4, y - 6), label, fill=TEXT, font=font)


def _hour_labels(
    draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, hours: list[float], y: int
) -> None:
    if not hours:
        return
    last = len(hours) - 1
    for index in range(0, len(hours), 6):
        label = f"-{last - index} h" if index != last else "now"
        draw.text((_x(hours, hours[index]) - 12, y + 6), label, fill=TEXT, font=font)
    draw.text((_x(hours, hours[last]) - 20, y + 6), "now", fill=TEXT, font=font)


def _line(
    draw: ImageDraw.ImageDraw, hours: list[float], panel: tuple[int, int], values: list[tuple[float, float | None]],
    colour: tuple[int, int, int],
) -> None:  # fmt: skip
    """Connected segments where consecutive hours have values; a lone value is drawn as a dot."""
    run: list[tuple[float, float]] = []
    for hour, value in [*values, (math.inf, None)]:
        if value is not None:
            run.append((_x(hours, hour), _y(panel, value)))
            continue
        if len(run) == 1:
            x, y = run[0]
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        elif run:
            draw.line(run, fill=colour, width=2)
        run = []
