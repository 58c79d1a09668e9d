"""Issue #11 item 7 with real processes: two processes whose clocks disagree by an hour share one queue.

The other process is this test, on a clock an hour off (an injected Clock); the real `storybot work` runs
on the machine's clock. An hour apart is what a step of the wall clock looks like from the other side:
- jobs scheduled by a clock an hour ahead are not frozen for an hour;
- a live job of a process whose clock is an hour behind is not taken (and paid for) a second time;
- a dead process's job whose lease looks valid for another hour still comes back within about its lease.
Before the fix the first and last would wait an hour (the timeouts here fail them), the second would be
stolen at once. The owners claim as another host, so only the lease (not the pid check) can free them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.clock import SystemClock
from bot.domain import GenerationJob, JobKind, JobStatus
from bot.jobs import JobContext, JobOutcome, JobQueue, Worker
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import Settings, load_settings
from storage.engines import database_for
from tests.support.cli import STORYBOT, cli_env
from tests.support.database import select

pytestmark = pytest.mark.slow

HOUR = 3600.0
OWNER_LEASE_S = 1.0  # the lease the other process holds its job under: it beats every third of a second
HOLD_S = 6.0  # how long the live owner keeps its job: two maintenance passes of `storybot work` (every 2.5 s)
TIMEOUT_S = 60  # generous; the bugs this catches wait an hour


class OffsetClock(SystemClock):
    """The machine's clock, set ``offset_s`` off."""

    def __init__(self, offset_s: float) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        return super().now() + self.offset_s


def settings_for(tmp_path: Path) -> Settings:
    return load_settings(database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media")


async def storybot_work(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`storybot work` in its own process (JOB_LEASE_S=5, the least allowed: maintenance every 2.5 s)."""
    proc = await asyncio.create_subprocess_exec(
        *STORYBOT, "work", env=cli_env(tmp_path, JOB_LEASE_S="5"), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"`storybot work` was still waiting after {TIMEOUT_S} s") from None
    assert proc.returncode is not None
    return subprocess.CompletedProcess([*STORYBOT, "work"], proc.returncode, out.decode(), err.decode())


def rows(db: Path, sql: str) -> list[Any]:
    return select(db, sql)


async def test_work_scheduled_by_a_clock_an_hour_ahead_runs_now(tmp_path: Path) -> None:
    async with Runtime(settings_for(tmp_path), clock=OffsetClock(HOUR), out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="a lighthouse keeper", scenes=2, out_dir=tmp_path / "out"))

    work = await storybot_work(tmp_path)

    assert work.returncode == 0, work.stderr
    assert ", 0 failed, 0 dead, 0 retried" in work.stdout, work.stdout
    [stored] = rows(tmp_path / "storybot.db", "SELECT status FROM stories")
    assert stored["status"] == "complete"
    assert (tmp_path / "out" / story.id / "index.html").is_file()


async def test_a_live_job_of_a_process_an_hour_behind_is_not_taken(tmp_path: Path) -> None:
    db_path = tmp_path / "storybot.db"
    async with database_for(os.environ.get("DATABASE_URL"), db_path) as db:
        queue = JobQueue(db, OffsetClock(-HOUR), lease_s=OWNER_LEASE_S)
        job = await queue.enqueue(JobKind.RENDER_IMAGE, {"story_id": "none", "scene_id": "none"})
        started, release, runs = asyncio.Event(), asyncio.Event(), []

        async def slow_render(job: GenerationJob, ctx: JobContext) -> JobOutcome:
            runs.append(ctx.owner)
            started.set()
            await release.wait()
            return JobOutcome(result={"rendered_by": ctx.owner})

        owner = Worker(queue, {JobKind.RENDER_IMAGE: slow_render}, owner="otherhost:1:alive")
        running = asyncio.create_task(owner.run_until_empty())
        await asyncio.wait_for(started.wait(), timeout=10)
        work = asyncio.create_task(storybot_work(tmp_path))  # by its clock our lease ran out an hour ago
        await asyncio.sleep(HOLD_S)  # not a timing assertion: how long the thief gets to try
        release.set()
        stats = await asyncio.wait_for(running, timeout=TIMEOUT_S)
        done = await work

    assert done.returncode == 0, done.stderr
    assert "queue empty: 0 done, 0 failed, 0 dead, 0 retried" in done.stdout, done.stdout
    assert runs == ["otherhost:1:alive"] and stats.succeeded == 1 and stats.lease_lost == 0
    [row] = rows(db_path, f"SELECT * FROM jobs WHERE id = '{job.id}'")
    assert (row["status"], row["attempts"], row["interruptions"]) == ("succeeded", 1, 0)
    assert row["result"] == '{"rendered_by":"otherhost:1:alive"}'
    assert row["heartbeats"] > HOLD_S / OWNER_LEASE_S  # it beat all along


async def test_a_dead_process_job_that_looks_leased_for_an_hour_comes_back_within_its_lease(tmp_path: Path) -> None:
    async with Runtime(settings_for(tmp_path), clock=OffsetClock(HOUR), out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="a lighthouse keeper", scenes=1, out_dir=tmp_path / "out"))
        claimed = await rt.queue.claim("otherhost:1:dead", lease_s=OWNER_LEASE_S)  # then it died
        assert claimed is not None and claimed.kind is JobKind.WRITE_STORY
        assert claimed.lease_expires_at is not None and claimed.lease_expires_at > rt.clock.now()

    work = await storybot_work(tmp_path)

    assert work.returncode == 0, work.stderr
    [job] = rows(tmp_path / "storybot.db", f"SELECT * FROM jobs WHERE id = '{claimed.id}'")
    assert (job["status"], job["attempts"], job["interruptions"]) == (JobStatus.SUCCEEDED.value, 1, 1)
    assert job["last_error"] == "lease expired"
    [stored] = rows(tmp_path / "storybot.db", "SELECT status FROM stories")
    assert stored["status"] == "complete" and (tmp_path / "out" / story.id / "index.html").is_file()
