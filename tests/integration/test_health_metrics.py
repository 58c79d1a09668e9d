"""Call rows on either engine: recording, 5-minute aggregation, windows and percentiles on known data, pruning,
restarts; and the queue's depth and oldest ready job per kind, which /metrics shows beside them."""

from __future__ import annotations

import math

import pytest

from bot.clock import FakeClock
from bot.domain import CallRecord, JobKind, JobStatus, KindDepth
from bot.errors import ErrorKind
from bot.health import metrics
from bot.health.book import HealthBook
from bot.health.histogram import GROWTH
from bot.health.metrics import BUCKET_S, HOUR_S, load_history
from bot.health.model import HealthState
from bot.health.recorder import CallRecorder
from bot.health.rules import Thresholds
from bot.jobs import JobQueue
from bot.routing.catalog import BUILTIN_ALIASES, BUILTIN_SPECS
from bot.routing.registry import Registry
from storage import health as health_rows
from storage import jobs as job_rows
from storage import testing as storage_testing
from storage.db import Database

HALF_BIN = math.sqrt(GROWTH) - 1
START = 1_800_000_000.0  # a multiple of 300 and of 3600: buckets and hours line up with it
MODEL = "gpt-image-1.5"


def book_for(clock: FakeClock) -> HealthBook:
    registry = Registry(BUILTIN_SPECS, BUILTIN_ALIASES, key_present=lambda env: env == "OPENAI_API_KEY", clock=clock)
    return HealthBook(registry, clock, Thresholds())


def record(at: float, latency_ms: float, error: ErrorKind | None = None, fallback: bool = False) -> CallRecord:
    return CallRecord(MODEL, at, latency_ms, error, fallback)


async def store(db: Database, records: list[CallRecord]) -> None:
    async with db.transaction() as conn:
        await health_rows.insert_calls(conn, records)


def known_calls(now: float) -> list[CallRecord]:
    """100 calls in the last 10 minutes (latency 10..1000 ms, 5 failures, 10 fallbacks), 100 more an hour
    earlier... and 50 a day earlier that no window covers."""
    recent = [
        record(now - 500 + i, 10.0 * (i + 1), ErrorKind.TRANSIENT if i % 20 == 0 else None, fallback=i % 10 == 1)
        for i in range(100)
    ]
    older = [record(now - 1800 - i, 5000.0, ErrorKind.RATE_LIMITED if i < 50 else None) for i in range(100)]
    ancient = [record(now - 2 * 86_400 - i, 1.0) for i in range(50)]
    return recent + older + ancient


def check_known_windows(windows: dict[str, metrics.WindowStats]) -> None:
    ten, hour, day = windows["10m"], windows["1h"], windows["24h"]
    assert (ten.calls, ten.successes, ten.fallbacks) == (100, 95, 10)
    assert ten.errors_by_kind == {"transient": 5}
    assert ten.success_rate == pytest.approx(0.95) and ten.fallback_rate == pytest.approx(0.10)
    for got, want in ((ten.p50_ms, 500.0), (ten.p95_ms, 950.0), (ten.p99_ms, 990.0)):
        assert got == pytest.approx(want, rel=HALF_BIN)
    assert ten.max_ms == 1000.0
    assert (hour.calls, hour.successes) == (200, 145)
    assert hour.errors_by_kind == {"rate_limited": 50, "transient": 5}
    assert hour.p50_ms == pytest.approx(1000.0, rel=HALF_BIN)  # the 100th of 200 is the slowest recent call
    assert hour.p95_ms == pytest.approx(5000.0, rel=HALF_BIN)
    assert day == hour  # the 50 ancient calls fall outside every window


async def test_windows_and_percentiles_on_known_data_before_and_after_aggregation(db: Database) -> None:
    now = START + 1000  # 10 minutes back is mid-bucket: the 10-minute window reaches the bucket's start
    await store(db, known_calls(now))
    before = (await load_history(db, now)).windows(MODEL)
    check_known_windows(before)
    assert await metrics.aggregate(db, batch=64) == 250  # several batches
    history = await load_history(db, now)
    assert history.tail == [] and history.buckets
    assert history.windows(MODEL) == before
    assert await metrics.aggregate(db) == 0  # nothing new: the watermark remembers


async def test_a_late_call_lands_in_its_own_bucket(db: Database) -> None:
    now = START + 3 * BUCKET_S
    await store(db, [record(now - 10, 100.0)])
    await metrics.aggregate(db)
    await store(db, [record(now - 10, 300.0, ErrorKind.TRANSIENT), record(START + 5, 200.0)])  # recorded late
    await metrics.aggregate(db)
    buckets = {b.bucket_start: b for b in await health_rows.buckets_since(db, 0)}
    assert sorted(buckets) == [START, START + 2 * BUCKET_S]
    merged = buckets[START + 2 * BUCKET_S]
    assert (merged.calls, merged.successes, merged.max_latency_ms, merged.errors) == (2, 1, 300.0, {"transient": 1})
    assert sum(merged.latency_hist.values()) == 2


