"""What happens when a job fails for good: the thing it was making is marked failed, atomically.

Called by the worker inside the transaction that marks the job failed or dead.
"""

from __future__ import annotations

from bot.domain import AssetStatus, GenerationJob, ImageStatus, JobKind, StoryStatus, VideoStatus
from bot.pipeline.deliver import mark_lost
from bot.pipeline.flow import PipelineDeps, after_image, settle_story
from storage import assets, scenes, stories
from storage.db import Conn

MAX_ERROR_CHARS = 300


async def record_give_up(deps: PipelineDeps, job: GenerationJob, error: str, conn: Conn) -> None:
    error = error[:MAX_ERROR_CHARS]
    now = deps.clock.now()
    asset = await assets.get(conn, job.id)
    if asset is not None and asset.status in (AssetStatus.PENDING, AssetStatus.GENERATING):
        await assets.set_status(conn, job.id, AssetStatus.FAILED, now=now, generation_metadata={"error": error})
    story_id = job.payload.get("story_id")
    if job.kind is JobKind.DELIVER and story_id:
        await mark_lost(conn, story_id, f"some messages could not be posted: {error}", now=now)
        return
    if job.kind is JobKind.WRITE_STORY and story_id:
        story = await stories.get(conn, story_id)
        if story is not None and story.status in (StoryStatus.QUEUED, StoryStatus.WRITING):
            await stories.set_status(conn, story_id, StoryStatus.FAILED, now=now, error=error)
            await deps.jobs.announce_end(conn, story, job.id)
        return
    scene_id = job.payload.get("scene_id")
    scene = await scenes.get(conn, scene_id) if scene_id else None
    story = await stories.get(conn, scene.story_id) if scene else None
    if scene is None or story is None:
        return
    if job.kind is JobKind.RENDER_IMAGE and scene.image_status in (ImageStatus.PENDING, ImageStatus.GENERATING):
        await scenes.set_image(conn, scene.id, ImageStatus.FAILED, now=now, error=error)
        await deps.jobs.enqueue_delivery(conn, story, "image_failed", f"image_failed:{scene.id}:{job.id}", scene.id)
        await after_image(deps, conn, story, scene, job, drawn=False)
    elif job.kind is JobKind.RENDER_VIDEO and scene.video_status in (VideoStatus.PENDING, VideoStatus.GENERATING):
        await scenes.set_video(conn, scene.id, VideoStatus.FAILED, now=now, error=error)
        await deps.jobs.enqueue_delivery(conn, story, "video_failed", f"video_failed:{scene.id}:{job.id}", scene.id)
        await settle_story(deps, conn, story.id, f"video_failed:{scene.id}")
