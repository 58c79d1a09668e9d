"""The shared status rows, the terminal table, the /status embed within Discord's limits, and the chart PNG."""

from __future__ import annotations

import io

from PIL import Image

from bot.health.chart import HEIGHT, PALETTE, WIDTH, render_chart
from bot.health.model import ChartPoint, HealthState, ModelStatus, StatusReport, WindowStats
from bot.health.table import format_status, status_row
from cogs.status import status_embed

NOW = 1_800_000_000.0
HOUR = 3600.0


def model(key: str, state: HealthState = HealthState.UP, **fields: object) -> ModelStatus:
    stats = WindowStats(calls=200, successes=190, fallbacks=10, p50_ms=850.0, p95_ms=12_400.0, p99_ms=20_000.0)
    values: dict[str, object] = {
        "key": key, "provider": "openai", "modality": "image", "state": state,
        "available": state in (HealthState.UP, HealthState.DEGRADED), "windows": {"10m": stats, "1h": stats},
    }  # fmt: skip
    values.update(fields)
    return ModelStatus(**values)  # type: ignore[arg-type]


def report(models: list[ModelStatus], **fields: object) -> StatusReport:
    values: dict[str, object] = {"generated_at": NOW, "models": models, "queue_depth": 3, "oldest_queued_age_s": 125.0}
    values.update(fields)
    return StatusReport(**values)  # type: ignore[arg-type]


def test_a_row_shows_the_hour_in_plain_figures() -> None:
    row = status_row(model("gpt-image-1.5", last_error="gpt-image-1.5 had a temporary\n outage", cooldown_left_s=42))
    assert row.cells() == (
        "🟢", "gpt-image-1.5", "up", "95 %", "850 ms / 12.4 s", "5 %", "42 s", "gpt-image-1.5 had a temporary outage"
    )  # fmt: skip
    idle = status_row(model("grok-imagine-image", HealthState.UNCONFIGURED, windows={"1h": WindowStats()}))
    assert idle.cells() == ("⚪", "grok-imagine-image", "unconfigured", "–", "–", "–", "–", "–")
    retired = status_row(model("dall-e-3", HealthState.RETIRED, successor="gpt-image-1.5"))
    assert (retired.mark, retired.state) == ("⚫", "retired, use gpt-image-1.5")


def test_terminal_table_has_one_row_per_model_and_the_queue() -> None:
    text = format_status(report([model("gpt-image-1.5"), model("local-sketch", HealthState.DEGRADED)]))
    table, queue, *_ = text.split("\n\n")
    header, _rule, *rows = table.splitlines()
    assert header.split() == ["model", "state", "success", "p50/p95", "fallback", "cooldown", "last", "error"]
    assert [row.split()[:2] for row in rows] == [["gpt-image-1.5", "up"], ["local-sketch", "degraded"]]
    assert queue.startswith("Queue: 3 waiting, the oldest for 2 min")


def test_embed_has_a_field_per_model_with_its_figures() -> None:
    writer = model("gpt-5-mini", modality="text")
    embed = status_embed(report([model("gpt-image-1.5", HealthState.DEGRADED, last_error="it broke"), writer]))
    assert [field.name for field in embed.fields] == ["🟡 gpt-image-1.5", "🟢 gpt-5-mini"]
    assert embed.fields[0].value == (
        "degraded · success 95 % · p50/p95 850 ms / 12.4 s · fallback 5 %\nlast error: it broke"
    )
    assert embed.description == "Queue: 3 waiting, the oldest for 2 min"


def test_embed_stays_within_discord_limits_with_many_models_and_long_errors() -> None:
    models = [model(f"model-{index:02d}-" + "x" * 60, HealthState.DOWN, last_error="e" * 3000) for index in range(40)]
    embed = status_embed(report(models, database_ok=False))
    assert len(embed.fields) <= 25
    assert len(embed) <= 6000
    assert all(len(field.value or "") <= 1024 and len(field.name or "") <= 256 for field in embed.fields)
    more = embed.fields[-1]
    shown = len(embed.fields) - 1
    assert more.name == f"…and {40 - shown} more"
    assert "cannot be made right now" in (embed.description or "")
    assert "the database did not answer" in (embed.description or "")


def chart_points() -> list[ChartPoint]:
    first = NOW - 23 * HOUR
    points = []
    for hour in range(24):
        start = first + hour * HOUR
        points.append(ChartPoint("gpt-image-1.5", start, 0.9 + (hour % 2) * 0.1, 800.0 + hour * 10))
        points.append(ChartPoint("local-sketch", start, None if hour < 20 else 1.0, None if hour < 20 else 40.0))
    return points


def test_chart_is_a_png_with_a_line_per_model() -> None:
    image = Image.open(io.BytesIO(render_chart(chart_points())))
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    colours = {colour for _count, colour in image.convert("RGB").getcolors(maxcolors=WIDTH * HEIGHT) or []}
    assert PALETTE[0] in colours and PALETTE[1] in colours  # both series and their legend are drawn


def test_chart_without_calls_still_renders() -> None:
    image = Image.open(io.BytesIO(render_chart([])))
    image.load()
    assert image.size == (WIDTH, HEIGHT)
    colours = {colour for _count, colour in image.convert("RGB").getcolors(maxcolors=WIDTH * HEIGHT) or []}
    assert PALETTE[0] not in colours
