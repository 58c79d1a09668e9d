"""Issue #11 item 7: the wall clock stepping an hour either way, or two workers whose clocks disagree by an
hour, neither freezes queued work nor hands a live job to a second worker, and a dead worker's job still
comes back within about its lease.

Each "process" here is its own JobQueue on its own connection to one database file, with its own FakeClock:
``advance`` is time passing, ``step`` is the wall clock being set. Elapsed time is read from the fake
monotonic clocks, so nothing here depends on how fast the machine is. The same attacks with real
processes are in tests/fault/test_clock_steps.py.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.domain import GenerationJob, JobKind, JobStatus
from bot.jobs import JobContext, JobOutcome, JobQueue, Reschedule, Worker
from storage.db import Database
from tests.support.database import twin

RENDER = JobKind.RENDER_IMAGE
HOUR = 3600.0
LEASE_S = 60.0


def pool(queue: JobQueue, handlers: dict[JobKind, Any], **options: Any) -> Worker:
    return Worker(queue, handlers, clock=queue.clock, rng=random.Random(7), idle_poll_s=0.5, **options)


async def succeed(job: GenerationJob, ctx: JobContext) -> JobOutcome:
    return JobOutcome(result={"ran_by": ctx.owner})


class StepsWhileWaiting(FakeClock):
    """A FakeClock whose wall clock is set ``step_s`` off during the worker's first wait."""

    def __init__(self, step_s: float) -> None:
        super().__init__()
        self.step_s = step_s
        self.stepped = False

    async def sleep(self, seconds: float) -> None:
        if not self.stepped:
            self.stepped = True
            self.step(self.step_s)
        await super().sleep(seconds)


@pytest.fixture
async def second_db(db: Database) -> AsyncIterator[Database]:
    """Another connection to the same database (``db`` first, so the schema is there): a second process."""
    async with twin(db) as other:
        yield other


# --- (a) due times ---------------------------------------------------------------------------------


async def test_jobs_due_in_seconds_still_run_in_seconds_after_the_clock_steps_back_an_hour(db: Database) -> None:
    clock = FakeClock()
    queue = JobQueue(db, clock, lease_s=LEASE_S)
    soon = [await queue.enqueue(RENDER, {"n": n}, delay_s=5) for n in range(3)]
    later = await queue.enqueue(RENDER, {"n": "later"}, delay_s=600)
    clock.step(-HOUR)
    started = clock.monotonic()

    stats = await pool(queue, {RENDER: succeed}).run_until_empty()

    assert stats.succeeded == 4
    statuses = [(await queue.get(job.id)).status for job in [*soon, later]]  # type: ignore[union-attr]
    assert statuses == [JobStatus.SUCCEEDED] * 4
    # 600 s of waiting for the job asked to wait 600 s, not an hour more: the step did not freeze the queue.
    waited = clock.monotonic() - started
    assert 600 <= waited < 700, waited


async def test_a_poll_rescheduled_before_a_step_back_keeps_its_delay(db: Database) -> None:
    clock = StepsWhileWaiting(-HOUR)  # after the job was rescheduled, before it is due
    queue = JobQueue(db, clock, lease_s=LEASE_S)
    runs: list[float] = []

    async def poll_twice(job: GenerationJob, ctx: JobContext) -> JobOutcome:
        runs.append(clock.monotonic())
        if len(runs) == 1:
            raise Reschedule(5, "the provider is still rendering")
        return JobOutcome()

    job = await queue.enqueue(RENDER, {})
    await pool(queue, {RENDER: poll_twice}).run_until_empty()

    assert clock.stepped and (await queue.get(job.id)).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    assert len(runs) == 2 and runs[1] - runs[0] < 60, runs  # polled again seconds later, not an hour


async def test_jobs_scheduled_by_a_clock_an_hour_ahead_run_when_due_by_ours(db: Database, second_db: Database) -> None:
    ours, ahead = FakeClock(), FakeClock()
    ahead.step(HOUR)
    scheduler = JobQueue(second_db, ahead, lease_s=LEASE_S)
    queue = JobQueue(db, ours, lease_s=LEASE_S)
    jobs = [await scheduler.enqueue(RENDER, {"n": n}, delay_s=n) for n in range(3)]
    parked = await scheduler.enqueue(RENDER, {"n": "parked"}, delay_s=300)

    assert await queue.rebase() == 4
    # Each keeps the delay it was given, counted from our clock.
    due = {job.id: (await queue.get(job.id)).run_after - ours.now() for job in [*jobs, parked]}  # type: ignore[union-attr]
    assert due == {jobs[0].id: 0, jobs[1].id: 1, jobs[2].id: 2, parked.id: 300}
    assert await queue.rebase() == 0  # once

    started = ours.monotonic()
    stats = await pool(queue, {RENDER: succeed}).run_until_empty()
    assert stats.succeeded == 4 and ours.monotonic() - started < 400


async def test_a_small_skew_between_clocks_moves_nothing(db: Database, second_db: Database) -> None:
    ours, ahead = FakeClock(), FakeClock()
    ahead.step(0.5)
    await JobQueue(second_db, ahead).enqueue(RENDER, {}, delay_s=10)
    assert await JobQueue(db, ours).rebase() == 0


# --- (b) a live owner keeps its job --------------------------------------------------------------


