"""The durable job queue against a real SQLite file: claims, leases, retries, limits, faults."""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from typing import Any

import pytest

from bot.clock import FakeClock, SystemClock
from bot.domain import GenerationJob, JobKind, JobStatus
from bot.errors import StorageError
from bot.jobs import JobContext, JobOutcome, JobQueue, PermanentFailure, Reschedule, Worker
from storage import jobs as job_rows
from storage.db import Conn, Database
from storage.job_recovery import MAX_INTERRUPTIONS
from tests.support.database import hold_write_lock, insert_story, twin

RENDER = JobKind.RENDER_IMAGE
PLAIN = "something went wrong on our side"  # what a job keeps of an error that is not ours (bot.errors.plain_words)


@pytest.fixture
def queue(db: Database, clock: FakeClock) -> JobQueue:
    return JobQueue(db, clock, lease_s=60.0, max_attempts=3)


def pool(queue: JobQueue, handlers: dict[JobKind, Any], **options: Any) -> Worker:
    options.setdefault("concurrency", 4)
    options.setdefault("provider_limit", 4)
    options.setdefault("user_limit", 4)
    options.setdefault("idle_poll_s", 0.5)
    return Worker(queue, handlers, clock=queue.clock, rng=random.Random(7), **options)


async def story_exists(db: Database, story_id: str) -> bool:
    return await db.fetchone("SELECT 1 FROM stories WHERE id = ?", (story_id,)) is not None


async def succeed(job: GenerationJob, ctx: JobContext) -> JobOutcome:
    return JobOutcome(result={"ran": job.id})


# --- enqueue and claim -------------------------------------------------------------------------


async def test_enqueue_is_idempotent_on_its_key(queue: JobQueue) -> None:
    first = await queue.enqueue(RENDER, {"scene": 1}, idempotency_key="scene-1:image")
    again = await queue.enqueue(RENDER, {"scene": "other"}, idempotency_key="scene-1:image")
    other = await queue.enqueue(RENDER, {"scene": 2}, idempotency_key="scene-2:image")

    assert again.id == first.id and again.payload == {"scene": 1}
    assert other.id != first.id
    assert (await queue.counts())["queued"] == 2


async def test_claim_takes_ready_jobs_in_run_after_order(queue: JobQueue, clock: FakeClock) -> None:
    late = await queue.enqueue(RENDER, {}, delay_s=10)
    ready = await queue.enqueue(RENDER, {})
    middle = await queue.enqueue(RENDER, {}, delay_s=5)

    claimed = await queue.claim("w:1:a")
    assert claimed is not None and claimed.id == ready.id
    assert claimed.status is JobStatus.RUNNING and claimed.attempts == 1
    assert claimed.lease_owner == "w:1:a" and claimed.lease_expires_at == clock.now() + 60
    assert await queue.claim("w:1:a") is None  # the others are not due yet

    clock.advance(5)
    assert (await queue.claim("w:1:a")).id == middle.id  # type: ignore[union-attr]
    clock.advance(5)
    assert (await queue.claim("w:1:a")).id == late.id  # type: ignore[union-attr]


async def test_claim_skips_excluded_providers_and_users_but_not_null_ones(queue: JobQueue) -> None:
    busy_provider = await queue.enqueue(RENDER, {}, provider="openai")
    busy_user = await queue.enqueue(RENDER, {}, user_id=42)
    anonymous = await queue.enqueue(RENDER, {})

    claimed = await queue.claim("w:1:a", exclude_providers={"openai"}, exclude_users={42})
    assert claimed is not None and claimed.id == anonymous.id
    assert await queue.claim("w:1:a", exclude_providers={"openai"}, exclude_users={42}) is None
    assert {busy_provider.id, busy_user.id} == {(await queue.claim("w:1:a")).id, (await queue.claim("w:1:a")).id}  # type: ignore[union-attr]


@pytest.mark.parametrize("engine", ["sqlite"])  # EXPLAIN QUERY PLAN is SQLite's
@pytest.mark.parametrize(
    ("providers", "users", "publishers"), [(0, 0, None), (2, 0, None), (0, 3, 1), (2, 3, 2), (0, 0, 0)]
)
async def test_claim_query_reads_the_ready_index_without_sorting(
    db: Database, providers: int, users: int, publishers: int | None
) -> None:
    params = ["w:1:a", 1.0, 60.0, 1.0, 1.0, *[f"p{i}" for i in range(providers)], *range(users)]
    params += [f"pub{i}" for i in range(publishers or 0)]
    plan = await db.fetchall("EXPLAIN QUERY PLAN " + job_rows.claim_sql(providers, users, publishers), params)
    details = [row["detail"] for row in plan]

    assert any("jobs_ready" in detail for detail in details), details
    assert not any("TEMP B-TREE" in detail for detail in details), details


