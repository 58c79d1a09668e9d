"""render_video: submit once, save the provider's request id at once, poll by rescheduling, download.

No worker slot is held while a provider renders: between polls the job sits in the queue with a
``run_after``. A crash anywhere after submit resumes polling the saved id, so no second video is
paid for. The download is streamed to a temp file, checked to be a playable MP4, then renamed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from bot.domain import AssetKind, AssetStatus, GenerationJob, ImageStatus, Modality, Scene, Story, VideoStatus
from bot.errors import ProviderError, UnusableAnswer
from bot.jobs import JobContext, JobOutcome, PermanentFailure, Reschedule
from bot.pipeline.flow import PipelineDeps, load_scene, route, settle_story, start_asset
from bot.providers.base import ReferenceImage, VideoRequest, VideoState
from storage import assets, scenes
from storage.db import Conn

log = logging.getLogger(__name__)

T = TypeVar("T")

_SEPARATOR = "|"  # remote ids are stored as "<model key>|<provider request id>"


def encode_remote(model_key: str, request_id: str) -> str:
    return f"{model_key}{_SEPARATOR}{request_id}"


def decode_remote(remote_id: str) -> tuple[str, str]:
    model_key, _, request_id = remote_id.partition(_SEPARATOR)
    return model_key, request_id


PAID_CLIP_PATIENCE_S = 1800.0  # how long transient poll/download errors are waited out for a clip already paid for
TRANSIENT_WAIT_S = 2.0  # between tries after a transient poll/download error without Retry-After


async def _final_unless_retryable(call: Awaitable[T], model: str, poll_s: float, age_s: float) -> T:
    """Provider errors while polling or downloading a clip that is already paid for: rate limits and
    transient errors are waited out without spending attempts (for up to PAID_CLIP_PATIENCE_S after the
    job was queued; then they spend attempts like any error); the rest end the job.

    An unusable clip (over MAX_CLIP_BYTES, not an H.264 MP4, too long) ends it too: the same URL would
    serve the same bytes, so downloading it again would only pay for them again (the clip keeps its Retry
    button, which asks for a new render)."""
    try:
        return await call
    except ProviderError as exc:
        exc.model = exc.model or model  # the user reads "grok-imagine-video had ...", not "the model had ..."
        if not exc.kind.retry_same_model or isinstance(exc, UnusableAnswer):
            raise PermanentFailure(exc.plain()) from exc
        if age_s < PAID_CLIP_PATIENCE_S:
            wait = exc.retry_after if exc.retry_after is not None else max(poll_s, TRANSIENT_WAIT_S)
            raise Reschedule(wait, exc.plain()) from exc
        raise


async def render_video(deps: PipelineDeps, job: GenerationJob, ctx: JobContext) -> JobOutcome | None:
    story, scene = await load_scene(deps, job.payload["scene_id"])
    if scene.video_status is VideoStatus.COMPLETE:
        return None
    if scene.image_status is not ImageStatus.COMPLETE or not scene.image_path:
        raise PermanentFailure("the scene has no image to animate")
    model_requested = story.video_model or deps.settings.routing[Modality.VIDEO].primary_model
    remote = job.remote_id or await _submit(deps, job, ctx, story, scene, scene.image_path, model_requested)
    model_used, request_id = decode_remote(remote)
    provider = deps.providers.video(deps.registry.resolve(model_used).provider)
    poll_s = deps.settings.video_poll_s
    age_s = deps.clock.now() - job.created_at
    poll = await _final_unless_retryable(provider.poll_video(request_id), model_used, poll_s, age_s)
    if poll.state is VideoState.FAILED and job.remote_id and deps.registry.resolve(model_used).provider == "local":
        # A local render lives in the staging folder of the machine that made it: a job resumed on another
        # machine (or after the sweep) finds none. Rendering it again here costs nothing, unlike a provider's.
        remote = await _submit(deps, job, ctx, story, scene, scene.image_path, model_requested)
        model_used, request_id = decode_remote(remote)
        provider = deps.providers.video(deps.registry.resolve(model_used).provider)
        poll = await _final_unless_retryable(provider.poll_video(request_id), model_used, poll_s, age_s)
    if poll.state is VideoState.PENDING:
        spec = deps.registry.resolve(model_used)
        delay = 0.0 if spec.provider == "local" else deps.settings.video_poll_s
        raise Reschedule(delay, f"{model_used} is still rendering ({poll.progress or 0}%)")
    if poll.state is VideoState.FAILED:
        raise PermanentFailure(f"{model_used} could not make the clip: {poll.error or 'no reason given'}")
    final = deps.media.path_for(story.id, "mp4")
    temp = deps.media.temp_path(final)
    try:
        # The provider guard checks the clip (an H.264 MP4 within the caps) before this returns.
        download = provider.download_video(poll, request_id, temp)
        await _final_unless_retryable(download, model_used, poll_s, age_s)
        ctx.provider_done()
        stored = await deps.media.commit(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    now = deps.clock.now()
    fallback = model_used != deps.registry.canonical(model_requested)
    warnings = [f"{model_requested} was unavailable; animated with {model_used} instead"] if fallback else []

    async def on_commit(conn: Conn) -> None:
        await assets.set_status(
            conn, job.id, AssetStatus.COMPLETED, now=now, model_used=model_used, fallback_occurred=fallback,
            path=stored.ref, bytes=stored.bytes, sha256=stored.sha256,
            generation_metadata={"provider_request_id": request_id, "warnings": warnings, "polls": job.attempts},
        )  # fmt: skip
        await scenes.set_video(conn, scene.id, VideoStatus.COMPLETE, now=now, path=stored.ref,
                               model_used=model_used, error=None)  # fmt: skip
        await deps.jobs.enqueue_delivery(conn, story, "video", f"video:{scene.id}:{job.id}", scene.id)
        await settle_story(deps, conn, story.id, f"video:{scene.id}")

    return JobOutcome(
        result={"path": stored.ref, "model_used": model_used},
        warnings=warnings,
        fallback=fallback,
        on_commit=on_commit,
    )


async def _submit(
    deps: PipelineDeps, job: GenerationJob, ctx: JobContext, story: Story, scene: Scene, image_ref: str, requested: str
) -> str:
    """Submit the clip and persist the provider's request id before anything else can fail."""
    async with deps.db.transaction() as conn:
        if scene.video_status is VideoStatus.PENDING:
            await scenes.set_video(
                conn, scene.id, VideoStatus.GENERATING, now=deps.clock.now(), model_requested=requested
            )
        await start_asset(deps, conn, job, scene, AssetKind.VIDEO, requested)
    image = await deps.media.local_file(image_ref)  # fetched from object storage first when it is there
    if image is None:
        raise PermanentFailure("the scene's picture is no longer in the media storage; redraw it")
    data = await asyncio.to_thread(image.read_bytes)
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/png"
    duration = deps.settings.video_duration_s
    request = VideoRequest(
        model="",
        prompt=f"{story.bible or ''}\n\n{scene.text}".strip(),
        image=ReferenceImage(data=data, mime_type=mime),
        duration_s=duration,
        seed=f"{story.id}:{scene.index}",
    )
    routed = await route(
        deps,
        story,
        requested,
        Modality.VIDEO,
        lambda spec: deps.providers.video(spec.provider).submit_video(
            request.model_copy(update={"model": spec.api_model})
        ),
    )
    remote = encode_remote(routed.model_used, routed.value)
    await ctx.set_remote_id(remote)
    log.info("job %s: %s accepted the clip as %s", job.id, routed.model_used, routed.value)
    return remote
