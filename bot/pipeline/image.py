"""render_image: draw one scene's picture, store it atomically, and queue what follows it.

Its own concerns: the image prompt, the per-scene seed, the reference images that keep scenes
consistent (the user's own reference, or scene 1's picture for every later scene), and trimming the
request to what each model accepts. The steps it shares with the other handlers are in flow.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.domain import AssetKind, AssetStatus, GenerationJob, ImageStatus, Modality, Scene, Story
from bot.jobs import JobContext, JobOutcome, PermanentFailure
from bot.media.probe import PICTURE_FORMATS
from bot.pipeline.flow import PipelineDeps, after_image, anchored, beside_marks, load_scene, route, start_asset
from bot.providers.base import ImageRequest, ImageResult, ReferenceImage
from bot.routing.registry import ModelSpec
from bot.routing.router import Routed
from storage import assets, scenes
from storage.db import Conn


async def render_image(deps: PipelineDeps, job: GenerationJob, ctx: JobContext) -> JobOutcome | None:
    story, scene = await load_scene(deps, job.payload["scene_id"])
    if scene.image_status is ImageStatus.COMPLETE:
        return None

    async def mark_drawing() -> None:
        async with deps.db.transaction() as conn:
            if scene.image_status is ImageStatus.PENDING:
                await scenes.set_image(conn, scene.id, ImageStatus.GENERATING, now=deps.clock.now())
            await start_asset(deps, conn, job, scene, AssetKind.IMAGE, story.image_model)

    routed = await beside_marks(mark_drawing(), _draw(deps, story, scene, job))
    ctx.provider_done()
    # The provider guard decoded the picture and held it to the type it claims (bot.providers.guard).
    ext = _EXTENSIONS.get(routed.value.mime_type, "png")
    stored = await deps.media.write_bytes(story.id, routed.value.data, ext)
    now = deps.clock.now()

    async def on_commit(conn: Conn) -> None:
        await assets.set_status(
            conn, job.id, AssetStatus.COMPLETED, now=now, model_used=routed.model_used,
            fallback_occurred=routed.fallback, path=stored.ref, bytes=stored.bytes, sha256=stored.sha256,
            generation_metadata=_metadata(routed, job, routed.value.request_id),
        )  # fmt: skip
        await scenes.set_image(
            conn, scene.id, ImageStatus.COMPLETE, now=now, path=stored.ref, model_used=routed.model_used
        )
        await deps.jobs.enqueue_delivery(conn, story, "image", f"image:{scene.id}:{job.id}", scene.id)
        await after_image(deps, conn, story, scene, job, drawn=True)

    return JobOutcome(
        result={"path": stored.ref, "model_used": routed.model_used},
        warnings=routed.warnings,
        fallback=routed.fallback,
        on_commit=on_commit,
    )


async def _draw(deps: PipelineDeps, story: Story, scene: Scene, job: GenerationJob) -> Routed[ImageResult]:
    request = ImageRequest(
        model="",
        prompt=_image_prompt(story, scene),
        scene_text=scene.text,
        references=await _references(deps, story, scene),
        seed=_image_seed(story, scene, job),
    )
    return await route(
        deps,
        story,
        story.image_model,
        Modality.IMAGE,
        lambda spec: deps.providers.image(spec.provider).generate_image(_for_model(request, spec)),
        needs_references=bool(story.reference_path),
    )


async def _references(deps: PipelineDeps, story: Story, scene: Scene) -> list[ReferenceImage]:
    if story.reference_path:
        return [await _reference(deps, story.reference_path, "the story's reference picture")]
    if scene.index == 0 or not anchored(deps, story):
        return []
    first = (await scenes.list_for_story(deps.db, story.id))[0]
    if first.image_status is ImageStatus.COMPLETE and first.image_path:
        return [await _reference(deps, first.image_path, "scene 1's picture")]
    return []


async def _reference(deps: PipelineDeps, ref: str, what: str) -> ReferenceImage:
    """The picture a row names, read from this host (fetched from object storage first when it is there)."""
    path = await deps.media.local_file(ref)
    if path is None:
        raise PermanentFailure(f"{what} is no longer in the media storage")
    return await asyncio.to_thread(_read_reference, path)


_EXTENSIONS = {kind.mime_type: kind.ext for kind in PICTURE_FORMATS.values()}


def _image_seed(story: Story, scene: Scene, job: GenerationJob) -> str:
    """The same scene draws the same picture, except when redrawn: a redraw asks for a new one."""
    seed = f"{story.id}:{scene.index}"
    return f"{seed}:{job.id}" if job.payload.get("redraw") else seed


def _image_prompt(story: Story, scene: Scene) -> str:
    parts = [
        story.bible or "",
        f"Style: {story.style}." if story.style else "",
        f"Scene {scene.index + 1}: {scene.text}",
    ]
    return "\n\n".join(part for part in parts if part)


def _for_model(request: ImageRequest, spec: ModelSpec) -> ImageRequest:
    """The request as one model takes it: its API id, and only as many references as it accepts."""
    references = request.references[: spec.max_reference_images] if spec.supports_references else []
    return request.model_copy(update={"model": spec.api_model, "references": references})


def _read_reference(path: Path) -> ReferenceImage:
    data = path.read_bytes()
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/webp" if data[8:12] == b"WEBP" else "image/png"
    return ReferenceImage(data=data, mime_type=mime)


def _metadata(routed: Routed[Any], job: GenerationJob, request_id: str | None) -> dict[str, Any]:
    return {
        "latency_ms": round(routed.latency_ms, 1),
        "attempts": routed.attempts,
        "job_attempt": job.attempts,
        "provider_request_id": request_id,
        "warnings": routed.warnings,
    }