async def test_settles_and_their_successors_commit_together_within_the_limits(
    queue: JobQueue, clock: FakeClock
) -> None:
    jobs = []
    for provider, user in [("openai", 1), ("xai", 2), ("openai", 3), ("openai", 4), ("google", 2)]:
        jobs.append(await queue.enqueue(RENDER, {}, provider=provider, user_id=user))
        clock.advance(1)  # due in this order
    first, second = jobs[:2]
    a, b = await queue.claim("w:1:a"), await queue.claim("w:1:a")
    assert a is not None and b is not None and {a.id, b.id} == {first.id, second.id}

    # Both settle; their successors count what still runs (one xai job elsewhere) and each other.
    settled, successors = await queue.settle_then_claim(
        [queue.finishing(a.id, "w:1:a", status=JobStatus.SUCCEEDED), queue.rescheduling(b.id, "w:1:a", delay_s=60)],
        queue.successors("w:1:a", count=2, by_provider={"xai": 1}, provider_limit=1, by_user={}, user_limit=1),
    )

    assert settled == [True, True]
    assert [(job.provider, job.user_id) for job in successors] == [("openai", 3), ("google", 2)]  # type: ignore[union-attr]
    assert (await queue.get(a.id)).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    assert (await queue.get(b.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
    assert (await queue.counts())["running"] == 2


async def test_a_settle_whose_lease_is_lost_changes_nothing_and_claims_no_successor(
    queue: JobQueue, clock: FakeClock
) -> None:
    job = await queue.enqueue(RENDER, {})
    clock.advance(1)
    await queue.enqueue(RENDER, {})
    claimed = await queue.claim("w:1:a")
    assert claimed is not None and claimed.id == job.id

    settled, successors = await queue.settle_then_claim(
        [queue.finishing(job.id, "w:2:other", status=JobStatus.SUCCEEDED)],
        queue.successors("w:2:other", count=1, by_provider={}, provider_limit=1, by_user={}, user_limit=1),
    )

    assert (settled, successors) == ([False], [])
    assert (await queue.get(job.id)).lease_owner == "w:1:a"  # type: ignore[union-attr]
    assert (await queue.counts())["queued"] == 1


async def test_queue_reads(queue: JobQueue, clock: FakeClock) -> None:
    first = await queue.enqueue(RENDER, {})
    second = await queue.enqueue(RENDER, {})
    delayed = await queue.enqueue(RENDER, {}, delay_s=30)
    clock.advance(4)

    assert await queue.next_run_after() == first.run_after
    assert await queue.oldest_queued_age() == 4
    positions = [await queue.queue_position(job.id) for job in (first, second, delayed)]
    assert positions == [1, 2, 3] if first.id < second.id else [2, 1, 3]
    await queue.claim("w:1:a")
    assert await queue.queue_position(delayed.id) == 2
    assert (await queue.counts())["running"] == 1


# --- the worker: outcomes ----------------------------------------------------------------------


async def test_worker_runs_jobs_and_stores_results(queue: JobQueue) -> None:
    jobs = [await queue.enqueue(RENDER, {"n": n}) for n in range(3)]

    stats = await pool(queue, {RENDER: succeed}).run_until_empty()

    assert stats.succeeded == 3
    for job in jobs:
        stored = await queue.get(job.id)
        assert stored is not None and stored.status is JobStatus.SUCCEEDED
        assert stored.result == {"ran": job.id} and stored.finished_at is not None


async def test_failing_job_backs_off_then_dies_and_on_give_up_runs_in_that_transaction(
    queue: JobQueue, db: Database, clock: FakeClock
) -> None:
    job = await queue.enqueue(RENDER, {})
    started = clock.now()
    gave_up: list[tuple[str, str, JobStatus | None]] = []

    async def explode(job: GenerationJob, ctx: JobContext) -> None:
        raise RuntimeError("provider on fire")

    async def on_give_up(dead: GenerationJob, error: str, conn: Conn) -> None:
        row = await job_rows.get(conn, dead.id)
        gave_up.append((dead.id, error, row.status if row else None))
        assert conn.in_transaction
        await insert_story(conn, "marked-failed")

    workers = pool(queue, {RENDER: explode}, on_give_up=on_give_up, backoff_base_s=10, backoff_cap_s=15)
    stats = await workers.run_until_empty()

    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.DEAD and stored.attempts == 3
    assert stored.last_error == PLAIN  # an unexpected error is kept in plain words; its details are logged
    assert (stats.retried, stats.dead) == (2, 1)
    assert gave_up == [(job.id, PLAIN, JobStatus.DEAD)]
    assert await story_exists(db, "marked-failed")
    # Two backoffs: 5-10 s after attempt 1, then 7.5-15 s (capped) after attempt 2.
    assert 12.5 <= clock.now() - started <= 25


async def test_backoff_grows_exponentially_with_jitter_and_a_cap(queue: JobQueue) -> None:
    workers = pool(queue, {}, backoff_base_s=2, backoff_cap_s=20)
    for attempts, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 20), (9, 20)]:
        delays = [workers.backoff_s(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered


async def test_on_give_up_that_raises_leaves_the_job_dead_and_its_writes_undone(queue: JobQueue, db: Database) -> None:
    job = await queue.enqueue(RENDER, {}, max_attempts=1)

    async def explode(job: GenerationJob, ctx: JobContext) -> None:
        raise RuntimeError("boom")

    async def broken_hook(dead: GenerationJob, error: str, conn: Conn) -> None:
        await insert_story(conn, "half-written")
        raise ValueError("hook bug")

    stats = await pool(queue, {RENDER: explode}, on_give_up=broken_hook).run_until_empty()

    assert stats.dead == 1
    assert (await queue.get(job.id)).status is JobStatus.DEAD  # type: ignore[union-attr]
    assert not await story_exists(db, "half-written")


async def test_reschedule_gives_the_attempt_back(queue: JobQueue, clock: FakeClock) -> None:
    job = await queue.enqueue(RENDER, {}, max_attempts=1)
    started = clock.now()
    calls: list[int] = []

    async def poll(job: GenerationJob, ctx: JobContext) -> JobOutcome:
        calls.append(job.attempts)
        if len(calls) < 4:
            raise Reschedule(30, "video still rendering")
        return JobOutcome(result={"polls": len(calls)})

    stats = await pool(queue, {RENDER: poll}).run_until_empty()

    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUCCEEDED and stored.attempts == 1
    assert calls == [1, 1, 1, 1]
    assert (stats.rescheduled, stats.succeeded) == (3, 1)
    assert clock.now() - started >= 90
    assert stored.last_error == "video still rendering"


async def test_reschedule_that_spends_attempts_ends_dead(queue: JobQueue) -> None:
    job = await queue.enqueue(RENDER, {}, max_attempts=2)

    async def defer(job: GenerationJob, ctx: JobContext) -> None:
        raise Reschedule(5, "still busy", spend_attempt=True)

    stats = await pool(queue, {RENDER: defer}).run_until_empty()

    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.DEAD and stored.attempts == 2
    assert (stats.rescheduled, stats.dead) == (1, 1)


async def test_permanent_failure_fails_at_once(queue: JobQueue) -> None:
    job = await queue.enqueue(RENDER, {})
    reasons: list[str] = []

    async def refuse(job: GenerationJob, ctx: JobContext) -> None:
        raise PermanentFailure("the prompt was blocked")

    async def on_give_up(failed: GenerationJob, error: str, conn: Conn) -> None:
        reasons.append(f"{failed.status.value}: {error}")

    stats = await pool(queue, {RENDER: refuse}, on_give_up=on_give_up).run_until_empty()

    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.FAILED and stored.attempts == 1
    assert stats.failed == 1 and stats.retried == 0
    assert reasons == ["failed: the prompt was blocked"]


async def test_remote_id_is_saved_at_once_and_seen_by_the_next_attempt(queue: JobQueue, db: Database) -> None:
    await queue.enqueue(JobKind.RENDER_VIDEO, {})
    seen: list[str | None] = []

    async def submit_then_poll(job: GenerationJob, ctx: JobContext) -> JobOutcome:
        seen.append(job.remote_id)
        if job.remote_id is None:
            await ctx.set_remote_id("req-123")
            stored = await job_rows.get(db, job.id)
            assert stored is not None and stored.remote_id == "req-123" and not db.conn.in_transaction
            raise Reschedule(10, "polling")
        return JobOutcome()

    await pool(queue, {JobKind.RENDER_VIDEO: submit_then_poll}).run_until_empty()

    assert seen == [None, "req-123"]


# --- on_commit atomicity -----------------------------------------------------------------------


async def test_on_commit_commits_with_the_job(queue: JobQueue, db: Database) -> None:
    job = await queue.enqueue(RENDER, {})
    delivered: list[str] = []

    async def render(job: GenerationJob, ctx: JobContext) -> JobOutcome:
        async def on_commit(conn: Conn) -> None:
            await insert_story(conn, "scene-done")
            await ctx.queue.enqueue(JobKind.DELIVER, {"after": job.id}, idempotency_key=f"deliver:{job.id}", conn=conn)

        return JobOutcome(result={"path": "x.png"}, warnings=["fell back"], fallback=True, on_commit=on_commit)

    async def deliver(job: GenerationJob, ctx: JobContext) -> None:
        delivered.append(job.payload["after"])

    stats = await pool(queue, {RENDER: render, JobKind.DELIVER: deliver}).run_until_empty()

    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.SUCCEEDED
    assert stored.generation_warnings == ["fell back"] and stored.model_fallback_occurred
    assert await story_exists(db, "scene-done")
    assert delivered == [job.id] and stats.succeeded == 2


async def test_on_commit_that_raises_keeps_nothing_and_the_job_unfinished(queue: JobQueue, db: Database) -> None:
    job = await queue.enqueue(RENDER, {}, max_attempts=1)

    async def render(job: GenerationJob, ctx: JobContext) -> JobOutcome:
        async def on_commit(conn: Conn) -> None:
            await insert_story(conn, "scene-done")
            await ctx.queue.enqueue(JobKind.DELIVER, {}, idempotency_key="deliver", conn=conn)
            raise RuntimeError("disk full")

        return JobOutcome(result={"path": "x.png"}, on_commit=on_commit)

    stats = await pool(queue, {RENDER: render}).run_until_empty()

    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.DEAD and stored.result is None
    assert stored.last_error == PLAIN
    assert not await story_exists(db, "scene-done")
    assert (await queue.counts())["succeeded"] == 0 and sum((await queue.counts()).values()) == 1
    assert stats.succeeded == 0 and stats.dead == 1


# --- leases, recovery, cancellation ------------------------------------------------------------


async def test_expired_lease_is_reaped_back_to_the_queue(queue: JobQueue, clock: FakeClock) -> None:
    job = await queue.enqueue(RENDER, {})
    assert await queue.claim("crashed-host:9:x") is not None
    assert await queue.reap() == []  # first seen: its heartbeat must then stand still for the lease

    clock.advance(59)
    assert await queue.reap() == []
    assert (await queue.get(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]

    clock.advance(2)
    assert await queue.reap() == []
    requeued = await queue.get(job.id)
    assert requeued is not None and requeued.status is JobStatus.QUEUED
    assert (requeued.attempts, requeued.interruptions) == (0, 1)  # the lost run gives its attempt back
    assert requeued.lease_owner is None and requeued.last_error == "lease expired"

    stats = await pool(queue, {RENDER: succeed}).run_until_empty()
    assert stats.succeeded == 1 and (await queue.get(job.id)).attempts == 1  # type: ignore[union-attr]


async def test_heartbeat_only_extends_a_lease_still_owned(queue: JobQueue, clock: FakeClock) -> None:
    job = await queue.enqueue(RENDER, {})
    await queue.claim("w:1:a")
    clock.advance(50)

    assert await queue.heartbeat(job.id, "w:1:a")
    assert (await queue.get(job.id)).lease_expires_at == clock.now() + 60  # type: ignore[union-attr]
    assert not await queue.heartbeat(job.id, "w:2:b")
    assert not await queue.finish(job.id, "w:2:b", status=JobStatus.SUCCEEDED)


async def interrupt(queue: JobQueue, clock: FakeClock, times: int) -> None:
    """Claim the next job and lose its lease, ``times`` times (a worker dying mid-run, again and again)."""
    for _ in range(times):
        assert await queue.claim("crashed-host:9:x") is not None
        assert await queue.reap() == []
        clock.advance(120)
        assert await queue.reap() == []


async def test_interruptions_do_not_spend_attempts(queue: JobQueue, clock: FakeClock) -> None:
    job = await queue.enqueue(RENDER, {}, max_attempts=1)
    await interrupt(queue, clock, MAX_INTERRUPTIONS - 1)
    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.QUEUED
    assert (stored.attempts, stored.interruptions) == (0, MAX_INTERRUPTIONS - 1)
    stats = await pool(queue, {RENDER: succeed}).run_until_empty()
    assert stats.succeeded == 1


async def test_worker_reaps_at_start_and_buries_jobs_interrupted_too_often(queue: JobQueue, clock: FakeClock) -> None:
    job = await queue.enqueue(RENDER, {})
    await interrupt(queue, clock, MAX_INTERRUPTIONS - 1)
    await queue.claim("crashed-host:9:x")
    clock.advance(120)
    gave_up: list[str] = []

    async def on_give_up(dead: GenerationJob, error: str, conn: Conn) -> None:
        gave_up.append(error)

    stats = await pool(queue, {RENDER: succeed}, on_give_up=on_give_up).run_until_empty()

    assert (await queue.get(job.id)).status is JobStatus.DEAD  # type: ignore[union-attr]
    assert stats.dead == 1 and stats.succeeded == 0
    assert gave_up == [f"lease expired {MAX_INTERRUPTIONS} times while running it; given up"]


async def test_release_orphans_frees_jobs_of_dead_processes_on_this_host(queue: JobQueue) -> None:
    host = "box"

    async def claimed_by(owner: str, max_attempts: int = 3) -> GenerationJob:
        job = await queue.enqueue(RENDER, {}, max_attempts=max_attempts)
        assert (await queue.claim(owner)).id == job.id  # type: ignore[union-attr]
        return job

    exhausted = await claimed_by(f"{host}:111:d")
    for _ in range(MAX_INTERRUPTIONS - 1):  # a job that keeps killing its worker
        assert await queue.release_orphans(host, lambda pid: False) == []
        assert (await queue.claim(f"{host}:111:d")).id == exhausted.id  # type: ignore[union-attr]
    dead_pid = await claimed_by(f"{host}:111:a")
    live_pid = await claimed_by(f"{host}:222:b")
    other_host = await claimed_by("elsewhere:111:c")
    kept = await claimed_by(f"{host}:111:keep")

    dead = await queue.release_orphans(host, lambda pid: pid == 222, keep_owners={f"{host}:111:keep"})

    assert [job.id for job in dead] == [exhausted.id]
    statuses = {job.id: (await queue.get(job.id)).status for job in (dead_pid, live_pid, other_host, kept)}  # type: ignore[union-attr]
    assert statuses == {
        dead_pid.id: JobStatus.QUEUED,
        live_pid.id: JobStatus.RUNNING,
        other_host.id: JobStatus.RUNNING,
        kept.id: JobStatus.RUNNING,
    }
    requeued = await queue.get(dead_pid.id)
    assert requeued is not None and (requeued.attempts, requeued.interruptions) == (0, 1)  # the crash spent none


async def test_worker_resumes_a_job_left_by_a_killed_process_without_waiting_for_the_lease(
    queue: JobQueue,
) -> None:
    job = await queue.enqueue(RENDER, {})
    await queue.claim(f"{socket.gethostname()}:999999999:gone")  # no such pid

    stats = await pool(queue, {RENDER: succeed}).run_until_empty()

    assert stats.succeeded == 1 and (await queue.get(job.id)).attempts == 1  # type: ignore[union-attr]


async def test_cancel_by_story_and_by_id(queue: JobQueue, db: Database) -> None:
    await insert_story(db, "s1")
    queued = await queue.enqueue(RENDER, {}, story_id="s1")
    running = await queue.enqueue(RENDER, {}, story_id="s1")
    await queue.claim("w:1:a")
    loose = await queue.enqueue(RENDER, {})

    assert await queue.cancel(story_id="s1") == 2
    assert await queue.cancel(job_id=loose.id) == 1
    assert await queue.cancel(job_id=loose.id) == 0
    assert [j.status for j in await queue.list_for_story("s1")] == [JobStatus.CANCELLED] * 2
    assert not await queue.finish(running.id, "w:1:a", status=JobStatus.SUCCEEDED)  # the lease is gone
    assert queued.id in {j.id for j in await queue.list_for_story("s1")}


async def test_cancelling_a_running_job_stops_its_handler(db: Database, clock: FakeClock) -> None:
    queue = JobQueue(db, clock, lease_s=0.3, max_attempts=3)  # heartbeat every 0.1 s of real time
    job = await queue.enqueue(RENDER, {})
    started, stopped = asyncio.Event(), asyncio.Event()

    async def hang(job: GenerationJob, ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    run = asyncio.create_task(pool(queue, {RENDER: hang}, idle_poll_s=0.05).run_until_empty())
    await started.wait()
    assert await queue.cancel(job_id=job.id) == 1
    stats = await asyncio.wait_for(run, timeout=5)

    assert stopped.is_set() and stats.lease_lost == 1
    assert (await queue.get(job.id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_cancelling_the_worker_hands_in_flight_jobs_back(queue: JobQueue) -> None:
    job = await queue.enqueue(RENDER, {})
    started = asyncio.Event()

    async def hang(job: GenerationJob, ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()

    run = asyncio.create_task(pool(queue, {RENDER: hang}).run_until_empty())
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    stored = await queue.get(job.id)
    assert stored is not None and stored.status is JobStatus.QUEUED
    assert stored.attempts == 0 and stored.lease_owner is None


async def test_run_forever_stops_when_asked(queue: JobQueue) -> None:
    await queue.enqueue(RENDER, {})
    stop = asyncio.Event()
    seen: list[str] = []

    async def record_then_stop(job: GenerationJob, ctx: JobContext) -> None:
        seen.append(job.id)
        stop.set()

    stats = await asyncio.wait_for(pool(queue, {RENDER: record_then_stop}).run_forever(stop), timeout=5)

    assert stats.succeeded == 1 and len(seen) == 1


# --- concurrency -------------------------------------------------------------------------------


async def test_two_workers_on_two_connections_never_run_a_job_twice(db: Database, clock: FakeClock) -> None:
    async with twin(db) as first_db, twin(db) as second_db:
        first, second = JobQueue(first_db, clock), JobQueue(second_db, clock)
        jobs = [await first.enqueue(RENDER, {"n": n}) for n in range(12)]
        runs: Counter[str] = Counter()
        owners: set[str] = set()
        both_busy = asyncio.Event()

        async def count(job: GenerationJob, ctx: JobContext) -> None:
            runs[job.id] += 1
            owners.add(ctx.owner)
            if len(owners) == 2:
                both_busy.set()
            await asyncio.wait_for(both_busy.wait(), timeout=5)  # hold jobs until both workers compete

        stats = await asyncio.gather(
            pool(first, {RENDER: count}, concurrency=3).run_until_empty(),
            pool(second, {RENDER: count}, concurrency=3).run_until_empty(),
        )

        assert runs == Counter({job.id: 1 for job in jobs})
        assert sum(s.succeeded for s in stats) == 12 and all(s.succeeded for s in stats)


async def test_provider_and_user_limits_hold(queue: JobQueue) -> None:
    for user in range(4):
        await queue.enqueue(RENDER, {}, provider="openai", user_id=100 + user)
    for _ in range(4):
        await queue.enqueue(RENDER, {}, provider=None, user_id=7)
    running: Counter[str] = Counter()
    peaks: Counter[str] = Counter()

    async def track(job: GenerationJob, ctx: JobContext) -> None:
        keys = ["all", f"provider:{job.provider}", f"user:{job.user_id}"]
        for key in keys:
            running[key] += 1
            peaks[key] = max(peaks[key], running[key])
        await asyncio.sleep(0.01)
        for key in keys:
            running[key] -= 1

    workers = pool(queue, {RENDER: track}, concurrency=8, provider_limit=2, user_limit=1)
    stats = await workers.run_until_empty()

    assert stats.succeeded == 8
    assert peaks["provider:openai"] == 2 and peaks["user:7"] == 1
    assert peaks["all"] == 3  # two openai jobs beside one job of user 7


async def test_provider_and_user_limits_hold_across_workers_on_separate_connections(
    db: Database, clock: FakeClock
) -> None:
    """Three processes' workers, each allowed 4 jobs at once, share one limit of 2 per provider and 1 per user:
    the limits are counted in the claim, from every owner's running jobs, not per process."""
    async with twin(db) as a, twin(db) as b, twin(db) as c:
        queues = [JobQueue(each, clock) for each in (a, b, c)]
        for n in range(9):
            await queues[0].enqueue(RENDER, {"n": n}, provider="openai", user_id=100 + n)
        for n in range(3):
            await queues[0].enqueue(RENDER, {"n": n}, provider=None, user_id=7)
        running: Counter[str] = Counter()
        peaks: Counter[str] = Counter()

        async def track(job: GenerationJob, ctx: JobContext) -> None:
            keys = ["all", f"provider:{job.provider}", f"user:{job.user_id}"]
            for key in keys:
                running[key] += 1
                peaks[key] = max(peaks[key], running[key])
            await asyncio.sleep(0.05)
            for key in keys:
                running[key] -= 1

        stats = await asyncio.gather(
            *(pool(q, {RENDER: track}, concurrency=4, provider_limit=2, user_limit=1).run_until_empty() for q in queues)
        )

    assert sum(s.succeeded for s in stats) == 12
    assert peaks["provider:openai"] == 2 and peaks["user:7"] == 1


async def test_a_worker_whose_ready_jobs_wait_for_another_process_slot_waits_instead_of_spinning(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Process A runs the one openai job the limit allows; process B, with nothing running and an openai job
    ready, can claim nothing until A's ends: it polls every idle_poll_s, not in a loop of claims."""
    async with twin(db) as a_db, twin(db) as b_db:
        a_queue, b_queue = JobQueue(a_db, SystemClock()), JobQueue(b_db, SystemClock())
        await a_queue.enqueue(RENDER, {"n": 0}, provider="openai")
        a_started, a_release = asyncio.Event(), asyncio.Event()

        async def hold(job: GenerationJob, ctx: JobContext) -> None:
            a_started.set()
            await a_release.wait()

        a = Worker(a_queue, {RENDER: hold}, clock=a_queue.clock, concurrency=1, provider_limit=1, idle_poll_s=0.1)
        a_run = asyncio.create_task(a.run_forever(asyncio.Event()))
        await asyncio.wait_for(a_started.wait(), timeout=10)
        await b_queue.enqueue(RENDER, {"n": 1}, provider="openai")
        claims = 0
        real = b_queue.settle_then_claim

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal claims
            claims += 1
            return await real(*args, **kwargs)

        monkeypatch.setattr(b_queue, "settle_then_claim", counted)
        b_stop = asyncio.Event()
        b = Worker(b_queue, {RENDER: succeed}, clock=b_queue.clock, concurrency=4, provider_limit=1, idle_poll_s=0.2)
        b_run = asyncio.create_task(b.run_forever(b_stop))
        await asyncio.sleep(1.0)
        blocked_claims = claims
        a_release.set()  # A's job ends: B's job may start

        async def b_done() -> bool:
            return (await b_queue.counts())["succeeded"] == 2

        for _ in range(100):
            if done := await b_done():
                break
            await asyncio.sleep(0.05)
        b_stop.set()
        a_run.cancel()
        await asyncio.gather(a_run, b_run, return_exceptions=True)

    assert done, "B's job never ran once A's ended"
    assert 1 <= blocked_claims <= 15, f"{blocked_claims} claims in 1 s while blocked: spinning"


# --- a locked database -------------------------------------------------------------------------


async def test_enqueue_waits_for_a_busy_database_then_succeeds(db: Database, clock: FakeClock) -> None:
    queue = JobQueue(db, clock)
    holding, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold_write_lock(db, holding, release))
    await holding.wait()

    enqueue = asyncio.create_task(queue.enqueue(RENDER, {"n": 1}))
    done, _ = await asyncio.wait({enqueue}, timeout=0.2)
    assert not done  # blocked on the other connection's lock, within busy_timeout
    release.set()
    await holder
    job = await asyncio.wait_for(enqueue, timeout=5)

    assert (await queue.get(job.id)) is not None and (await queue.counts())["queued"] == 1


async def test_enqueue_on_a_database_locked_too_long_raises_storage_error(db: Database, clock: FakeClock) -> None:
    async with twin(db, busy_timeout_ms=20) as impatient:
        queue = JobQueue(impatient, clock)
        holding, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_write_lock(db, holding, release))
        await holding.wait()
        with pytest.raises(StorageError, match="busy"):
            await queue.enqueue(RENDER, {}, idempotency_key="k")
        release.set()
        await holder

        assert sum((await queue.counts()).values()) == 0
        assert not impatient.conn.in_transaction
        assert (await queue.enqueue(RENDER, {}, idempotency_key="k")).idempotency_key == "k"
