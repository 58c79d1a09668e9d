"""Job handlers: write_story -> render_image per scene -> render_video per scene -> deliver.

Every handler is idempotent (the queue is at-least-once): it first looks at what is already done,
and everything a job changes in the database is written by its ``on_commit`` inside the same
transaction that finishes the job. Media files are written atomically before that commit, under
uuid names, so a crash leaves at worst an unreferenced file, never a half-written one. The "in
progress" marks (story WRITING, scene GENERATING and its asset row) commit beside the provider call,
not before it, and a handler calls ``ctx.provider_done()`` after its last provider call, so the
provider's slot goes to the next job while this one stores its results.

Consistency: when the image model takes references, scene 1 is drawn first and its image (or the
user's own reference) goes to every later scene.

The Pipeline holds the shared helpers and write_story; the picture and clip stages live in
bot/image_stage.py and bot/video_stage.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Coroutine
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
from bot.jobs import JobContext, JobOutcome, JobQueue, PermanentFailure, Reschedule
from bot.jobs.contract import run_to_completion
from bot.media.store import MediaStore
from bot.pipeline.video import VideoStage
from bot.providers import ProviderSet
from bot.providers.base import StoryRequest
from bot.publish.protocol import Publisher
from bot.routing.registry import Registry
from bot.routing.router import ModelRouter, Routed
from bot.settings import Settings
from storage import assets, guilds, scenes, stories
from storage import jobs as job_rows
from storage.db import Conn, Database

log = logging.getLogger(__name__)

T = TypeVar("T")

# The publishers a deliver job can name: cogs.publisher.DiscordPublisher.name and OfflinePublisher.name.
DISCORD_PUBLISHER = "discord"
OFFLINE_PUBLISHER = "offline"


def delivery_publisher(story: Story) -> str:
    """Which publisher must make a story's deliveries: Discord's for a story asked for in a channel, else the
    storybook's. Stored on the job, so only a process with that publisher claims it (storage.jobs)."""
    return DISCORD_PUBLISHER if story.channel_id is not None else OFFLINE_PUBLISHER


