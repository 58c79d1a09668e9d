"""SQL for model health: model_health, model_calls, model_call_buckets, health_meta and health_alerts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bot.domain import Bucket, CallRecord, HealthState, ModelHealth, ModelHold
from storage.db import Conn, Row, Target, dumps, fetch_all, fetch_one

_HEALTH_COLUMNS = (
    "model_key, state, available, last_success, last_failure, error_count, consecutive_failures, breaker_state, "
    "breaker_reopen_at, cooldown_until, last_check, probe_failed, retired, key_rejected, last_error, successor, "
    "unavailable_since"
)
_BOOLEANS = ("available", "probe_failed", "retired", "key_rejected")
_BUCKET_COLUMNS = "model_key, bucket_start, calls, successes, fallbacks, max_latency_ms, latency_hist, errors"
WATERMARK = "aggregated_call_id"


def histogram_to_json(histogram: Mapping[int, int]) -> dict[str, int]:
    """A latency histogram (bin -> count, bot/health/histogram.py) as stored: JSON keys are strings."""
    return {str(index): count for index, count in sorted(histogram.items()) if count}


def histogram_from_json(data: Mapping[str, int]) -> dict[int, int]:
    return {int(index): int(count) for index, count in data.items()}


@dataclass(frozen=True)
class CallRow:
    id: int
    model_key: str
    started_at: float
    latency_ms: float
    error_kind: str | None
    fallback: bool

    @property
    def ok(self) -> bool:
        return self.error_kind is None


def _health(row: Row) -> ModelHealth:
    data = dict(row)
    data["key"] = data.pop("model_key")
    data["state"] = HealthState(data["state"])
    for name in _BOOLEANS:
        data[name] = bool(data[name])
    return ModelHealth(**data)


def _call(row: Row) -> CallRow:
    return CallRow(row["id"], row["model_key"], row["started_at"], row["latency_ms"], row["error_kind"],
                   bool(row["fallback"]))  # fmt: skip


def _bucket(row: Row) -> Bucket:
    return Bucket(
        model_key=row["model_key"],
        bucket_start=row["bucket_start"],
        calls=row["calls"],
        successes=row["successes"],
        fallbacks=row["fallbacks"],
        max_latency_ms=row["max_latency_ms"],
        latency_hist=histogram_from_json(json.loads(row["latency_hist"])),
        errors=json.loads(row["errors"]),
    )


# model_health ----------------------------------------------------------------------------------------------------


async def load_health(target: Target) -> list[ModelHealth]:
    rows = await fetch_all(target, f"SELECT {_HEALTH_COLUMNS} FROM model_health ORDER BY model_key")
    return [_health(row) for row in rows]


async def save_health(conn: Conn, entries: Iterable[ModelHealth], now: float) -> None:
    names = [name.strip() for name in _HEALTH_COLUMNS.split(",")]
    updates = ", ".join(f"{name} = excluded.{name}" for name in [*names[1:], "updated_at"])
    sql = (
        f"INSERT INTO model_health ({_HEALTH_COLUMNS}, updated_at) VALUES ({', '.join('?' * (len(names) + 1))}) "
        f"ON CONFLICT (model_key) DO UPDATE SET {updates}"
    )
    values = []
    for entry in entries:
        row = [getattr(entry, "key" if name == "model_key" else name) for name in names]
        row[1] = entry.state.value
        values.append([int(v) if isinstance(v, bool) else v for v in row] + [now])
    await conn.executemany(sql, values)


# model_calls -----------------------------------------------------------------------------------------------------


async def insert_calls(conn: Conn, records: Sequence[CallRecord]) -> None:
    await conn.executemany(
        "INSERT INTO model_calls (model_key, started_at, latency_ms, outcome, error_kind, fallback) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (r.model_key, r.started_at, r.latency_ms, "ok" if r.error_kind is None else "error",
             None if r.error_kind is None else r.error_kind.value, int(r.fallback))
            for r in records
        ],
    )  # fmt: skip


async def calls_after(target: Target, after_id: int, limit: int) -> list[CallRow]:
    rows = await fetch_all(
        target,
        "SELECT id, model_key, started_at, latency_ms, error_kind, fallback FROM model_calls "
        "WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [_call(row) for row in rows]


async def calls_after_since(target: Target, after_id: int, since: float) -> list[CallRow]:
    """Calls after ``after_id`` (the ones not folded into the buckets yet) that started at or after ``since``."""
    rows = await fetch_all(
        target,
        "SELECT id, model_key, started_at, latency_ms, error_kind, fallback FROM model_calls "
        "WHERE id > ? AND started_at >= ? ORDER BY id",
        (after_id, since),
    )
    return [_call(row) for row in rows]


async def calls_since(target: Target, since: float) -> list[CallRow]:
    rows = await fetch_all(
        target,
        "SELECT id, model_key, started_at, latency_ms, error_kind, fallback FROM model_calls "
        "WHERE started_at >= ? ORDER BY started_at",
        (since,),
    )
    return [_call(row) for row in rows]


# buckets ---------------------------------------------------------------------------------------------------------


async def watermark(target: Target) -> int:
    row = await fetch_one(target, "SELECT value FROM health_meta WHERE name = ?", (WATERMARK,))
    return int(row["value"]) if row else 0


async def buckets_between(target: Target, start: float, end: float) -> list[Bucket]:
    rows = await fetch_all(
        target,
        f"SELECT {_BUCKET_COLUMNS} FROM model_call_buckets WHERE bucket_start BETWEEN ? AND ?",
        (start, end),
    )
    return [_bucket(row) for row in rows]


async def buckets_since(target: Target, since: float) -> list[Bucket]:
    rows = await fetch_all(
        target, f"SELECT {_BUCKET_COLUMNS} FROM model_call_buckets WHERE bucket_start >= ?", (since,)
    )
    return [_bucket(row) for row in rows]


async def save_buckets(conn: Conn, buckets: Iterable[Bucket], through_id: int) -> None:
    """Write whole buckets (already merged with what was stored) and move the watermark to ``through_id``."""
    await conn.executemany(
        f"INSERT INTO model_call_buckets ({_BUCKET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (model_key, bucket_start) DO UPDATE SET calls = excluded.calls, successes = excluded.successes, "
        "fallbacks = excluded.fallbacks, max_latency_ms = excluded.max_latency_ms, "
        "latency_hist = excluded.latency_hist, errors = excluded.errors",
        [
            (b.model_key, b.bucket_start, b.calls, b.successes, b.fallbacks, b.max_latency_ms,
             dumps(histogram_to_json(b.latency_hist)), dumps(b.errors))
            for b in buckets
        ],
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO health_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (WATERMARK, through_id),
    )


async def prune(conn: Conn, before: float, *, limit: int) -> int:
    """Delete up to ``limit`` raw calls older than ``before`` that are already in the buckets, and old buckets."""
    mark = await watermark(conn)
    cursor = await conn.execute(
        "DELETE FROM model_calls WHERE id IN "
        "(SELECT id FROM model_calls WHERE started_at < ? AND id <= ? ORDER BY started_at LIMIT ?)",
        (before, mark, limit),
    )
    deleted = cursor.rowcount
    await conn.execute("DELETE FROM model_call_buckets WHERE bucket_start < ?", (before,))
    return deleted


# health_alerts ---------------------------------------------------------------------------------------------------


async def open_alerts(target: Target) -> dict[str, tuple[str, float]]:
    """alert key -> (message, since) for every alert that fired and has not recovered."""
    rows = await fetch_all(target, "SELECT alert_key, message, since FROM health_alerts")
    return {row["alert_key"]: (row["message"], row["since"]) for row in rows}


async def open_alert(conn: Conn, key: str, message: str, since: float) -> None:
    await conn.execute(
        "INSERT INTO health_alerts (alert_key, message, since) VALUES (?, ?, ?) "
        "ON CONFLICT (alert_key) DO UPDATE SET message = excluded.message, since = excluded.since",
        (key, message, since),
    )


async def close_alert(conn: Conn, key: str) -> None:
    await conn.execute("DELETE FROM health_alerts WHERE alert_key = ?", (key,))


# model_holds ----------------------------------------------------------------------------------------------------


HOLDS_KEPT_S = 86_400.0  # ended holds are kept a day, for whoever looks


async def save_holds(conn: Conn, holds: Iterable[ModelHold], now: float) -> None:
    """Publish holds; a hold already stored for the model and kind is only ever moved later. Holds that ended
    a day before ``now`` are dropped."""
    await conn.execute("DELETE FROM model_holds WHERE until < ?", (now - HOLDS_KEPT_S,))
    await conn.executemany(
        "INSERT INTO model_holds (model_key, kind, until, reason) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (model_key, kind) DO UPDATE SET until = excluded.until, reason = excluded.reason "
        "WHERE excluded.until > model_holds.until",
        [(hold.model_key, hold.kind, hold.until, hold.reason) for hold in holds],
    )


async def live_holds(target: Target, now: float) -> list[ModelHold]:
    """Every hold that has not ended by ``now``."""
    rows = await fetch_all(target, "SELECT model_key, kind, until, reason FROM model_holds WHERE until > ?", (now,))
    return [ModelHold(row["model_key"], row["kind"], float(row["until"]), row["reason"]) for row in rows]