async def test_chart_has_24_hourly_points_per_called_model(db: Database) -> None:
    now = START + 0.5 * HOUR_S
    await store(db, [record(now - 10, 100.0), record(now - 20, 300.0, ErrorKind.TRANSIENT)])
    await store(db, [record(now - 5 * HOUR_S, 1000.0)])
    await metrics.aggregate(db)
    await store(db, [record(now - 5, 100.0)])  # not aggregated yet: still on the chart
    history = await load_history(db, now)
    points = history.chart([MODEL])
    assert len(points) == 24 and points[-1].hour_start == START and points[0].hour_start == START - 23 * HOUR_S
    by_hour = {p.hour_start: p for p in points}
    assert by_hour[START].success_rate == pytest.approx(2 / 3)
    assert by_hour[START - 5 * HOUR_S].success_rate == 1.0
    assert by_hour[START - 5 * HOUR_S].p50_ms == pytest.approx(1000.0, rel=HALF_BIN)
    assert sum(p.success_rate is None for p in points) == 22


async def test_pruning_deletes_only_aggregated_calls_older_than_the_retention(db: Database) -> None:
    now = START + 40 * 86_400
    old = [record(now - 31 * 86_400 - i, 100.0) for i in range(30)]
    await store(db, [*old, record(now - 29 * 86_400, 100.0), record(now - 60, 100.0)])
    assert await metrics.prune(db, now, 30) == 0  # nothing is aggregated yet: nothing may go
    assert await storage_testing.count_calls(db) == 32
    await metrics.aggregate(db)
    assert await metrics.prune(db, now, 30, batch=7) == 30  # in batches
    assert await storage_testing.count_calls(db) == 2
    kept = await health_rows.buckets_since(db, 0)
    assert {b.bucket_start for b in kept} == {metrics.bucket_of(now - 29 * 86_400), metrics.bucket_of(now - 60)}


async def test_recorder_writes_in_the_background_and_keeps_records_the_database_refused(db: Database) -> None:
    clock = FakeClock(START)
    book = book_for(clock)
    recorder = CallRecorder(db, book, clock)
    recorder(record(START, 120.0))
    recorder(record(START + 1, 80.0, ErrorKind.TRANSIENT))
    assert book.get(MODEL).last_failure == START  # health changed at once, before any write
    await recorder.aclose()
    assert await storage_testing.count_calls(db) == 2
    [stored] = await health_rows.load_health(db)
    assert (stored.key, stored.error_count, stored.consecutive_failures) == (MODEL, 1, 1)

    await db.close()  # the database goes away: the records wait in memory
    recorder(record(START + 2, 90.0))
    assert not await recorder.flush() and recorder.pending == 1
    await db.open()
    assert await recorder.flush() and recorder.pending == 0
    assert await storage_testing.count_calls(db) == 3


async def test_health_survives_a_restart(db: Database) -> None:
    clock = FakeClock(START)
    book = book_for(clock)
    recorder = CallRecorder(db, book, clock)
    for index in range(3):
        recorder(record(START + index, 50.0, ErrorKind.TRANSIENT))
    await recorder.aclose()
    assert book.get(MODEL).state is HealthState.DOWN

    again = book_for(clock)
    again.load(await health_rows.load_health(db), await health_rows.calls_since(db, START - 600))
    entry = again.get(MODEL)
    assert (entry.state, entry.consecutive_failures, entry.unavailable_since) == (HealthState.DOWN, 3, START)
    assert entry.last_error == "gpt-image-1.5 had a temporary outage"


# --- the queue by kind --------------------------------------------------------------------------------------------


async def test_queue_depth_by_kind_counts_the_live_jobs_of_every_kind_and_the_oldest_ready_one(db: Database) -> None:
    clock = FakeClock(START)
    queue = JobQueue(db, clock)
    await queue.enqueue(JobKind.RENDER_VIDEO, {"n": 0})
    dead = await queue.claim("w1")
    assert dead is not None and await queue.finish(dead.id, "w1", status=JobStatus.DEAD)
    cancelled = await queue.enqueue(JobKind.RENDER_VIDEO, {"n": 1})
    await queue.cancel(job_id=cancelled.id)
    await queue.enqueue(JobKind.RENDER_IMAGE, {"n": 1})  # due at START
    assert await queue.claim("w1") is not None  # running now
    await queue.enqueue(JobKind.RENDER_IMAGE, {"n": 2}, delay_s=5)  # due at START + 5
    await queue.enqueue(JobKind.DELIVER, {"n": 1}, publisher="discord", delay_s=30)  # another publisher's
    await queue.enqueue(JobKind.DELIVER, {"n": 2}, publisher="offline", delay_s=3_600)  # not ready
    clock.advance(45)

    # The whole queue, as every process on the database sees it: a CLI's queue counts the bot's deliveries.
    for reader in (queue, JobQueue(db, clock, publishers={"offline"})):
        assert await reader.depth_by_kind() == {
            "write_story": KindDepth(0, 0, None),
            "render_image": KindDepth(queued=1, running=1, oldest_ready_age_s=40.0),
            "render_video": KindDepth(0, 0, None),  # dead and cancelled jobs are not in the queue
            "deliver": KindDepth(queued=2, running=0, oldest_ready_age_s=15.0),
        }
    clock.advance(3_600)
    assert (await queue.depth_by_kind())["deliver"] == KindDepth(2, 0, 3_615.0)


@pytest.mark.parametrize("engine", ["sqlite"])  # EXPLAIN QUERY PLAN is SQLite's
async def test_queue_depth_by_kind_reads_only_the_live_jobs_indexes(db: Database) -> None:
    plan = await db.fetchall("EXPLAIN QUERY PLAN " + job_rows.DEPTH_BY_KIND_SQL, (START,))
    scans = [row["detail"] for row in plan if row["detail"].startswith("SCAN jobs")]

    assert sorted(scans) == ["SCAN jobs USING INDEX jobs_leased", "SCAN jobs USING INDEX jobs_ready"], plan
