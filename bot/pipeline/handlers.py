"""The job handlers, one per job kind, each ``async def handler(deps, job, ctx)``, bound to a worker's deps."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from bot.domain import GenerationJob, JobKind
from bot.jobs import JobContext, JobOutcome
from bot.pipeline.deliver import deliver
from bot.pipeline.flow import PipelineDeps
from bot.pipeline.give_up import record_give_up
from bot.pipeline.image import render_image
from bot.pipeline.video import render_video
from bot.pipeline.write import write_story
from storage.db import Conn

Handler = Callable[[PipelineDeps, GenerationJob, JobContext], Awaitable[JobOutcome | None]]

HANDLERS: dict[JobKind, Handler] = {
    JobKind.WRITE_STORY: write_story,
    JobKind.RENDER_IMAGE: render_image,
    JobKind.RENDER_VIDEO: render_video,
    JobKind.DELIVER: deliver,
}


def bound_handlers(
    deps: PipelineDeps,
) -> dict[JobKind, Callable[[GenerationJob, JobContext], Awaitable[JobOutcome | None]]]:
    """The handlers as the worker calls them: ``handler(job, ctx)``."""
    return {kind: functools.partial(handler, deps) for kind, handler in HANDLERS.items()}


def give_up_recorder(deps: PipelineDeps) -> Callable[[GenerationJob, str, Conn], Awaitable[None]]:
    """What the worker calls, inside the transaction that fails a job for good: mark what it was making failed."""
    return functools.partial(record_give_up, deps)
