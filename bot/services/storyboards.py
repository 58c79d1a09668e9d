"""What a story's storyboard shows, and the records of where its Discord messages went.

No Discord here: cogs/_publisher.py and cogs/_targets.py decide what to post and where; this module reads
the story for them (its scenes, its place in the queue, an ETA) and records what they did: the storyboard
message, the story's thread, a move to the channel, a delivery that waits for a permission, a scene's
message. Each record is one short write transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bot.clock import Clock
from bot.domain import AssetKind, JobKind, JobStatus, Scene, Story, StoryStatus
from bot.jobs import JobQueue
from bot.services.progress import Durations, WorkLeft, estimate_seconds, work_left
from bot.settings import Settings
from storage import assets as asset_rows
from storage import jobs as job_rows
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage.db import Database

DURATIONS_TTL_S = 60.0  # recent averages move slowly; every storyboard edit need not re-read them
_durations_cache: dict[str, tuple[float, Durations]] = {}


@dataclass(frozen=True)
class Board:
    """What the storyboard shows: the story, its scenes, its place in the queue (None when not waiting) and
    the estimated seconds left (None when unknown or finished)."""

    story: Story
    scenes: list[Scene]
    queue_position: int | None = None
    eta_s: float | None = None


class Storyboards:
    def __init__(self, db: Database, queue: JobQueue, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.queue = queue
        self.settings = settings
        self.clock = clock

    async def board(self, story_id: str) -> Board | None:
        """The storyboard's data with its ETA; None once the story was deleted."""
        return await load_board(self.db, self.queue, story_id, settings=self.settings)

    async def story(self, story_id: str) -> Story | None:
        return await story_rows.get(self.db, story_id)

    async def attach(self, story_id: str, message_id: int) -> None:
        """Remember the story's storyboard message (posted by /story new, or anew by the publisher)."""
        await self._update(story_id, storyboard_message_id=message_id)

    async def record_thread(self, story_id: str, thread_id: int | None) -> None:
        """The story's thread (None: it was deleted, and the next post starts a new one)."""
        await self._update(story_id, thread_id=thread_id)

    async def post_in_channel(self, story_id: str, note: str) -> None:
        """From now on the story is posted in its channel; ``note`` says why on the storyboard."""
        await self._update(story_id, post_in_channel=True, delivery_note=note)

    async def mark_undelivered(self, story_id: str, reason: str) -> None:
        """Part of the story waits to be posted until ``reason`` (a missing permission) is fixed."""
        await self._update(story_id, undelivered=reason)

    async def record_message(self, scene_id: str, kind: str, message_id: int) -> None:
        """The message that shows a scene's picture or clip."""
        async with self.db.transaction() as conn:
            await scene_rows.set_message_id(conn, scene_id, kind=kind, message_id=message_id, now=self.clock.now())

    async def _update(self, story_id: str, **fields: object) -> None:
        async with self.db.transaction() as conn:
            await story_rows.update(conn, story_id, now=self.clock.now(), **fields)


async def load_board(db: Database, queue: JobQueue, story_id: str, *, settings: Settings | None = None) -> Board | None:
    """The storyboard's data; with ``settings`` (for the worker limits) it carries an ETA as well."""
    story = await story_rows.get(db, story_id)
    if story is None:
        return None
    scenes = await scene_rows.list_for_story(db, story_id)
    place = 0
    if story.status is StoryStatus.QUEUED or settings is not None:
        queued = [job for job in await queue.list_for_story(story_id) if job.status is JobStatus.QUEUED]
        if queued:  # the story's job nearest the front: the queue orders by (run_after, id)
            place = await queue.queue_position(min(queued, key=lambda job: (job.run_after, job.id)).id)
    position = (place or None) if story.status is StoryStatus.QUEUED else None
    eta = None
    if settings is not None:
        eta = await _estimate(db, story, work_left(story, scenes), max(place - 1, 0), settings)
    return Board(story=story, scenes=scenes, queue_position=position, eta_s=eta)


async def _estimate(db: Database, story: Story, work: WorkLeft, jobs_ahead: int, settings: Settings) -> float | None:
    if work.empty:
        return None
    workers = settings.worker_concurrency
    lanes = min(workers, settings.provider_concurrency)
    if story.owner_id is not None:
        lanes = min(lanes, settings.user_concurrency)
    return estimate_seconds(
        work, jobs_ahead=jobs_ahead, workers=workers, lanes=lanes, durations=await recent_durations(db)
    )


async def recent_durations(db: Database) -> Durations:
    """Average durations of recent work, per kind, falling back to the priors; cached for a minute."""
    cached = _durations_cache.get(db.where)
    if cached is not None and time.monotonic() - cached[0] < DURATIONS_TTL_S:
        return cached[1]
    priors = Durations()
    means = await asset_rows.mean_durations(db)
    text = await job_rows.mean_duration(db, JobKind.WRITE_STORY.value)
    durations = Durations(
        text=priors.text if text is None else text,
        image=means.get(AssetKind.IMAGE, priors.image),
        clip=means.get(AssetKind.VIDEO, priors.clip),
    )
    _durations_cache[db.where] = (time.monotonic(), durations)
    return durations
