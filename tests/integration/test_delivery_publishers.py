"""Issue #11 item 6: a delivery is taken only by a process whose publisher can make it.

A Discord story's deliveries name the Discord publisher, a command-line story's the storybook; the claim
(SQL) skips the deliveries of publishers the process lacks, and burst mode does not wait for them. The
same with real processes and the fake Discord: tests/e2e/test_work_beside_the_bot.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bot.clock import FakeClock
from bot.domain import GenerationJob, JobKind, JobStatus
from bot.jobs import JobContext, JobQueue, Worker
from bot.pipeline.story_jobs import DISCORD_PUBLISHER, OFFLINE_PUBLISHER
from bot.publish.storybook import OfflinePublisher
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from cogs._publisher import DiscordPublisher
from storage import jobs as job_rows
from storage.db import Database, migrations
from storage.sqlite import SqliteDatabase

DELIVER = JobKind.DELIVER


def test_the_publishers_a_delivery_can_name_are_the_real_publishers() -> None:
    assert DiscordPublisher.name == DISCORD_PUBLISHER
    assert OfflinePublisher.name == OFFLINE_PUBLISHER


async def test_a_queue_claims_only_the_deliveries_of_its_publishers(db: Database, clock: FakeClock) -> None:
    offline = JobQueue(db, clock, publishers={OFFLINE_PUBLISHER})
    for_bot = await offline.enqueue(DELIVER, {}, publisher=DISCORD_PUBLISHER)
    clock.advance(1)
    mine = await offline.enqueue(DELIVER, {}, publisher=OFFLINE_PUBLISHER)
    render = await offline.enqueue(JobKind.RENDER_IMAGE, {})
    clock.advance(1)

    assert await offline.next_run_after() == mine.run_after  # the bot's delivery, due first, is not ours
    assert await offline.oldest_queued_age() == 1
    assert await offline.pending() == {"queued": 2, "running": 0}
    assert await offline.left_for_others() == 1
    claimed = {(await offline.claim("cli:1:a")).id, (await offline.claim("cli:1:a")).id}  # type: ignore[union-attr]
    assert claimed == {mine.id, render.id}
    assert await offline.claim("cli:1:a") is None
    assert (await offline.get(for_bot.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]

    bot = JobQueue(db, clock, publishers={DISCORD_PUBLISHER})
    assert await bot.pending() == {"queued": 1, "running": 1}  # the render; the running offline delivery is not its
    assert await bot.left_for_others() == 0
    assert (await bot.claim("bot:1:b")).id == for_bot.id  # type: ignore[union-attr]
    nobody = JobQueue(db, clock, publishers=())  # a process with no publisher takes no delivery at all
    await nobody.enqueue(DELIVER, {}, publisher=OFFLINE_PUBLISHER)
    assert await nobody.claim("x:1:c") is None and await nobody.left_for_others() == 1


async def test_a_queue_without_publishers_takes_every_job(db: Database, clock: FakeClock) -> None:
    queue = JobQueue(db, clock)
    jobs = {(await queue.enqueue(DELIVER, {}, publisher=p)).id for p in (DISCORD_PUBLISHER, OFFLINE_PUBLISHER)}
    assert {(await queue.claim("w:1:a")).id, (await queue.claim("w:1:a")).id} == jobs  # type: ignore[union-attr]


async def test_burst_mode_ends_with_another_publishers_deliveries_still_queued(db: Database, clock: FakeClock) -> None:
    queue = JobQueue(db, clock, publishers={OFFLINE_PUBLISHER})
    waiting = await queue.enqueue(DELIVER, {}, publisher=DISCORD_PUBLISHER)
    ran: list[str] = []

    async def handle(job: GenerationJob, ctx: JobContext) -> None:
        ran.append(job.id)

    handlers = {DELIVER: handle, JobKind.RENDER_IMAGE: handle}
    render = await queue.enqueue(JobKind.RENDER_IMAGE, {})
    stats = await asyncio.wait_for(Worker(queue, handlers, clock=clock).run_until_empty(), timeout=10)

    assert ran == [render.id] and stats.succeeded == 1
    assert (await queue.get(waiting.id)).attempts == 0  # type: ignore[union-attr]


async def test_story_deliveries_name_their_publisher_and_no_provider(tmp_path: Path) -> None:
    settings = load_settings(database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media")
    async with Runtime(settings, clock=FakeClock(), out_dir=tmp_path / "out") as rt:
        assert rt.queue.publishers == {OFFLINE_PUBLISHER}
        from_discord = await rt.stories.create(StoryOptions(prompt="a heron", scenes=2, guild_id=1, channel_id=2))
        from_cli = await rt.stories.create(StoryOptions(prompt="a fox", scenes=2, out_dir=tmp_path / "out"))
        stats = await rt.run_until_empty(idle_poll_s=0.01)
        assert stats.failed == stats.dead == 0
        for story, publisher in ((from_discord, DISCORD_PUBLISHER), (from_cli, OFFLINE_PUBLISHER)):
            jobs = await rt.queue.list_for_story(story.id)
            deliveries = [job for job in jobs if job.kind is DELIVER]
            assert deliveries and all(job.publisher == publisher and job.provider is None for job in deliveries)
            assert all(job.publisher is None for job in jobs if job.kind is not DELIVER)
            done = JobStatus.QUEUED if publisher == DISCORD_PUBLISHER else JobStatus.SUCCEEDED
            assert {job.status for job in deliveries} == {done}
            assert {job.status for job in jobs if job.kind is not DELIVER} == {JobStatus.SUCCEEDED}
        assert (tmp_path / "out" / from_cli.id / "index.html").is_file()
        assert not (tmp_path / "out" / from_discord.id).exists()


async def test_provider_limits_do_not_throttle_deliveries(db: Database, clock: FakeClock) -> None:
    queue = JobQueue(db, clock, publishers={DISCORD_PUBLISHER})
    jobs = [await queue.enqueue(DELIVER, {}, publisher=DISCORD_PUBLISHER, user_id=n) for n in range(4)]
    together = asyncio.Barrier(len(jobs))

    async def post(job: GenerationJob, ctx: JobContext) -> None:
        await asyncio.wait_for(together.wait(), timeout=10)  # every delivery at once, or none finishes

    pool = Worker(queue, {DELIVER: post}, clock=clock, concurrency=4, provider_limit=1, user_limit=1)
    stats = await asyncio.wait_for(pool.run_until_empty(), timeout=20)
    assert stats.succeeded == len(jobs)


async def test_migration_gives_queued_deliveries_the_publisher_their_story_needs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a database at schema 5, made before deliveries named a publisher
        for version, _, sql in migrations():
            if version <= 5:
                conn.executescript(sql + ";")
        conn.execute("PRAGMA user_version = 5")
        for story_id, channel in (("discord", 7), ("cli", None)):
            conn.execute(
                "INSERT INTO stories (id, channel_id, prompt, text_model, image_model, scene_count, status, "
                "created_at, updated_at) VALUES (?, ?, 'p', 'local-template', 'local-sketch', 1, 'complete', 0, 0)",
                (story_id, channel),
            )
            conn.execute(
                "INSERT INTO jobs (id, kind, status, run_after, story_id, created_at, updated_at) "
                "VALUES (?, 'deliver', 'queued', 0, ?, 0, 0)",
                (f"deliver-{story_id}", story_id),
            )
        conn.execute("INSERT INTO jobs (id, kind, status, run_after, created_at, updated_at) "
                     "VALUES ('render', 'render_image', 'queued', 0, 0, 0)")  # fmt: skip

    async with SqliteDatabase(path) as db:
        found = {}
        for job_id in ("deliver-discord", "deliver-cli", "render"):
            job = await job_rows.get(db, job_id)
            assert job is not None
            found[job_id] = job.publisher
        assert found == {"deliver-discord": DISCORD_PUBLISHER, "deliver-cli": OFFLINE_PUBLISHER, "render": None}
