"""Retry a scene's failed clip, or redraw its picture: the checks and the re-queue, in one transaction.

The Retry and Redraw buttons (cogs/_buttons.py) call this; nothing here knows Discord, so the presser
arrives as plain values. Everything is decided inside one ``BEGIN IMMEDIATE`` transaction: two presses
racing each other queue one render (the second finds the scene already pending), and a refusal, a
quota included, leaves nothing changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from bot.clock import Clock
from bot.domain import ImageStatus, JobKind, Scene, Story, StoryStatus, VideoStatus, new_id
from bot.errors import ActionRefused, LimitExceeded
from bot.pipeline.story_jobs import StoryJobs
from bot.services.quotas import Quotas
from storage import deliveries
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage.db import Conn, Database

SCENE_ID = re.compile(r"[0-9a-f]{32}")  # bot.domain.new_id(): uuid4 hex
IN_FLIGHT_IMAGE = (ImageStatus.PENDING, ImageStatus.GENERATING)
IN_FLIGHT_VIDEO = (VideoStatus.PENDING, VideoStatus.GENERATING)


class Verdict(StrEnum):
    QUEUED = "queued"  # the render is queued
    BUSY = "busy"  # it is being made already: nothing queued
    REFUSED = "refused"  # not allowed, not possible now, or over a limit: nothing changed


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    text: str  # plain words for the presser
    story: Story | None = None
    scene: Scene | None = None  # as it is after the press
    job_id: str | None = None

    @property
    def queued(self) -> bool:
        return self.verdict is Verdict.QUEUED


@dataclass(frozen=True)
class _Presser:
    guild_id: int | None
    user_id: int
    can_manage: bool  # Manage Messages in the channel


class SceneActions:
    def __init__(self, db: Database, jobs: StoryJobs, clock: Clock, quotas: Quotas) -> None:
        self.db = db
        self.jobs = jobs
        self.clock = clock
        self.quotas = quotas

    async def retry_video(self, scene_id: str, *, guild_id: int | None, user_id: int, can_manage: bool) -> Outcome:
        """Queue a new clip for a scene whose clip failed."""
        presser = _Presser(guild_id, user_id, can_manage)
        try:
            async with self.db.transaction() as conn:
                story, scene = await self._load(conn, scene_id, presser, "retry this clip")
                _check_retry(story, scene)
                await self.quotas.charge(conn, story, images=0, videos=1)
                now = self.clock.now()
                scene = await scene_rows.set_video(conn, scene.id, VideoStatus.PENDING, now=now, error=None)
                story = await _reopen(conn, story, now, self.quotas)
                job = await self.jobs.enqueue(
                    conn, JobKind.RENDER_VIDEO, story, f"video:{scene.id}:retry:{new_id()}", scene_id=scene.id
                )
        except ActionRefused as stop:
            return Outcome(Verdict.BUSY if stop.busy else Verdict.REFUSED, str(stop))
        except LimitExceeded as exc:
            return Outcome(Verdict.REFUSED, f"the clip cannot be retried: {exc}")
        text = f"retrying scene {scene.index + 1}'s clip; it will appear here when it is ready"
        return Outcome(Verdict.QUEUED, text, story, scene, job.id)

    async def redraw_image(self, scene_id: str, *, guild_id: int | None, user_id: int, can_manage: bool) -> Outcome:
        """Queue a new picture for a scene (a drawn one, or one that failed); in video mode its clip follows."""
        presser = _Presser(guild_id, user_id, can_manage)
        try:
            async with self.db.transaction() as conn:
                story, scene = await self._load(conn, scene_id, presser, "redraw this picture")
                _check_redraw(story, scene)
                await self.quotas.charge(conn, story, images=1, videos=1 if story.video_mode else 0)
                now = self.clock.now()
                scene = await scene_rows.set_image(conn, scene.id, ImageStatus.PENDING, now=now, error=None)
                story = await _reopen(conn, story, now, self.quotas)
                job = await self.jobs.enqueue(
                    conn, JobKind.RENDER_IMAGE, story, f"image:{scene.id}:redraw:{new_id()}",
                    scene_id=scene.id, redraw=True,
                )  # fmt: skip
        except ActionRefused as stop:
            return Outcome(Verdict.BUSY if stop.busy else Verdict.REFUSED, str(stop))
        except LimitExceeded as exc:
            return Outcome(Verdict.REFUSED, f"the picture cannot be redrawn: {exc}")
        text = f"redrawing scene {scene.index + 1}'s picture; it will appear here when it is ready"
        return Outcome(Verdict.QUEUED, text, story, scene, job.id)

    async def post_again(self, story_id: str, *, guild_id: int | None, user_id: int, can_manage: bool) -> Outcome:
        """Make every parked (or given up) delivery of a story due now, and let its storyboard be edited again.

        Pressed on the storyboard, or in the direct message that told the owner (``guild_id`` None there).
        """
        if not SCENE_ID.fullmatch(story_id):
            return Outcome(Verdict.REFUSED, "this button was not made by storybot; nothing was changed")
        async with self.db.transaction() as conn:
            story = await story_rows.get(conn, story_id)
            if story is None:
                return Outcome(Verdict.REFUSED, "this story no longer exists; nothing was changed")
            if guild_id is not None and story.guild_id != guild_id:
                return Outcome(Verdict.REFUSED, "this button belongs to a story in another server; nothing was changed")
            if story.owner_id != user_id and not can_manage:
                return Outcome(
                    Verdict.REFUSED, "only the story's owner or a member with Manage Messages can post again"
                )
            now = self.clock.now()
            woken = await deliveries.wake_parked(conn, story.id, now=now)
            await story_rows.update(conn, story.id, now=now, undelivered=None, parked_since=None)
        text = f"posting again {woken} waiting message{'s' * (woken != 1)}" if woken else "refreshing the storyboard"
        return Outcome(Verdict.QUEUED, text, story)

    async def _load(self, conn: Conn, scene_id: str, presser: _Presser, what: str) -> tuple[Story, Scene]:
        """The scene and its story, if this presser may act on them from where they pressed."""
        if not SCENE_ID.fullmatch(scene_id):
            raise ActionRefused("this button was not made by storybot; nothing was changed")
        scene = await scene_rows.get(conn, scene_id)
        story = await story_rows.get(conn, scene.story_id) if scene is not None else None
        if scene is None or story is None:
            raise ActionRefused("this scene no longer exists (its story was deleted); nothing was changed")
        if story.guild_id is None or story.guild_id != presser.guild_id:
            raise ActionRefused("this button belongs to a story in another server; nothing was changed")
        if story.owner_id != presser.user_id and not presser.can_manage:
            raise ActionRefused(f"only the story's owner or a member with Manage Messages can {what}")
        if story.status is StoryStatus.CANCELLED:
            raise ActionRefused("this story was cancelled; nothing was changed")
        return story, scene


def _check_retry(story: Story, scene: Scene) -> None:
    number = scene.index + 1
    if not story.video_mode:
        raise ActionRefused("this story has no clips; nothing was changed")
    if scene.video_status in IN_FLIGHT_VIDEO:
        raise ActionRefused(f"scene {number}'s clip is already being made; it will appear here when ready", busy=True)
    if scene.image_status in IN_FLIGHT_IMAGE:
        raise ActionRefused(f"scene {number}'s picture is being redrawn; a new clip follows it", busy=True)
    if scene.image_status is not ImageStatus.COMPLETE or not scene.image_path:
        raise ActionRefused(f"scene {number} has no picture to animate; redraw the picture first")
    if scene.video_status is VideoStatus.COMPLETE:
        raise ActionRefused(f"scene {number}'s clip is already done; nothing was changed")
    if scene.video_status is not VideoStatus.FAILED:
        raise ActionRefused(f"scene {number} has no clip to retry; nothing was changed")


def _check_redraw(story: Story, scene: Scene) -> None:
    number = scene.index + 1
    if scene.image_status in IN_FLIGHT_IMAGE:
        raise ActionRefused(
            f"scene {number}'s picture is already being drawn; it will appear here when ready", busy=True
        )
    if story.video_mode and scene.video_status in IN_FLIGHT_VIDEO:
        raise ActionRefused(f"scene {number}'s clip is still being made; redraw the picture once it is done", busy=True)


async def _reopen(conn: Conn, story: Story, now: float, quotas: Quotas) -> Story:
    """A finished story goes back to illustrating until the new render settles it again: it is being made
    again, so it counts against its owner's running-stories limit (LimitExceeded when that is full)."""
    if story.status not in (StoryStatus.COMPLETE, StoryStatus.FAILED):
        return story
    await quotas.check_running(conn, story)
    await story_rows.set_status(conn, story.id, StoryStatus.ILLUSTRATING, now=now)
    return story.model_copy(update={"status": StoryStatus.ILLUSTRATING, "error": None, "updated_at": now})
