"""The shared status rows, the terminal table, the /status embed within Discord's limits (its live processes too),
and the chart PNG."""

from __future__ import annotations

import io

from PIL import Image

from bot.domain import ProcessBeat
from bot.health.chart import HEIGHT, PALETTE, WIDTH, render_chart
from bot.health.model import ChartPoint, HealthState, ModelStatus, StatusReport, WindowStats
from bot.health.table import NO_WORKER, format_processes, format_status, no_worker, process_row, status_row
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


def process(role: str, pid: int, *, slots: int = 0, shards: str | None = None, beat_ago: float = 2.0) -> ProcessBeat:
    return ProcessBeat(f"box:{pid}:abcdef", role, "box", pid, shards, slots, NOW - 3600, NOW - beat_ago)


GATEWAY = process("gateway", 10, shards="0-1 of 2", beat_ago=1.2)
WORKERS = [process("worker", 11, slots=4, beat_ago=3.0), process("worker", 12, slots=2, beat_ago=125.0)]


def test_a_process_row_shows_role_host_slots_shards_and_the_last_beat() -> None:
    assert process_row(GATEWAY, NOW).cells() == ("gateway", "box", "10", "–", "0-1 of 2", "1 s ago")
    assert process_row(WORKERS[1], NOW).cells() == ("worker", "box", "12", "2", "–", "2 min ago")


def test_no_worker_is_said_only_when_serving_processes_run_none_or_the_pool_is_down() -> None:
    healthy = report([model("gpt-image-1.5")])
    assert no_worker(healthy, [GATEWAY])
    assert not no_worker(healthy, [GATEWAY, *WORKERS])
    assert not no_worker(healthy, [])  # nothing beats: `storybot status` where no bot runs
    assert not no_worker(healthy, None)  # unknown
    assert no_worker(report([model("gpt-image-1.5")], workers_running=False), [GATEWAY, *WORKERS])
    assert not no_worker(report([], database_ok=False, workers_running=False), [GATEWAY])  # that is said instead


def test_terminal_processes_table_and_the_no_worker_line() -> None:
    text = format_processes(report([]), [GATEWAY, *WORKERS])
    headline, header, _rule, *rows = text.splitlines()
    assert headline == "Processes: 3 running"
    assert header.split() == ["role", "host", "pid", "worker", "slots", "shards", "last", "beat"]
    assert [row.split()[:4] for row in rows] == [["gateway", "box", "10", "–"], ["worker", "box", "11", "4"],
                                                ["worker", "box", "12", "2"]]  # fmt: skip
    assert format_processes(report([]), [GATEWAY]).splitlines()[-1] == NO_WORKER
    assert format_processes(report([]), []) == "Processes: none is running on this database"
    assert format_processes(report([]), None) == "Processes: unknown (the database did not answer)"


def test_embed_lists_the_processes_last_and_says_plainly_when_no_worker_runs() -> None:
    serving = [model("gpt-image-1.5"), model("gpt-5-mini", modality="text")]
    embed = status_embed(report(serving), [GATEWAY, *WORKERS])
    assert embed.description == "Queue: 3 waiting, the oldest for 2 min"
    assert embed.fields[-1].name == "Processes: 3 running"
    assert (embed.fields[-1].value or "").splitlines() == [
        "**gateway** · box pid 10 · shards 0-1 of 2 · beat 1 s ago",
        "**worker** · box pid 11 · 4 worker slots · beat 3 s ago",
        "**worker** · box pid 12 · 2 worker slots · beat 2 min ago",
    ]

    alone = status_embed(report(serving, workers_running=False), [GATEWAY])
    assert alone.description == f"Queue: 3 waiting, the oldest for 2 min\n⚠️ {NO_WORKER}"
    assert "see the models" not in (alone.description or "")  # the models are fine: the workers are missing


def test_embed_with_many_processes_and_models_stays_within_discord_limits() -> None:
    processes = [process("worker", pid, slots=4) for pid in range(100, 160)]
    models = [model(f"model-{index:02d}-" + "x" * 60, HealthState.DOWN, last_error="e" * 3000) for index in range(40)]
    embed = status_embed(report(models), processes)
    assert len(embed.fields) <= 25 and len(embed) <= 6000
    assert all(len(field.value or "") <= 1024 for field in embed.fields)
    assert embed.fields[-1].name == "Processes: 60 running"
    *shown, more = (embed.fields[-1].value or "").splitlines()
    assert more == f"…and {60 - len(shown)} more" and all(line.startswith("**worker**") for line in shown)
    assert (embed.fields[-2].name or "").startswith("…and ")  # the models that did not fit are counted before it


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
