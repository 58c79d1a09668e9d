"""The deliver job: hand one finished thing to the Publisher, exactly once per delivery key.

A delivery is recorded in the ``deliveries`` table in the same transaction that finishes the job,
so a restart that re-runs the job sees the record and does not publish again. (Between a publish
and that commit a crash can still repeat it; the Discord publisher closes that gap with a nonce.)

A delivery the publisher may not make (``DeliveryBlocked``: a permission the bot lacks) is parked,
not burned through retries: the story records why, the job comes back after a long backoff that
spends no attempt, and after ``PARK_LIMIT_S`` it is given up on. The story stays "undelivered" until
every parked delivery of it has been posted, so its status never claims more than reached Discord.
"""

from __future__ import annotations

from bot.domain import GenerationJob, Scene, Story
from bot.errors import DeliveryBlocked
from bot.jobs import JobContext, JobOutcome, PermanentFailure, Reschedule
from bot.media.objects import is_object_ref
from bot.media.store import MediaStore
from bot.pipeline.flow import PipelineDeps, load
from bot.publish.protocol import Delivery
from storage import deliveries, scenes, stories
from storage.db import Conn

PARK_FIRST_S = 300.0  # a lost permission is rarely given back within minutes
PARK_MAX_S = 3600.0
PARK_LIMIT_S = 24 * 3600.0


async def deliver(deps: PipelineDeps, job: GenerationJob, ctx: JobContext) -> JobOutcome | None:
    key = job.idempotency_key or job.id
    if await deliveries.exists(deps.db, key):
        return None
    story = await load(deps, job.payload["story_id"])
    rows = await with_local_media(deps.media, await scenes.list_for_story(deps.db, story.id))
    scene_id = job.payload.get("scene_id")
    scene = next((s for s in rows if s.id == scene_id), None)
    delivery = Delivery(key=key, what=job.payload["what"], story=story, scenes=rows, scene=scene)
    try:
        reference = await deps.publisher.publish(delivery)
    except DeliveryBlocked as blocked:
        raise await _park(deps, story, str(blocked)) from blocked
    now = deps.clock.now()

    async def on_commit(conn: Conn) -> None:
        await deliveries.record(
            conn, key=key, story_id=story.id, target=deps.publisher.name, message_id=reference, now=now
        )
        await _unpark_if_clear(conn, story.id, job.id, now)

    return JobOutcome(result={"reference": reference}, on_commit=on_commit)


async def with_local_media(media: MediaStore, rows: list[Scene]) -> list[Scene]:
    """The scenes as a publisher reads them: each picture and clip a file on this host.

    What another host wrote to object storage (MEDIA_URL) is fetched into this host's cache first
    (MediaStore.local_file), so publishers only ever open local paths; one the store no longer has reads as
    none (the publishers say it is missing). Local paths are left as they are.
    """
    found = []
    for scene in rows:
        update = {}
        for field in ("image_path", "video_path"):
            ref = getattr(scene, field)
            if is_object_ref(ref):
                path = await media.local_file(ref)
                update[field] = str(path) if path is not None else None
        found.append(scene.model_copy(update=update) if update else scene)
    return found


async def _park(deps: PipelineDeps, story: Story, reason: str) -> Reschedule | PermanentFailure:
    """Record why the story cannot be delivered; what to raise: come back later, or (after a day) give up."""
    now = deps.clock.now()
    since = story.parked_since if story.parked_since is not None else now
    async with deps.db.transaction() as conn:
        await stories.update(conn, story.id, now=now, undelivered=reason, parked_since=since)
    waited = now - since
    if waited >= PARK_LIMIT_S:
        return PermanentFailure(f"not posted for a day: {reason}")
    delay = min(PARK_MAX_S, max(PARK_FIRST_S, waited), PARK_LIMIT_S - waited)
    return Reschedule(delay, deliveries.PARKED + reason)


async def _unpark_if_clear(conn: Conn, story_id: str, job_id: str, now: float) -> None:
    """A delivery went through: once no other delivery of the story is parked or lost, it is whole again."""
    story = await stories.get(conn, story_id)
    if story is None or story.undelivered is None:
        return
    if await deliveries.parked_count(conn, story_id, excluding=job_id) == 0:
        await stories.update(conn, story_id, now=now, undelivered=None, parked_since=None)


async def mark_lost(conn: Conn, story_id: str, error: str, *, now: float) -> None:
    """A delivery was given up on (a day parked, or Discord kept failing): the story says so."""
    story = await stories.get(conn, story_id)
    if story is not None:
        await stories.update(conn, story_id, now=now, undelivered=story.undelivered or error)
