"""The status table's rows, as plain strings: one formatter for /status (Discord) and ``storybot status``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.health.model import HealthState, ModelStatus, StatusReport

TABLE_WINDOW = "1h"  # success %, latency and fallback % are shown over the last hour
STATE_MARKS = {
    HealthState.UP: "🟢",
    HealthState.DEGRADED: "🟡",
    HealthState.DOWN: "🔴",
    HealthState.RETIRED: "⚫",
    HealthState.UNCONFIGURED: "⚪",
}
TERMINAL_HEADERS = ("model", "state", "success", "p50/p95", "fallback", "cooldown", "last error")
NONE = "–"
WINDOW_NOTE = "success, latency and fallback over the last hour"


@dataclass(frozen=True)
class StatusRow:
    mark: str
    key: str
    state: str
    success: str
    latency: str
    fallback: str
    cooldown: str
    last_error: str

    def cells(self) -> tuple[str, ...]:
        return (self.mark, self.key, self.state, self.success, self.latency, self.fallback, self.cooldown,
                self.last_error)  # fmt: skip


def percent(rate: float | None) -> str:
    if rate is None:
        return NONE
    shown = f"{rate * 100:.1f}".removesuffix(".0")
    return f"{shown} %"


def millis(value: float | None) -> str:
    if value is None:
        return NONE
    if value < 1:
        return "<1 ms"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def state_text(model: ModelStatus) -> str:
    if model.state is HealthState.RETIRED and model.successor:
        return f"retired, use {model.successor}"
    return model.state.value


def status_row(model: ModelStatus, window: str = TABLE_WINDOW) -> StatusRow:
    stats = model.windows.get(window)
    latency = NONE
    if stats is not None and stats.calls:
        latency = f"{millis(stats.p50_ms)} / {millis(stats.p95_ms)}"
    return StatusRow(
        mark=STATE_MARKS[model.state],
        key=model.key,
        state=state_text(model),
        success=percent(stats.success_rate if stats else None),
        latency=latency,
        fallback=percent(stats.fallback_rate if stats else None),
        cooldown=duration(model.cooldown_left_s) if model.cooldown_left_s > 0 else NONE,
        last_error=" ".join((model.last_error or NONE).split()),
    )


def status_rows(report: StatusReport, window: str = TABLE_WINDOW) -> list[StatusRow]:
    return [status_row(model, window) for model in report.models]


def queue_line(report: StatusReport) -> str:
    if not report.database_ok:
        return "Queue: unknown (the database did not answer)"
    line = f"Queue: {report.queue_depth} waiting"
    if report.oldest_queued_age_s is not None:
        line += f", the oldest for {duration(report.oldest_queued_age_s)}"
    if report.workers_running is False:
        line += "; no worker is running, so nothing is being made"
    return line


def format_status(report: StatusReport, *, error_chars: int = 60) -> str:
    """The terminal table (``storybot status``), with the queue line under it. No marks: emoji are two
    columns wide in a terminal and would shift the columns; the state says the same."""
    rows = []
    for row in status_rows(report):
        error = row.last_error if len(row.last_error) <= error_chars else row.last_error[: error_chars - 1] + "…"
        rows.append((*row.cells()[1:-1], error))
    return f"{format_table(TERMINAL_HEADERS, rows)}\n\n{queue_line(report)}\n({WINDOW_NOTE})"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
             for row in (headers, *rows)]  # fmt: skip
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
