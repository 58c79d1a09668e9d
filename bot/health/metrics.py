"""Per-model call metrics: 5-minute aggregation, windows (10 min, 1 h, 24 h), hourly chart points, pruning.

Raw ``model_calls`` rows are folded into ``model_call_buckets`` in id order (a watermark remembers the
last id folded), so a call recorded late still lands in its own bucket. A window reads the buckets
that overlap it plus the few calls not folded yet; windows are therefore aligned to buckets (the
10-minute window covers the last 10 to 15 minutes). Percentiles come from the buckets' histograms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from bot.domain import Bucket
from bot.health import histogram
from bot.health.model import WINDOWS_S, ChartPoint, WindowStats
from storage import health as health_rows
from storage.db import Database
from storage.health import CallRow

BUCKET_S = 300.0
HOUR_S = 3600.0
CHART_HOURS = 24
AGGREGATE_BATCH = 5_000  # calls folded per transaction, so a generation's writes never wait long
PRUNE_BATCH = 5_000


def bucket_of(timestamp: float, size: float = BUCKET_S) -> float:
    return math.floor(timestamp / size) * size


@dataclass
class Tally:
    """Calls being added up into a bucket, a window or an hour."""

    calls: int = 0
    successes: int = 0
    fallbacks: int = 0
    max_ms: float = 0.0
    hist: histogram.Histogram = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def add_call(self, call: CallRow) -> None:
        self.calls += 1
        self.successes += call.ok
        self.fallbacks += call.fallback
        self.max_ms = max(self.max_ms, call.latency_ms)
        histogram.add(self.hist, call.latency_ms)
        if call.error_kind:
            self.errors[call.error_kind] = self.errors.get(call.error_kind, 0) + 1

    def add_bucket(self, bucket: Bucket) -> None:
        self.calls += bucket.calls
        self.successes += bucket.successes
        self.fallbacks += bucket.fallbacks
        self.max_ms = max(self.max_ms, bucket.max_latency_ms)
        histogram.merge(self.hist, bucket.latency_hist)
        for kind, count in bucket.errors.items():
            self.errors[kind] = self.errors.get(kind, 0) + count

    def stats(self) -> WindowStats:
        return WindowStats(
            calls=self.calls,
            successes=self.successes,
            fallbacks=self.fallbacks,
            p50_ms=histogram.percentile(self.hist, 0.50),
            p95_ms=histogram.percentile(self.hist, 0.95),
            p99_ms=histogram.percentile(self.hist, 0.99),
            errors_by_kind=dict(sorted(self.errors.items())),
            max_ms=self.max_ms if self.calls else None,
        )

    def as_bucket(self, model_key: str, bucket_start: float) -> Bucket:
        return Bucket(model_key, bucket_start, self.calls, self.successes, self.fallbacks, self.max_ms,
                      dict(self.hist), dict(self.errors))  # fmt: skip


# aggregation and pruning -----------------------------------------------------------------------------------------


async def aggregate(db: Database, *, batch: int = AGGREGATE_BATCH) -> int:
    """Fold every call not yet in the buckets into them; returns how many calls were folded."""
    folded = 0
    while True:
        async with db.transaction() as conn:
            calls = await health_rows.calls_after(conn, await health_rows.watermark(conn), batch)
            if not calls:
                return folded
            fresh: dict[tuple[str, float], Tally] = {}
            for call in calls:
                fresh.setdefault((call.model_key, bucket_of(call.started_at)), Tally()).add_call(call)
            starts = [start for _, start in fresh]
            stored = await health_rows.buckets_between(conn, min(starts), max(starts))
            merged = {(b.model_key, b.bucket_start): b for b in stored if (b.model_key, b.bucket_start) in fresh}
            out = []
            for (key, start), tally in fresh.items():
                if (key, start) in merged:
                    tally.add_bucket(merged[(key, start)])
                out.append(tally.as_bucket(key, start))
            await health_rows.save_buckets(conn, out, calls[-1].id)
        folded += len(calls)
        if len(calls) < batch:
            return folded


async def prune(db: Database, now: float, retention_days: int, *, batch: int = PRUNE_BATCH) -> int:
    """Delete raw calls (already aggregated) and buckets older than the retention; returns calls deleted."""
    before = now - retention_days * 86_400.0
    deleted = 0
    while True:
        async with db.transaction() as conn:
            count = await health_rows.prune(conn, before, limit=batch)
        deleted += count
        if count < batch:
            return deleted


# reading ---------------------------------------------------------------------------------------------------------


@dataclass
class CallHistory:
    """The last 24 hours of calls: stored buckets plus the calls not aggregated yet."""

    now: float
    buckets: list[Bucket]
    tail: list[CallRow]

    def models(self) -> set[str]:
        return {b.model_key for b in self.buckets if b.calls} | {c.model_key for c in self.tail}

    @cached_property
    def _by_model(self) -> dict[str, tuple[list[Bucket], list[CallRow]]]:
        grouped: dict[str, tuple[list[Bucket], list[CallRow]]] = {}
        for bucket in self.buckets:
            grouped.setdefault(bucket.model_key, ([], []))[0].append(bucket)
        for call in self.tail:
            grouped.setdefault(call.model_key, ([], []))[1].append(call)
        return grouped

    def windows(self, model_key: str) -> dict[str, WindowStats]:
        buckets, tail = self._by_model.get(model_key, ([], []))
        out = {}
        for name, seconds in WINDOWS_S.items():
            since = self.now - seconds
            tally = Tally()
            for bucket in buckets:
                if bucket.bucket_start >= bucket_of(since):
                    tally.add_bucket(bucket)
            for call in tail:
                if call.started_at >= since:
                    tally.add_call(call)
            out[name] = tally.stats()
        return out

    def chart(self, model_keys: Iterable[str]) -> list[ChartPoint]:
        """One point per model per hour for the last 24 hours (success rate and p50 latency)."""
        first = bucket_of(self.now, HOUR_S) - (CHART_HOURS - 1) * HOUR_S
        hours: dict[tuple[str, float], Tally] = {}
        for bucket in self.buckets:
            hours.setdefault((bucket.model_key, bucket_of(bucket.bucket_start, HOUR_S)), Tally()).add_bucket(bucket)
        for call in self.tail:
            hours.setdefault((call.model_key, bucket_of(call.started_at, HOUR_S)), Tally()).add_call(call)
        points = []
        for key in model_keys:
            for index in range(CHART_HOURS):
                start = first + index * HOUR_S
                stats = hours.get((key, start), Tally()).stats()
                points.append(ChartPoint(key, start, stats.success_rate, stats.p50_ms))
        return points


async def load_history(db: Database, now: float) -> CallHistory:
    """Buckets and the calls after the watermark, read as of one watermark (re-read if aggregation moved it)."""
    since = now - WINDOWS_S["24h"]
    while True:
        mark = await health_rows.watermark(db)
        tail = await health_rows.calls_after_since(db, mark, since)
        buckets = await health_rows.buckets_since(db, bucket_of(since))
        if await health_rows.watermark(db) == mark:
            return CallHistory(now, buckets, tail)
