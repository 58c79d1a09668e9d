"""write_story: the text model writes the title, the bible and the scenes; the first pictures are queued."""

from __future__ import annotations

from bot.domain import GenerationJob, JobKind, Modality, Scene, StoryStatus
from bot.jobs import JobContext, JobOutcome
from bot.pipeline.flow import PipelineDeps, anchored, beside_marks, load, route
from bot.providers.base import StoryRequest
from storage import scenes, stories
from storage.db import Conn


async def write_story(deps: PipelineDeps, job: GenerationJob, ctx: JobContext) -> JobOutcome | None:
    story = await load(deps, job.payload["story_id"])
    if story.status is not StoryStatus.QUEUED and story.status is not StoryStatus.WRITING:
        return None  # already written by an earlier run of this job

    async def mark_writing() -> None:
        async with deps.db.transaction() as conn:
            await stories.set_status(conn, story.id, StoryStatus.WRITING, now=deps.clock.now())

    request = StoryRequest(model="", prompt=story.prompt, scene_count=story.scene_count, style=story.style)
    call = route(
        deps,
        story,
        story.text_model,
        Modality.TEXT,
        lambda spec: deps.providers.text(spec.provider).write_story(
            request.model_copy(update={"model": spec.api_model})
        ),
    )
    routed = await beside_marks(mark_writing(), call)
    ctx.provider_done()
    draft = routed.value
    now = deps.clock.now()
    new_scenes = [
        Scene(story_id=story.id, index=i, text=text, image_model_requested=story.image_model, updated_at=now)
        for i, text in enumerate(draft.scenes[: story.scene_count])
    ]
    first = new_scenes[:1] if anchored(deps, story) else new_scenes

    async def on_commit(conn: Conn) -> None:
        await stories.update(conn, story.id, now=now, title=draft.title, bible=draft.bible)
        await stories.set_status(conn, story.id, StoryStatus.ILLUSTRATING, now=now)
        await scenes.insert_many(conn, new_scenes)
        for scene in first:
            await deps.jobs.enqueue(conn, JobKind.RENDER_IMAGE, story, f"image:{scene.id}:0", scene_id=scene.id)
        await deps.jobs.enqueue_delivery(conn, story, "written", f"written:{story.id}", None)

    return JobOutcome(
        result={"title": draft.title, "model_used": routed.model_used},
        warnings=routed.warnings,
        fallback=routed.fallback,
        on_commit=on_commit,
    )
