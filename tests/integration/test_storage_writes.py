"""Storage writes that take one trip each: a stage move checked in its WHERE clause, an asset row created
once, and a single statement committed on its own (Database.write) under the same lock rules."""

from __future__ import annotations

import asyncio

import pytest

from bot.clock import FakeClock
from bot.domain import AssetKind, AssetStatus, ImageStatus, JobKind, MediaAsset, Scene, VideoStatus
from bot.errors import IllegalTransition, StorageError
from bot.jobs import JobQueue
from storage import assets, scenes
from storage.db import Database
from tests.support.database import hold_write_lock, insert_story, twin

STORY = "story-1"


async def add_scene(db: Database) -> Scene:
    scene = Scene(story_id=STORY, index=0, text="a fox at dawn", updated_at=0.0)
    async with db.transaction() as conn:
        await insert_story(conn, STORY)
        await scenes.insert_many(conn, [scene])
    return scene


async def test_a_legal_stage_move_returns_the_stored_scene(db: Database) -> None:
    scene = await add_scene(db)
    async with db.transaction() as conn:
        generating = await scenes.set_image(conn, scene.id, ImageStatus.GENERATING, now=5.0)
        again = await scenes.set_image(conn, scene.id, ImageStatus.GENERATING, now=6.0)  # a no-op move is legal
        done = await scenes.set_image(conn, scene.id, ImageStatus.COMPLETE, now=7.0, path="/m/a.png")
        pending = await scenes.set_video(conn, scene.id, VideoStatus.PENDING, now=8.0, error=None)

    stored = await scenes.get(db, scene.id)
    assert generating.image_status is ImageStatus.GENERATING and again.updated_at == 6.0
    assert done.image_status is ImageStatus.COMPLETE and done.image_path == "/m/a.png"
    assert stored == pending
    assert stored is not None and (stored.video_status, stored.image_path, stored.updated_at) == (
        VideoStatus.PENDING, "/m/a.png", 8.0,
    )  # fmt: skip


async def test_an_illegal_stage_move_raises_and_changes_nothing(db: Database) -> None:
    scene = await add_scene(db)
    with pytest.raises(IllegalTransition, match="pending -> complete"):
        async with db.transaction() as conn:
            await scenes.set_image(conn, scene.id, ImageStatus.COMPLETE, now=5.0, path="/m/a.png")
    with pytest.raises(IllegalTransition):
        async with db.transaction() as conn:
            await scenes.set_video(conn, scene.id, VideoStatus.COMPLETE, now=5.0)
    with pytest.raises(LookupError, match="no-such-scene"):
        async with db.transaction() as conn:
            await scenes.set_image(conn, "no-such-scene", ImageStatus.GENERATING, now=5.0)

    assert await scenes.get(db, scene.id) == scene


async def test_an_asset_row_is_created_once(db: Database) -> None:
    scene = await add_scene(db)
    asset = MediaAsset(
        id="job-1", story_id=STORY, scene_id=scene.id, kind=AssetKind.IMAGE, status=AssetStatus.GENERATING,
        model_requested="local-sketch", created_at=1.0, updated_at=1.0,
    )  # fmt: skip
    async with db.transaction() as conn:
        assert await assets.insert_if_missing(conn, asset)
        await assets.set_status(conn, "job-1", AssetStatus.COMPLETED, now=2.0, path="/m/a.png")
        again = asset.model_copy(update={"model_requested": "other", "created_at": 3.0})
        assert not await assets.insert_if_missing(conn, again)

    stored = await assets.get(db, "job-1")
    assert stored is not None and stored.status is AssetStatus.COMPLETED
    assert (stored.model_requested, stored.path, stored.created_at) == ("local-sketch", "/m/a.png", 1.0)


async def test_a_claim_waits_out_another_connections_short_lock(db: Database) -> None:
    queue = JobQueue(db, FakeClock())
    job = await queue.enqueue(JobKind.RENDER_IMAGE, {})
    holding, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold_write_lock(db, holding, release))
    await holding.wait()

    claim = asyncio.create_task(queue.claim("w:1:a"))
    done, _ = await asyncio.wait({claim}, timeout=0.2)
    assert not done  # blocked on the other connection's lock, within busy_timeout
    release.set()
    await holder
    claimed = await asyncio.wait_for(claim, timeout=5)

    assert claimed is not None and claimed.id == job.id
    assert not db.conn.in_transaction
    async with twin(db) as other:  # committed: another connection sees the claim
        assert (await other.fetchone("SELECT status FROM jobs WHERE id = ?", (job.id,)))["status"] == "running"  # type: ignore[index]


async def test_a_claim_on_a_database_locked_too_long_raises_storage_error(db: Database) -> None:
    async with twin(db, busy_timeout_ms=20) as impatient:
        queue = JobQueue(impatient, FakeClock())
        job = await queue.enqueue(JobKind.RENDER_IMAGE, {})
        holding, release = asyncio.Event(), asyncio.Event()
        holder = asyncio.create_task(hold_write_lock(db, holding, release))
        await holding.wait()
        with pytest.raises(StorageError, match="busy"):
            await queue.claim("w:1:a")
        release.set()
        await holder

        assert not impatient.conn.in_transaction
        assert (await queue.counts())["queued"] == 1
        claimed = await queue.claim("w:1:a")
        assert claimed is not None and claimed.id == job.id
