"""Builds the StatusReport every view reads: /status, ``storybot status``, /health, /metrics, the alert rules."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime

from bot.domain import KindDepth, Modality, ModelHealth, RoutingConfig
from bot.errors import StorageError
from bot.health.book import HealthBook
from bot.health.metrics import CallHistory, load_history
from bot.health.model import ModelStatus, StatusReport, WindowStats
from bot.jobs import JobQueue
from bot.routing.registry import ModelSpec, Registry
from storage.db import Database

log = logging.getLogger(__name__)

MODALITY_ORDER = (Modality.TEXT, Modality.IMAGE, Modality.VIDEO)


def report_models(registry: Registry, routing: Mapping[Modality, RoutingConfig], history: CallHistory) -> list[str]:
    """Every model that is not retired in the catalogue, plus retired ones still routed to or called lately."""
    today = datetime.fromtimestamp(history.now, tz=UTC).date()
    routed = {registry.canonical(key) for config in routing.values() for key in config.chain if registry.get(key)}
    called = history.models()
    chosen = [
        spec for spec in registry.specs() if not spec.is_retired(today) or spec.key in routed or spec.key in called
    ]
    chosen.sort(key=lambda spec: MODALITY_ORDER.index(spec.modality))
    return [spec.key for spec in chosen]


def model_status(spec: ModelSpec, entry: ModelHealth, windows: dict[str, WindowStats], now: float) -> ModelStatus:
    cooldown = max((entry.cooldown_until or 0.0) - now, (entry.breaker_reopen_at or 0.0) - now, 0.0)
    return ModelStatus(
        key=spec.key,
        provider=spec.provider,
        modality=spec.modality.value,
        state=entry.state,
        available=entry.available,
        windows=windows,
        last_error=entry.last_error,
        last_success_at=entry.last_success,
        last_failure_at=entry.last_failure,
        cooldown_left_s=cooldown,
        breaker=entry.breaker_state,
        successor=entry.successor,
        unavailable_since=entry.unavailable_since,
    )


async def build_report(
    *,
    db: Database,
    registry: Registry,
    book: HealthBook,
    queue: JobQueue,
    routing: Mapping[Modality, RoutingConfig],
    now: float,
    discord_connected: bool | None = None,
    workers_running: bool | None = None,
) -> StatusReport:
    """One ModelStatus per model, the queue, and the chart; a broken database, or a database file deleted or
    replaced under us, gives database_ok=False."""
    database_ok = db.file_problem() is None
    by_kind: dict[str, KindDepth] = {}
    oldest = None
    try:
        history = await load_history(db, now)
        by_kind = await queue.depth_by_kind()
        oldest = await queue.oldest_queued_age()
    except (StorageError, sqlite3.Error) as exc:
        log.warning("the status report could not read the database: %s", exc)
        database_ok, history = False, CallHistory(now, [], [])
    keys = report_models(registry, routing, history)
    models = [model_status(registry.resolve(key), book.get(key), history.windows(key), now) for key in keys]
    called = history.models()
    return StatusReport(
        generated_at=now,
        models=models,
        queue_depth=sum(depth.queued for depth in by_kind.values()),
        oldest_queued_age_s=oldest,
        database_ok=database_ok,
        discord_connected=discord_connected,
        workers_running=workers_running,
        queue_by_kind=by_kind,
        chart=history.chart([key for key in keys if key in called]),
    )
