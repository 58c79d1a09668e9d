"""The status table's rows, as plain strings: one formatter for /status (Discord) and ``storybot status``.

Besides the models and the queue, both show the processes serving the database (from the processes table:
role, host, worker slots, shards, seconds since the last beat) and say plainly when none of them runs a worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import ProcessBeat
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
PROCESS_HEADERS = ("role", "host", "pid", "worker slots", "shards", "last beat")
NO_WORKER = "No worker is running, so stories will not start."


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
    return line


@dataclass(frozen=True)
class ProcessRow:
    role: str
    host: str
    pid: str
    worker_slots: str
    shards: str
    last_beat: str

    def cells(self) -> tuple[str, ...]:
        return (self.role, self.host, self.pid, self.worker_slots, self.shards, self.last_beat)


def process_row(process: ProcessBeat, now: float) -> ProcessRow:
    return ProcessRow(
        role=process.role,
        host=process.host,
        pid=str(process.pid),
        worker_slots=str(process.worker_slots) if process.worker_slots else NONE,
        shards=process.shards or NONE,
        last_beat=f"{duration(max(now - process.beat_at, 0.0))} ago",
    )


def no_worker(report: StatusReport, processes: Sequence[ProcessBeat] | None) -> bool:
    """Whether a new story would not start: this process's worker pool is down, or processes serve the database
    and none of them runs workers (a gateway alone). A database that did not answer is said instead."""
    if not report.database_ok:
        return False
    if report.workers_running is False:
        return True
    if not processes:  # unknown, or none beats: ``storybot status`` run where no bot runs
        return False
    return not any(process.worker_slots > 0 for process in processes)


def format_processes(report: StatusReport, processes: Sequence[ProcessBeat] | None) -> str:
    """``storybot status``'s processes: a table of the live ones, then NO_WORKER when none of them renders."""
    if processes is None:
        return "Processes: unknown (the database did not answer)"
    if not processes:
        return "Processes: none is running on this database"
    rows = [process_row(process, report.generated_at).cells() for process in processes]
    text = f"Processes: {len(processes)} running\n{format_table(PROCESS_HEADERS, rows)}"
    return f"{text}\n{NO_WORKER}" if no_worker(report, processes) else text


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
