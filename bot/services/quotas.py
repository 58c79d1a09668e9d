"""Per-user limits: stories running at once, and daily image and clip quotas per server.

The running-stories limit (Settings.max_running_stories) counts a user's unfinished stories in every
server. The daily limits come from the server's /config (None: no limit) and count pictures and clips
a user asked for on one UTC day. ``check_story`` answers before /story new is acknowledged;
``charge`` and ``charge_story`` check again inside the transaction that queues the work, so two
commands racing each other cannot both slip under a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.clock import Clock
from bot.domain import GuildConfig
from bot.errors import LimitExceeded
from bot.settings import Settings
from storage import guilds
from storage import stories as story_rows
from storage.db import Conn, Database, Target

if TYPE_CHECKING:
    from bot.domain import Story


@dataclass(frozen=True)
class _Quota:
    noun: str  # plural, e.g. "pictures"
    singular: str
    limit: int | None
    used: int
    needed: int

    def count(self, n: int) -> str:
        return f"{n} {self.singular if n == 1 else self.noun}"


def utc_day(timestamp: float) -> str:
    """The UTC date of a Unix time, as the ``usage`` table stores it ('YYYY-MM-DD')."""
    return datetime.fromtimestamp(timestamp, tz=UTC).date().isoformat()


def until_midnight(timestamp: float) -> str:
    """How long until the next UTC midnight, e.g. '3 h 12 min', '45 min', 'less than a minute'."""
    now = datetime.fromtimestamp(timestamp, tz=UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    minutes = int((midnight - now).total_seconds()) // 60
    if minutes == 0:
        return "less than a minute"
    hours, minutes = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def story_needs(story: Story) -> tuple[int, int]:
    """(pictures, clips) a new story will ask for: one picture per scene, and one clip per scene in video mode."""
    return story.scene_count, story.scene_count if story.video_mode else 0


class Quotas:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    async def check_story(self, story: Story) -> None:
        """Before acknowledging /story new (reads only): raise LimitExceeded if this story would break a limit."""
        await self.check_running(self.db, story)
        images, videos = story_needs(story)
        await self._check_daily(self.db, story, images, videos)

    async def charge_story(self, conn: Conn, story: Story) -> None:
        """Inside the transaction that stores a new story (before its row is inserted): every check, then usage."""
        await self.check_running(conn, story)
        images, videos = story_needs(story)
        await self.charge(conn, story, images=images, videos=videos)

    async def charge(self, conn: Conn, story: Story, *, images: int, videos: int) -> None:
        """Inside the transaction that queues the work: re-check the daily quotas and count the usage.
        Raises LimitExceeded (the transaction then rolls back, so nothing is stored)."""
        if not (images or videos) or story.guild_id is None or story.owner_id is None:
            return
        day = await self._check_daily(conn, story, images, videos)
        await guilds.add_usage(conn, story.guild_id, story.owner_id, day, images=images, videos=videos)

    async def check_running(self, target: Target, story: Story) -> None:
        """Raise LimitExceeded when the story's owner already has as many stories being made as allowed."""
        if story.owner_id is None:
            return  # the CLI: an operator on their own machine
        limit = self.settings.max_running_stories
        running = await story_rows.count_running(target, story.owner_id)
        if running >= limit:
            stories = "1 story" if running == 1 else f"{running} stories"
            which = "it" if running == 1 else "one"
            raise LimitExceeded(
                f"you already have {stories} being made (the limit is {limit}); wait for {which} to finish"
            )

    async def _check_daily(self, target: Target, story: Story, images: int, videos: int) -> str:
        """Raise LimitExceeded when this request would break the server's daily limits; return the UTC day."""
        now = self.clock.now()
        day = utc_day(now)
        if story.guild_id is None or story.owner_id is None:
            return day
        config = await guilds.get(target, story.guild_id)
        if config is None:
            return day
        if videos and not config.video_enabled:
            raise LimitExceeded(
                "video is turned off in this server (a server manager can turn it on with /config video)"
            )
        used_images, used_videos = await guilds.usage(target, story.guild_id, story.owner_id, day)
        for quota in _quotas(config, (used_images, images), (used_videos, videos)):
            _enforce(quota, now)
        return day


def _quotas(config: GuildConfig, images: tuple[int, int], videos: tuple[int, int]) -> list[_Quota]:
    return [
        _Quota("pictures", "picture", config.daily_image_limit, *images),
        _Quota("clips", "clip", config.daily_video_limit, *videos),
    ]


def _enforce(quota: _Quota, now: float) -> None:
    limit = quota.limit
    if limit is None or not quota.needed or quota.used + quota.needed <= limit:
        return
    if limit == 0:
        raise LimitExceeded(f"this server allows no {quota.noun} a day; ask a server manager to raise the limit")
    if quota.needed > limit:
        raise LimitExceeded(
            f"this story needs {quota.count(quota.needed)} but this server allows {quota.count(limit)} a day "
            f"per member; choose {limit} scene{'' if limit == 1 else 's'} or fewer"
        )
    raise LimitExceeded(
        f"you have used {quota.used} of your {quota.count(limit)} today in this server and this story needs "
        f"{quota.needed}; the limit resets in {until_midnight(now)} (midnight UTC)"
    )
