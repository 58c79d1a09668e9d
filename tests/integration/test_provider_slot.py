"""A job gives its provider slot back when its handler says its provider calls are done (ctx.provider_done()),
so the next job of that provider starts while the first one still stores its results; never more at once."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.clock import FakeClock
from bot.domain import GenerationJob, JobKind
from bot.jobs import JobContext, JobQueue, Worker
from bot.jobs.contract import Handler
from storage.db import Database

RENDER = JobKind.RENDER_IMAGE
GUARD_S = 10.0  # only so that a broken worker fails the test instead of hanging it


@pytest.fixture
def queue(db: Database, clock: FakeClock) -> JobQueue:
    return JobQueue(db, clock, lease_s=60.0, max_attempts=3)


def pool(queue: JobQueue, handlers: dict[JobKind, Handler], *, provider_limit: int) -> Worker:
    return Worker(
        queue, handlers, concurrency=3, provider_limit=provider_limit, user_limit=3,
        clock=queue.clock, idle_poll_s=0.05, rng=random.Random(7),
    )  # fmt: skip


async def test_the_next_job_calls_its_provider_while_the_first_still_stores_its_results(queue: JobQueue) -> None:
    for n in (1, 2):
        await queue.enqueue(RENDER, {"n": n}, provider="openai")
    second_called = asyncio.Event()
    calling = 0
    peak = 0
    events: list[str] = []

    async def handle(job: GenerationJob, ctx: JobContext) -> None:
        nonlocal calling, peak
        order = "first" if not events else "second"
        calling += 1
        peak = max(peak, calling)
        events.append(f"{order} calls")
        await asyncio.sleep(0)
        calling -= 1
        ctx.provider_done()
        if order == "second":
            second_called.set()
        else:  # "storing its results" until the next job has called its provider
            await asyncio.wait_for(second_called.wait(), GUARD_S)
        events.append(f"{order} ends")

    stats = await pool(queue, {RENDER: handle}, provider_limit=1).run_until_empty()

    assert stats.succeeded == 2 and stats.retried == 0
    assert events == ["first calls", "second calls", "second ends", "first ends"]
    assert peak == 1


async def test_a_slot_given_back_twice_counts_once(queue: JobQueue) -> None:
    freer = await queue.enqueue(RENDER, {"n": 0}, provider="openai", max_attempts=1)
    for n in (1, 2, 3):
        await queue.enqueue(RENDER, {"n": n}, provider="openai")
    others_done = asyncio.Event()
    finished: list[int] = []
    calling = 0
    peak = 0

    async def handle(job: GenerationJob, ctx: JobContext) -> None:
        nonlocal calling, peak
        if job.id == freer.id:
            ctx.provider_done()
            ctx.provider_done()
            await asyncio.wait_for(others_done.wait(), GUARD_S)
            raise RuntimeError("failed after its provider call")
        calling += 1
        peak = max(peak, calling)
        await asyncio.sleep(0.01)
        calling -= 1
        ctx.provider_done()
        finished.append(job.payload["n"])
        if len(finished) == 3:
            others_done.set()

    stats = await pool(queue, {RENDER: handle}, provider_limit=1).run_until_empty()

    assert sorted(finished) == [1, 2, 3] and stats.succeeded == 3 and stats.dead == 1
    assert peak == 1  # a double give-back would have let two of them call at once
