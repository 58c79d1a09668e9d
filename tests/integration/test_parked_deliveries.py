"""Parked deliveries on a FakeClock: a publisher that may not post parks the delivery with a long backoff that
spends no attempt, the story says it is undelivered, and after a day the delivery is given up on; once the
publisher may post again, the story is whole and nothing is published twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bot.clock import FakeClock
from bot.domain import JobKind, JobStatus, StoryStatus
from bot.errors import DeliveryBlocked
from bot.pipeline.deliver import PARK_FIRST_S, PARK_LIMIT_S
from bot.publish.protocol import Delivery
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from storage import jobs as job_rows
from storage import testing as storage_testing

REASON = "I am missing the Send Messages permission in this channel"


class GatedPublisher:
    """A Publisher that refuses (as Discord's 403 does) for its first ``refusals`` calls, then publishes."""

    name = "discord"  # it stands in for the Discord publisher: only a process with it takes these deliveries

    def __init__(self, refusals: int, clock: FakeClock) -> None:
        self.refusals = refusals
        self.clock = clock
        self.published: Counter[str] = Counter()
        self.refused_at: list[float] = []

    async def publish(self, delivery: Delivery) -> str | None:
        if self.refusals > 0:
            self.refusals -= 1
            self.refused_at.append(self.clock.now())
            raise DeliveryBlocked(REASON)
        self.published[delivery.key] += 1
        return delivery.key


async def run_story(tmp_path: Path, publisher: GatedPublisher, clock: FakeClock) -> Runtime:
    settings = load_settings(database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media")
    rt = await Runtime(settings, clock=clock, publisher_name=publisher.name).open()
    await rt.stories.create(StoryOptions(prompt="a heron who keeps a lighthouse", scenes=2, guild_id=1, channel_id=2))
    await rt.run_until_empty(publisher, idle_poll_s=0.01)
    return rt


async def test_a_delivery_refused_for_a_day_is_given_up_and_the_story_says_so(tmp_path: Path) -> None:
    clock = FakeClock()
    publisher = GatedPublisher(refusals=10**6, clock=clock)
    rt = await run_story(tmp_path, publisher, clock)
    try:
        [story] = await storage_testing.list_all(rt.db)
        assert story.status is StoryStatus.COMPLETE and story.undelivered == REASON
        deliveries = [j for j in await job_rows.list_for_story(rt.db, story.id) if j.kind is JobKind.DELIVER]
        assert deliveries and all(j.status is JobStatus.FAILED for j in deliveries)
        assert all("not posted for a day" in (j.last_error or "") for j in deliveries)
        assert all(j.attempts <= 1 for j in deliveries), "parking must not spend attempts"
        assert publisher.published == Counter()
        # Long backoff: each delivery was tried a few dozen times over the day, not every few seconds.
        tries = len(publisher.refused_at) / len(deliveries)
        assert 5 <= tries <= PARK_LIMIT_S / PARK_FIRST_S, tries
        assert max(publisher.refused_at) - min(publisher.refused_at) >= PARK_LIMIT_S
    finally:
        await rt.close()


async def test_a_delivery_parked_for_a_while_is_posted_once_and_the_story_is_whole(tmp_path: Path) -> None:
    clock = FakeClock()
    publisher = GatedPublisher(refusals=3, clock=clock)
    rt = await run_story(tmp_path, publisher, clock)
    try:
        [story] = await storage_testing.list_all(rt.db)
        assert story.status is StoryStatus.COMPLETE
        assert story.undelivered is None and story.parked_since is None
        deliveries = [j for j in await job_rows.list_for_story(rt.db, story.id) if j.kind is JobKind.DELIVER]
        assert all(j.status is JobStatus.SUCCEEDED for j in deliveries)
        assert set(publisher.published.values()) == {1} and len(publisher.published) == len(deliveries)
        assert max(publisher.refused_at) - min(publisher.refused_at) < PARK_LIMIT_S
    finally:
        await rt.close()
