"""The deliver job: hand one finished thing to the Publisher, exactly once per delivery key.

A delivery is recorded in the ``deliveries`` table in the same transaction that finishes the job,
so a restart that re-runs the job sees the record and does not publish again. (Between a publish
and that commit a crash can still repeat it; the Discord publisher closes that gap with a nonce.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.domain import GenerationJob
from bot.jobs import JobContext, JobOutcome
from bot.publish import Delivery
from storage import deliveries, scenes
from storage.db import Conn

if TYPE_CHECKING:
    from bot.pipeline import Pipeline


async def deliver(pipeline: Pipeline, job: GenerationJob, ctx: JobContext) -> JobOutcome | None:
    key = job.idempotency_key or job.id
    if await deliveries.exists(pipeline.db, key):
        return None
    story = await pipeline.load(job.payload["story_id"])
    rows = await scenes.list_for_story(pipeline.db, story.id)
    scene_id = job.payload.get("scene_id")
    scene = next((s for s in rows if s.id == scene_id), None)
    delivery = Delivery(key=key, what=job.payload["what"], story=story, scenes=rows, scene=scene)
    reference = await pipeline.publisher.publish(delivery)
    now = pipeline.clock.now()

    async def on_commit(conn: Conn) -> None:
        await deliveries.record(
            conn, key=key, story_id=story.id, target=pipeline.publisher.name, message_id=reference, now=now
        )

    return JobOutcome(result={"reference": reference}, on_commit=on_commit)