class Pipeline:
    def __init__(
        self,
        *,
        db: Database,
        queue: JobQueue,
        registry: Registry,
        router: ModelRouter,
        providers: ProviderSet,
        media: MediaStore,
        publisher: Publisher,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.db = db
        self.queue = queue
        self.registry = registry
        self.router = router
        self.providers = providers
        self.media = media
        self.publisher = publisher
        self.settings = settings
        self.clock = clock
        self.video = VideoStage(self)
        from bot.pipeline.image import ImageStage

        self.image = ImageStage(self)

    def handlers(self) -> dict[JobKind, Any]:
        from bot.pipeline.deliver import deliver

        return {
            JobKind.WRITE_STORY: self.write_story,
            JobKind.RENDER_IMAGE: self.image.render,
            JobKind.RENDER_VIDEO: self.video.render,
            JobKind.DELIVER: lambda job, ctx: deliver(self, job, ctx),
        }

    # -- shared helpers ---------------------------------------------------------------------------

    async def load(self, story_id: str) -> Story:
        story = await stories.get(self.db, story_id)
        if story is None:
            raise PermanentFailure(f"story {story_id} no longer exists")
        return story

    async def load_scene(self, scene_id: str) -> tuple[Story, Scene]:
        scene = await scenes.get(self.db, scene_id)
        if scene is None:
            raise PermanentFailure(f"scene {scene_id} no longer exists")
        return await self.load(scene.story_id), scene

    def provider_of(self, model_key: str | None) -> str | None:
        spec = self.registry.get(model_key) if model_key else None
        return spec.provider if spec else None

    async def enqueue(self, conn: Conn, kind: JobKind, story: Story, key: str, **payload: Any) -> GenerationJob:
        """Queue a job (inside the caller's transaction); a key already in the queue returns that job.

        A delivery names its publisher and no provider: the provider limits are for model calls only.
        """
        model = {JobKind.RENDER_IMAGE: story.image_model, JobKind.RENDER_VIDEO: story.video_model}.get(kind)
        return await self.queue.enqueue(
            kind,
            {"story_id": story.id, **payload},
            idempotency_key=key,
            story_id=story.id,
            user_id=story.owner_id,
            provider=self.provider_of(model),
            publisher=delivery_publisher(story) if kind is JobKind.DELIVER else None,
            conn=conn,
        )

    async def enqueue_delivery(self, conn: Conn, story: Story, what: str, key: str, scene_id: str | None) -> None:
        await self.enqueue(conn, JobKind.DELIVER, story, f"deliver:{key}", what=what, scene_id=scene_id)

    async def announce_end(self, conn: Conn, story: Story, cause: str) -> None:
        """Queue the story's closing note, unless one was queued already (a retried scene reopened the story)."""
        if await job_rows.any_with_key_prefix(conn, f"deliver:story:{story.id}:"):
            return
        await self.enqueue_delivery(conn, story, "story", f"story:{story.id}:{cause}", None)

    async def start_asset(self, conn: Conn, job: GenerationJob, scene: Scene, kind: AssetKind, model: str) -> str:
        """The asset row for this job (its id is the job's), created GENERATING on the first attempt."""
        now = self.clock.now()
        asset = MediaAsset(
            id=job.id, story_id=scene.story_id, scene_id=scene.id, kind=kind, status=AssetStatus.GENERATING,
            model_requested=model, created_at=now, updated_at=now,
        )  # fmt: skip
        await assets.insert_if_missing(conn, asset)
        return job.id

    async def settle_story(self, conn: Conn, story_id: str, cause: str) -> None:
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
        await stories.set_status(conn, story_id, status, now=self.clock.now(), error=error)
        await self.announce_end(conn, story, cause)

    # -- write_story ------------------------------------------------------------------------------

    async def write_story(self, job: GenerationJob, ctx: JobContext) -> JobOutcome | None:
        story = await self.load(job.payload["story_id"])
        if story.status is not StoryStatus.QUEUED and story.status is not StoryStatus.WRITING:
            return None  # already written by an earlier run of this job

        async def mark_writing() -> None:
            async with self.db.transaction() as conn:
                await stories.set_status(conn, story.id, StoryStatus.WRITING, now=self.clock.now())

        request = StoryRequest(model="", prompt=story.prompt, scene_count=story.scene_count, style=story.style)
        call = self.route(
            story,
            story.text_model,
            Modality.TEXT,
            lambda spec: self.providers.text(spec.provider).write_story(
                request.model_copy(update={"model": spec.api_model})
            ),
        )
        routed = await _beside_marks(mark_writing(), call)
        ctx.provider_done()
        draft = routed.value
        now = self.clock.now()
        new_scenes = [
            Scene(story_id=story.id, index=i, text=text, image_model_requested=story.image_model, updated_at=now)
            for i, text in enumerate(draft.scenes[: story.scene_count])
        ]
        anchored = self.anchored(story)

        async def on_commit(conn: Conn) -> None:
            await stories.update(conn, story.id, now=now, title=draft.title, bible=draft.bible)
            await stories.set_status(conn, story.id, StoryStatus.ILLUSTRATING, now=now)
            await scenes.insert_many(conn, new_scenes)
            first = new_scenes[:1] if anchored else new_scenes
            for scene in first:
                await self.enqueue(conn, JobKind.RENDER_IMAGE, story, f"image:{scene.id}:0", scene_id=scene.id)
            await self.enqueue_delivery(conn, story, "written", f"written:{story.id}", None)

        return JobOutcome(
            result={"title": draft.title, "model_used": routed.model_used},
            warnings=routed.warnings,
            fallback=routed.fallback,
            on_commit=on_commit,
        )

    def anchored(self, story: Story) -> bool:
        """Scene 1 goes first when its image will be the reference for the others."""
        spec = self.registry.get(story.image_model)
        return bool(spec and spec.supports_references and not story.reference_path and story.scene_count > 1)

    # -- what follows an image -----------------------------------------------------------------

    async def after_image(self, conn: Conn, story: Story, scene: Scene, job: GenerationJob, *, drawn: bool) -> None:
        """Queue what follows an image job: its clip, and (for the anchor scene) the other scenes.

        A redrawn picture gets a new clip: its key comes from the redraw job, since the first clip's key
        is taken (enqueue would hand back the old job).
        """
        if drawn and story.video_mode:
            await scenes.set_video(conn, scene.id, VideoStatus.PENDING, now=self.clock.now(), error=None)
            suffix = job.id if job.payload.get("redraw") else "0"
            await self.enqueue(conn, JobKind.RENDER_VIDEO, story, f"video:{scene.id}:{suffix}", scene_id=scene.id)
        if scene.index == 0 and self.anchored(story):
            for other in (await scenes.list_for_story(conn, story.id))[1:]:
                await self.enqueue(conn, JobKind.RENDER_IMAGE, story, f"image:{other.id}:0", scene_id=other.id)
        if not (drawn and story.video_mode):  # else the clip just queued keeps the story open
            await self.settle_story(conn, story.id, f"image:{scene.id}")

    # -- routing errors -> queue outcomes ---------------------------------------------------------

    async def routing_for(self, story: Story, modality: Modality) -> RoutingConfig:
        """The story's server's routing for a modality (set with /config), else the operator's."""
        default = self.settings.routing[modality]
        config = await guilds.get(self.db, story.guild_id) if story.guild_id is not None else None
        return default if config is None else config.routing_for(modality, default)

    async def route(self, story: Story, requested: str, modality: Modality, invoke: Any, **needs: Any) -> Routed[Any]:
        routing = await self.routing_for(story, modality)
        try:
            return await self.router.call(requested, modality, invoke, routing=routing, **needs)
        except ProviderError as exc:
            if exc.kind.retry_same_model:
                raise  # the queue retries with backoff
            raise PermanentFailure(exc.plain()) from exc
        except ModelUnavailableError as exc:
            if exc.retry_after is not None:
                raise Reschedule(exc.retry_after, str(exc)) from exc
            raise PermanentFailure(str(exc)) from exc

    async def on_give_up(self, job: GenerationJob, error: str, conn: Conn) -> None:
        """A job failed for good: mark what it was making as failed, inside the same transaction."""
        from bot.pipeline.give_up import record_give_up

        await record_give_up(self, job, error, conn)


async def _beside_marks(marks: Coroutine[Any, Any, None], call: Awaitable[T]) -> T:
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
