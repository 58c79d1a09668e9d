"""Processes by role against the fake Discord and one PostgreSQL database: a sharded gateway that answers and
queues, and workers that log in over REST only, render and post (bot/app.py, issue #14 item 2)."""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path

from PIL import Image

from bot.app import GATEWAY, WORKER
from bot.settings import Settings
from storage import jobs as job_rows
from storage import scenes as scene_rows
from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import GUILD_ID
from tests.support.discord_harness import OWNER, make_settings, running, wait_for_story
from tests.support.s3 import Bucket

ACK_S = 10.0


async def test_a_gateway_queues_and_two_workers_render_and_post_each_file_once(
    fake: FakeDiscord, tmp_path: Path, postgres_url: str, s3_bucket: Bucket
) -> None:
    """Three "machines": each its own MEDIA_DIR, one PostgreSQL database and one bucket between them."""
    settings = make_settings(tmp_path, fake, database_url=postgres_url, **s3_bucket.settings("media"))

    def on_machine(name: str) -> Settings:
        return settings.model_copy(update={"media_dir": tmp_path / name / "media"})

    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(running(on_machine("a"), role=WORKER, storyboard_interval_s=0.3))
        second = await stack.enter_async_context(running(on_machine("b"), role=WORKER, storyboard_interval_s=0.3))
        gateway = await stack.enter_async_context(running(on_machine("c"), role=GATEWAY, storyboard_interval_s=0.3))

        assert gateway.worker is None and gateway.supervisor is None  # it renders nothing
        assert first.worker is not None and second.worker is not None
        assert gateway.runtime.shards == "0 of 1"  # Discord's recommendation: one shard
        roles = Counter(peer.role for peer in gateway.runtime.peers)
        assert roles == {WORKER: 2, GATEWAY: 1}

        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "a fox and a kite", "scenes": 3})
        board = await wait_for_story(fake, handle, scenes=3, video=False)

        [story] = await storage_testing.list_all(gateway.runtime.db)
        posted = [a for m in fake.channel_messages(story.thread_id) for a in m.attachments]
        assert Counter(a.filename for a in posted) == {f"scene-{n:02d}-image.png": 1 for n in (1, 2, 3)}
        # Every picture is in the bucket, whole, and what was posted is what was stored.
        scenes = await scene_rows.list_for_story(gateway.runtime.db, story.id)
        assert all((s.image_path or "").startswith(f"{s3_bucket.url}/media/{story.id}/") for s in scenes)
        objects = s3_bucket.keys()
        stored = {key: s3_bucket.read(key) for key in objects}
        assert len(stored) == 3 and s3_bucket.pending_uploads() == []
        for data in stored.values():
            with Image.open(io.BytesIO(data)) as picture:
                picture.verify()
        assert sorted(a.data for a in posted) == sorted(stored.values())
        assert board.id == story.storyboard_message_id
        jobs = await job_rows.list_for_story(gateway.runtime.db, story.id)
        assert jobs and all(job.lease_owner for job in jobs)  # every job was claimed by a worker


async def test_a_gateway_without_a_live_worker_refuses_a_story_in_plain_words(
    fake: FakeDiscord, tmp_path: Path, postgres_url: str
) -> None:
    settings = make_settings(tmp_path, fake, database_url=postgres_url)
    async with running(settings, role=GATEWAY) as gateway:
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "a fox", "scenes": 1})
        answer = await handle.ack(ACK_S)
        await fake.wait_until(lambda: handle.original is not None, what="the answer")

        assert "cannot make stories right now" in (handle.original.content if handle.original else ""), answer
        assert await storage_testing.list_all(gateway.runtime.db) == []


async def test_a_gateway_holds_as_many_shards_as_discord_recommends(
    fake: FakeDiscord, tmp_path: Path, postgres_url: str
) -> None:
    fake.recommended_shards = 2
    settings = make_settings(tmp_path, fake, database_url=postgres_url)
    async with running(settings, role=WORKER), running(settings, role=GATEWAY) as gateway:
        sessions = [session.shard for session in fake.gateway.live_sessions]
        assert sorted(sessions) == [(0, 2), (1, 2)]  # type: ignore[type-var]
        assert gateway.runtime.shards == "0-1 of 2"
        assert gateway.get_guild(GUILD_ID) is not None  # from the shard its id falls on

        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "two moons", "scenes": 1})
        await wait_for_story(fake, handle, scenes=1, video=False)
