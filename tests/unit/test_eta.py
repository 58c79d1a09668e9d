"""The storyboard's ETA: what is left of a story, the estimate, its wording, and the history it reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.domain import (
    AssetKind,
    AssetStatus,
    ImageStatus,
    JobKind,
    JobStatus,
    MediaAsset,
    Scene,
    Story,
    StoryStatus,
    VideoStatus,
)
from bot.jobs import JobQueue
from bot.services import storyboards as storyboard
from bot.services.progress import Durations, WorkLeft, estimate_seconds, eta_text, work_left
from bot.services.storyboards import Board
from bot.settings import load_settings
from cogs._render import status_line
from storage import assets as asset_rows
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage.db import Database
from storage.sqlite import SqliteDatabase

NOW = 1_800_000_000.0
PRIORS = Durations()


def story(**fields: Any) -> Story:
    base: dict[str, Any] = {
        "prompt": "a fox who learns to fly",
        "text_model": "local-template",
        "image_model": "local-sketch",
        "video_model": "local-kenburns",
        "video_mode": True,
        "scene_count": 3,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Story(**{**base, **fields})


def scene(owner: Story, index: int, **fields: Any) -> Scene:
    return Scene(story_id=owner.id, index=index, text=f"scene {index}", updated_at=NOW, **fields)


def test_a_story_not_yet_written_has_everything_left() -> None:
    assert work_left(story(), []) == WorkLeft(text=1, images=3, clips=3)
    assert work_left(story(video_mode=False, video_model=None, status=StoryStatus.WRITING), []) == WorkLeft(1, 3, 0)


def test_work_left_counts_unfinished_images_and_clips_but_not_failed_scenes() -> None:
    owner = story(status=StoryStatus.ILLUSTRATING)
    scenes = [
        scene(owner, 0, image_status=ImageStatus.COMPLETE, video_status=VideoStatus.COMPLETE),
        scene(owner, 1, image_status=ImageStatus.COMPLETE, video_status=VideoStatus.GENERATING),
        scene(owner, 2, image_status=ImageStatus.GENERATING),
    ]
    assert work_left(owner, scenes) == WorkLeft(text=0, images=1, clips=2)
    scenes[2] = scene(owner, 2, image_status=ImageStatus.FAILED)
    assert work_left(owner, scenes) == WorkLeft(text=0, images=0, clips=1)


@pytest.mark.parametrize("status", [StoryStatus.COMPLETE, StoryStatus.FAILED, StoryStatus.CANCELLED])
def test_a_finished_story_has_nothing_left_and_no_estimate(status: StoryStatus) -> None:
    work = work_left(story(status=status), [])
    assert work.empty
    assert estimate_seconds(work, jobs_ahead=5, workers=4, lanes=2, durations=PRIORS) is None


def test_estimate_adds_the_queue_ahead_the_text_and_spreads_the_rest_over_the_lanes() -> None:
    work = WorkLeft(text=1, images=4, clips=0)
    alone = estimate_seconds(work, jobs_ahead=0, workers=4, lanes=2, durations=PRIORS)
    assert alone == 15 + 4 * 20 / 2
    behind = estimate_seconds(work, jobs_ahead=8, workers=4, lanes=2, durations=PRIORS)
    assert behind == alone + 8 * 20 / 4  # the jobs ahead are shared by every worker
    one_lane = estimate_seconds(work, jobs_ahead=0, workers=4, lanes=1, durations=PRIORS)
    assert one_lane == 15 + 4 * 20


def test_a_last_clip_takes_at_least_its_image_then_its_clip() -> None:
    work = WorkLeft(images=1, clips=1)
    assert estimate_seconds(work, jobs_ahead=0, workers=8, lanes=8, durations=PRIORS) == 20 + 90
    clip_only = WorkLeft(clips=1)
    assert estimate_seconds(clip_only, jobs_ahead=0, workers=8, lanes=8, durations=Durations(clip=30)) == 30


def test_lanes_never_exceed_the_workers() -> None:
    work = WorkLeft(images=8)
    assert estimate_seconds(work, jobs_ahead=0, workers=2, lanes=10, durations=PRIORS) == 8 * 20 / 2


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, None),
        (0, None),
        (1.2, "about 5 s left"),
        (38, "about 40 s left"),
        (61, "about 1 min left"),
        (125, "about 2 min left"),
        (60 * 89, "about 89 min left"),
        (3 * 3600 + 100, "about 3 h left"),
    ],
)
def test_eta_reads_as_a_rough_figure(seconds: float | None, text: str | None) -> None:
    assert eta_text(seconds) == text


def test_status_line_shows_the_eta_while_work_remains_and_never_once_finished() -> None:
    queued = Board(story(), [], queue_position=3, eta_s=125)
    assert status_line(queued) == "Queued: number 3 in line · about 2 min left"
    owner = story(status=StoryStatus.ILLUSTRATING)
    scenes = [scene(owner, i, image_status=ImageStatus.COMPLETE) for i in range(3)]
    assert status_line(Board(owner, scenes, eta_s=38)).endswith("animated 0 of 3 · about 40 s left")
    assert status_line(Board(owner, scenes)) == "Illustrating: drawn 3 of 3, animated 0 of 3"
    done = story(status=StoryStatus.COMPLETE)
    assert status_line(Board(done, [], eta_s=40)) == "Done: drawn 0 of 3, animated 0 of 3"
    failed = story(status=StoryStatus.FAILED, error="no scene could be drawn")
    assert status_line(Board(failed, [], eta_s=40)) == "Failed: no scene could be drawn"


# --- the history the estimate reads ---------------------------------------------------------------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await SqliteDatabase(tmp_path / "eta.db").open()
    try:
        yield database
    finally:
        await database.close()


async def add_asset(
    db: Database, owner: Story, done: Scene, kind: AssetKind, seconds: float, status: AssetStatus
) -> None:
    async with db.transaction() as conn:
        asset = MediaAsset(story_id=owner.id, scene_id=done.id, kind=kind, model_requested="local",
                           created_at=NOW, updated_at=NOW)  # fmt: skip
        await asset_rows.insert(conn, asset)
        await asset_rows.set_status(conn, asset.id, AssetStatus.GENERATING, now=NOW)
        await asset_rows.set_status(conn, asset.id, status, now=NOW + seconds)


async def test_recent_durations_average_the_completed_work_and_fall_back_to_priors(db: Database) -> None:
    owner = story(status=StoryStatus.ILLUSTRATING)
    scenes = [scene(owner, i) for i in range(3)]
    async with db.transaction() as conn:
        await story_rows.insert(conn, owner)
        await scene_rows.insert_many(conn, scenes)
    assert await storyboard.recent_durations(db) == PRIORS

    for seconds in (4.0, 8.0):
        await add_asset(db, owner, scenes[0], AssetKind.IMAGE, seconds, AssetStatus.COMPLETED)
    await add_asset(db, owner, scenes[0], AssetKind.IMAGE, 500.0, AssetStatus.FAILED)  # failures do not count
    await add_asset(db, owner, scenes[1], AssetKind.VIDEO, 30.0, AssetStatus.COMPLETED)
    assert await asset_rows.mean_durations(db) == {AssetKind.IMAGE: 6.0, AssetKind.VIDEO: 30.0}
    assert await asset_rows.mean_durations(db, last=1) in ({AssetKind.IMAGE: 4.0, AssetKind.VIDEO: 30.0},
                                                           {AssetKind.IMAGE: 8.0, AssetKind.VIDEO: 30.0})  # fmt: skip

    storyboard._durations_cache.clear()  # the cache would otherwise keep the priors for a minute
    assert await storyboard.recent_durations(db) == Durations(text=PRIORS.text, image=6.0, clip=30.0)


async def test_load_board_carries_an_eta_behind_other_stories(db: Database) -> None:
    clock = FakeClock(NOW)
    queue = JobQueue(db, clock)
    settings = load_settings(worker_concurrency=4, provider_concurrency=2, user_concurrency=2)
    stories = [story(owner_id=7), story(owner_id=8)]
    async with db.transaction() as conn:
        for owner in stories:
            await story_rows.insert(conn, owner)
    for owner in stories:
        clock.advance(1)
        await queue.enqueue(JobKind.WRITE_STORY, {"story_id": owner.id}, story_id=owner.id, user_id=owner.owner_id)
    storyboard._durations_cache.clear()

    first = await storyboard.load_board(db, queue, stories[0].id, settings=settings)
    second = await storyboard.load_board(db, queue, stories[1].id, settings=settings)
    plain = await storyboard.load_board(db, queue, stories[1].id)
    assert first is not None and second is not None and plain is not None
    assert (first.queue_position, second.queue_position, plain.queue_position) == (1, 2, 2)
    mine = PRIORS.text + 3 * (PRIORS.image + PRIORS.clip) / 2
    assert first.eta_s == mine
    assert second.eta_s == mine + PRIORS.image / 4  # one job ahead, shared by four workers
    assert plain.eta_s is None  # no settings, no estimate

    claimed = await queue.claim("worker")
    assert claimed is not None and claimed.story_id == stories[0].id
    await queue.finish(claimed.id, "worker", status=JobStatus.SUCCEEDED)
    async with db.transaction() as conn:
        for status in (StoryStatus.WRITING, StoryStatus.ILLUSTRATING, StoryStatus.COMPLETE):
            await story_rows.set_status(conn, stories[0].id, status, now=NOW)
    finished = await storyboard.load_board(db, queue, stories[0].id, settings=settings)
    assert finished is not None and finished.eta_s is None and finished.queue_position is None