async def test_a_reaper_whose_clock_is_an_hour_ahead_leaves_a_heartbeating_job_alone(
    db: Database, second_db: Database
) -> None:
    owner_clock, reaper_clock = FakeClock(), FakeClock()
    owner = JobQueue(db, owner_clock, lease_s=LEASE_S)
    reaper = JobQueue(second_db, reaper_clock, lease_s=LEASE_S)
    job = await owner.enqueue(RENDER, {})
    claimed = await owner.claim("otherhost:1:alive")
    assert claimed is not None and claimed.id == job.id
    reaper_clock.step(HOUR)  # by its wall clock the owner's lease ran out an hour ago

    for _ in range(30):  # ten leases of the owner beating every lease/3
        reaper_clock.advance(LEASE_S / 3)
        owner_clock.advance(LEASE_S / 3)
        assert await reaper.reap() == []
        assert await owner.heartbeat(job.id, "otherhost:1:alive")
        if _ == 10:
            owner_clock.step(-HOUR)  # the owner's own clock stepping back changes nothing either

    assert await owner.finish(job.id, "otherhost:1:alive", status=JobStatus.SUCCEEDED, result={"ran": 1})
    done = await owner.get(job.id)
    assert done is not None and (done.status, done.attempts, done.interruptions) == (JobStatus.SUCCEEDED, 1, 0)


async def test_a_worker_pool_an_hour_ahead_does_not_take_a_live_job_of_another_process(
    db: Database, second_db: Database
) -> None:
    """The reaper in a running pool (its maintenance), with the owner beating between its idle sleeps."""
    owner_clock, reaper_clock = FakeClock(), FakeClock()
    owner = JobQueue(db, owner_clock, lease_s=LEASE_S)
    job = await owner.enqueue(RENDER, {})
    assert await owner.claim("otherhost:1:alive") is not None
    reaper_clock.step(HOUR)

    class BeatingClock(FakeClock):
        """The reaper's clock; each of its sleeps is time in which the owner beats (every lease/3)."""

        beats = 0

        async def sleep(self, seconds: float) -> None:
            await super().sleep(seconds)
            owner_clock.advance(seconds)
            if owner_clock.monotonic() // (LEASE_S / 3) > self.beats:
                self.beats += 1
                assert await owner.heartbeat(job.id, "otherhost:1:alive")
            if owner_clock.monotonic() >= 5 * LEASE_S:  # the owner finishes after five leases
                await owner.finish(job.id, "otherhost:1:alive", status=JobStatus.SUCCEEDED)

    clock = BeatingClock(reaper_clock.now())
    stolen: list[str] = []

    async def thief(job: GenerationJob, ctx: JobContext) -> None:
        stolen.append(job.id)

    stats = await pool(JobQueue(second_db, clock, lease_s=LEASE_S), {RENDER: thief}).run_until_empty()

    assert stolen == [] and stats.succeeded == 0
    done = await owner.get(job.id)
    assert done is not None and (done.status, done.attempts, done.interruptions) == (JobStatus.SUCCEEDED, 1, 0)
    assert clock.beats >= 14


# --- (c) a dead owner's job comes back ------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "while_waiting"),
    [(-HOUR, False), (HOUR, False), (0.0, False), (-HOUR, True), (HOUR, True)],
    ids=["reaper-set-back", "reaper-set-forward", "no-step", "set-back-while-waiting", "set-forward-while-waiting"],
)
async def test_a_dead_owners_job_comes_back_within_about_its_lease(
    db: Database, second_db: Database, step: float, while_waiting: bool
) -> None:
    owner = JobQueue(db, FakeClock(), lease_s=LEASE_S)
    job = await owner.enqueue(RENDER, {})
    assert await owner.claim("otherhost:1:dead") is not None  # and then the owner died: no more beats
    clock = StepsWhileWaiting(step) if while_waiting else FakeClock()
    if not while_waiting:
        clock.step(step)
    started = clock.monotonic()

    stats = await pool(JobQueue(second_db, clock, lease_s=LEASE_S), {RENDER: succeed}).run_until_empty()

    assert stats.succeeded == 1
    done = await owner.get(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.interruptions == 1
    waited = clock.monotonic() - started
    assert LEASE_S < waited <= 2 * LEASE_S, waited  # one lease of standing still, seen by maintenance


async def test_the_owners_lease_not_the_reapers_decides(db: Database, second_db: Database) -> None:
    """An owner holding a 300 s lease beats every 100 s; a reaper configured for 60 s must not take it."""
    owner_clock, reaper_clock = FakeClock(), FakeClock()
    owner = JobQueue(db, owner_clock, lease_s=300.0)
    reaper = JobQueue(second_db, reaper_clock, lease_s=60.0)
    job = await owner.enqueue(RENDER, {})
    assert await owner.claim("otherhost:1:slow") is not None
    for _ in range(6):
        assert await reaper.reap() == []
        reaper_clock.advance(100)
        assert await reaper.reap() == []
        assert await owner.heartbeat(job.id, "otherhost:1:slow")
    assert await reaper.reap() == []  # sees the last beat; then the owner stops beating
    reaper_clock.advance(299)
    assert await reaper.reap() == []
    assert (await owner.get(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]
    reaper_clock.advance(2)
    assert await reaper.reap() == []
    assert (await owner.get(job.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
