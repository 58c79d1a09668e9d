"""StoryJobs: queues a story's jobs, each tagged with what the queue's limits and filters need.

An image or clip job names the provider of the story's model (for the per-provider limits), every job
names the story's owner (per-user limits), and a delivery names the publisher that must make it, so
only a process with that publisher claims it (storage.jobs.publisher_filter).
"""

from __future__ import annotations

from typing import Any

from bot.domain import GenerationJob, JobKind, Story
from bot.jobs import JobQueue
from bot.routing.registry import Registry
from storage import jobs as job_rows
from storage.db import Conn

# The publishers a deliver job can name: cogs._publisher.DiscordPublisher.name and OfflinePublisher.name.
DISCORD_PUBLISHER = "discord"
OFFLINE_PUBLISHER = "offline"


def delivery_publisher(story: Story) -> str:
    """Which publisher must make a story's deliveries: Discord's for a story asked for in a channel, else the
    storybook's. Stored on the job, so only a process with that publisher claims it (storage.jobs)."""
    return DISCORD_PUBLISHER if story.channel_id is not None else OFFLINE_PUBLISHER


class StoryJobs:
    def __init__(self, queue: JobQueue, registry: Registry) -> None:
        self.queue = queue
        self.registry = registry

    async def enqueue(self, conn: Conn, kind: JobKind, story: Story, key: str, **payload: Any) -> GenerationJob:
        """Queue a job (inside the caller's transaction); a key already in the queue returns that job.

        A delivery names its publisher and no provider: the provider limits are for model calls only.
        """
        model = {JobKind.RENDER_IMAGE: story.image_model, JobKind.RENDER_VIDEO: story.video_model}.get(kind)
        spec = self.registry.get(model) if model else None
        return await self.queue.enqueue(
            kind,
            {"story_id": story.id, **payload},
            idempotency_key=key,
            story_id=story.id,
            user_id=story.owner_id,
            provider=spec.provider if spec else None,
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
