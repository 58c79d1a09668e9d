"""What every job handler shares: its dependencies (PipelineDeps) and the steps between jobs.

The story flows write_story -> render_image per scene -> render_video per scene -> deliver; each
kind is a handler ``async def handler(deps, job, ctx)`` (bot/pipeline/handlers.py lists them).

Every handler is idempotent (the queue is at-least-once): it first looks at what is already done,
and everything a job changes in the database is written by its ``on_commit`` inside the same
transaction that finishes the job. Media files are written atomically before that commit, under
uuid names, so a crash leaves at worst an unreferenced file, never a half-written one. The "in
progress" marks (story WRITING, scene GENERATING and its asset row) commit beside the provider call,
not before it, and a handler calls ``ctx.provider_done()`` after its last provider call, so the
provider's slot goes to the next job while this one stores its results.

Consistency: when the image model takes references, scene 1 is drawn first and its image (or the
user's own reference) goes to every later scene.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.clock import Clock
from bot.domain import (
    AssetKind,
    AssetStatus,
    GenerationJob,
    ImageStatus,
    JobKind,
    MediaAsset,
    Modality,
    RoutingConfig,
    Scene,
    Story,
    StoryStatus,
    VideoStatus,
)
from bot.errors import ModelUnavailableError, ProviderError
from bot.jobs import PermanentFailure, Reschedule
from bot.media.store import MediaStore
from bot.pipeline.story_jobs import StoryJobs
from bot.providers import ProviderSet
from bot.publish.protocol import Publisher
from bot.routing.registry import Registry
from bot.routing.router import ModelRouter, Routed
from bot.settings import Settings
from storage import assets, guilds, scenes, stories
from storage.db import Conn, Database, run_to_completion

T = TypeVar("T")


@dataclass(frozen=True)
class PipelineDeps:
    """Everything a handler may use. A worker's handlers get the publisher that worker delivers with."""

    db: Database
    jobs: StoryJobs
    registry: Registry
    router: ModelRouter
    providers: ProviderSet
    media: MediaStore
    settings: Settings
    clock: Clock
    publisher: Publisher


async def load(deps: PipelineDeps, story_id: str) -> Story:
    story = await stories.get(deps.db, story_id)
    if story is None:
        raise PermanentFailure(f"story {story_id} no longer exists")
    return story


async def load_scene(deps: PipelineDeps, scene_id: str) -> tuple[Story, Scene]:
    scene = await scenes.get(deps.db, scene_id)
    if scene is None:
        raise PermanentFailure(f"scene {scene_id} no longer exists")
    return await load(deps, scene.story_id), scene


async def start_asset(
    deps: PipelineDeps, conn: Conn, job: GenerationJob, scene: Scene, kind: AssetKind, model: str
) -> str:
    """The asset row for this job (its id is the job's), created GENERATING on the first attempt."""
    now = deps.clock.now()
    asset = MediaAsset(
        id=job.id, story_id=scene.story_id, scene_id=scene.id, kind=kind, status=AssetStatus.GENERATING,
        model_requested=model, created_at=now, updated_at=now,
    )  # fmt: skip
    await assets.insert_if_missing(conn, asset)
    return job.id


async def settle_story(deps: PipelineDeps, conn: Conn, story_id: str, cause: str) -> None:
    """Finish the story once every scene has reached an end state (called inside a transaction)."""
    story = await stories.get(conn, story_id)
    if story is None or story.status is not StoryStatus.ILLUSTRATING:
        return
    rows = await scenes.list_for_story(conn, story_id)
    if len(rows) < story.scene_count or not all(_scene_settled(story, s) for s in rows):
        return
    drawn = any(s.image_status is ImageStatus.COMPLETE for s in rows)
    status = StoryStatus.COMPLETE if drawn else StoryStatus.FAILED
    error = None if drawn else "no scene could be drawn"
    await stories.set_status(conn, story_id, status, now=deps.clock.now(), error=error)
    await deps.jobs.announce_end(conn, story, cause)


def anchored(deps: PipelineDeps, story: Story) -> bool:
    """Scene 1 goes first when its image will be the reference for the others."""
    spec = deps.registry.get(story.image_model)
    return bool(spec and spec.supports_references and not story.reference_path and story.scene_count > 1)


async def after_image(
    deps: PipelineDeps, conn: Conn, story: Story, scene: Scene, job: GenerationJob, *, drawn: bool
) -> None:
    """Queue what follows an image job: its clip, and (for the anchor scene) the other scenes.

    A redrawn picture gets a new clip: its key comes from the redraw job, since the first clip's key
    is taken (enqueue would hand back the old job).
    """
    if drawn and story.video_mode:
        await scenes.set_video(conn, scene.id, VideoStatus.PENDING, now=deps.clock.now(), error=None)
        suffix = job.id if job.payload.get("redraw") else "0"
        await deps.jobs.enqueue(conn, JobKind.RENDER_VIDEO, story, f"video:{scene.id}:{suffix}", scene_id=scene.id)
    if scene.index == 0 and anchored(deps, story):
        for other in (await scenes.list_for_story(conn, story.id))[1:]:
            await deps.jobs.enqueue(conn, JobKind.RENDER_IMAGE, story, f"image:{other.id}:0", scene_id=other.id)
    if not (drawn and story.video_mode):  # else the clip just queued keeps the story open
        await settle_story(deps, conn, story.id, f"image:{scene.id}")


# -- routing errors -> queue outcomes ---------------------------------------------------------------


async def routing_for(deps: PipelineDeps, story: Story, modality: Modality) -> RoutingConfig:
    """The story's server's routing for a modality (set with /config), else the operator's."""
    default = deps.settings.routing[modality]
    config = await guilds.get(deps.db, story.guild_id) if story.guild_id is not None else None
    return default if config is None else config.routing_for(modality, default)


async def route(
    deps: PipelineDeps, story: Story, requested: str, modality: Modality, invoke: Any, **needs: Any
) -> Routed[Any]:
    routing = await routing_for(deps, story, modality)
    try:
        return await deps.router.call(requested, modality, invoke, routing=routing, **needs)
    except ProviderError as exc:
        if exc.kind.retry_same_model:
            raise  # the queue retries with backoff
        raise PermanentFailure(exc.plain()) from exc
    except ModelUnavailableError as exc:
        if exc.retry_after is not None:
            raise Reschedule(exc.retry_after, str(exc)) from exc
        raise PermanentFailure(str(exc)) from exc


async def beside_marks(marks: Coroutine[Any, Any, None], call: Awaitable[T]) -> T:
    """Await ``call`` (a provider call) while ``marks`` commits the job's "in progress" marks beside it.

    The marks only tell readers that the work has started, so the provider slot does not wait for
    their commit. Both have ended when this returns or raises: the call's error wins, else a failed
    commit fails the attempt (retried like any other error).
    """
    marking = asyncio.ensure_future(marks)
    try:
        result = await call
    except BaseException:
        with contextlib.suppress(Exception):
            await run_to_completion(marking)
        raise
    await run_to_completion(marking)
    return result


def _scene_settled(story: Story, scene: Scene) -> bool:
    if scene.image_status is ImageStatus.FAILED:
        return True
    if scene.image_status is not ImageStatus.COMPLETE:
        return False
    return not story.video_mode or scene.video_status in (VideoStatus.COMPLETE, VideoStatus.FAILED)
