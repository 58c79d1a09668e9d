"""The storyboard's data and its throttled edits.

Edits go through the bot's channel-message route (not the interaction token), so they keep working
after the 15-minute token expires. Each story gets at most one edit per ``interval_s``: requests that
arrive meanwhile are coalesced into the next edit, which always renders the newest state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.clock import Clock
from bot.domain import AssetKind, JobKind, JobStatus, Story, StoryStatus
from bot.jobs import JobQueue
from bot.services.progress import Durations, WorkLeft, estimate_seconds, work_left
from bot.settings import Settings
from cogs._render import Board
from storage import assets as asset_rows
from storage import jobs as job_rows
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage.db import Database

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
_FORGET_AFTER = 1000  # stories remembered for throttling before old entries are dropped
DURATIONS_TTL_S = 60.0  # recent averages move slowly; every storyboard edit need not re-read them
_durations_cache: dict[str, tuple[float, Durations]] = {}


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
    cached = _durations_cache.get(db.path)
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
    _durations_cache[db.path] = (time.monotonic(), durations)
    return durations


class StoryboardUpdater:
    """Runs ``edit(story_id)`` for requested stories, no more than once per ``interval_s`` per story."""

    def __init__(
        self, edit: Callable[[str], Awaitable[None]], clock: Clock, interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        self._edit = edit
        self._clock = clock
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.edits = 0

    def request(self, story_id: str) -> None:
        """Ask for an edit; returns at once. The edit happens now or when the story's interval has passed."""
        self._dirty.add(story_id)
        if story_id not in self._tasks:
            self._tasks[story_id] = asyncio.create_task(self._run(story_id), name=f"storyboard:{story_id[:8]}")

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def _run(self, story_id: str) -> None:
        try:
            while story_id in self._dirty:
                wait = self._last.get(story_id, float("-inf")) + self.interval_s - self._clock.now()
                if wait > 0:
                    await self._clock.sleep(wait)
                self._dirty.discard(story_id)
                self._last[story_id] = self._clock.now()
                self.edits += 1
                try:
                    await self._edit(story_id)
                except Exception:
                    log.warning("storyboard edit for story %s failed", story_id, exc_info=True)
        finally:
            self._tasks.pop(story_id, None)
            self._forget_old()

    def _forget_old(self) -> None:
        if len(self._last) <= _FORGET_AFTER:
            return
        horizon = self._clock.now() - self.interval_s
        for story_id in [key for key, at in self._last.items() if at < horizon]:
            del self._last[story_id]

    async def drain(self) -> None:
        """Wait for every pending edit (used on shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dirty.clear()
