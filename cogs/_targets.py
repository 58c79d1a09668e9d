"""Where a story's Discord messages go, and what to do when that place is lost mid-story.

The story's thread (made on first use from the storyboard message, under a per-story lock, and recorded
on the story), else its channel: when the bot may not make threads there (decided by /story new), when
the thread is locked, or when no thread can be made. Each loss has its own answer (issue #10; the codes
are Discord's JSON error codes, discord/discord-api-docs ``developers/topics/Opcodes_and_Status_Codes``):

- 50083 archived thread: unarchive it (PATCH ``archived=false``), then edit or post again;
- 160005 locked thread, or one that cannot be unarchived: the rest goes to the parent channel;
- 10003 deleted thread: forget it, so the next post starts a new thread on the storyboard;
- 50013 / 50001 a permission the bot lacks: ``DeliveryBlocked``, naming what is missing, so the
  delivery is parked (bot/pipeline/deliver.py) instead of burned through retries.

The publisher (cogs/_publisher.py) decides what to post and in which order; this module only finds the
destination and keeps the story's record of it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import discord

from bot.domain import Story
from bot.errors import DeliveryBlocked
from cogs._render import clip

if TYPE_CHECKING:
    from bot.services.storyboards import Storyboards

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440

UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
THREAD_ARCHIVED = 50083
THREAD_ALREADY_EXISTS = 160004
THREAD_LOCKED = 160005
FORBIDDEN = (MISSING_ACCESS, MISSING_PERMISSIONS)

THREAD_LOCKED_NOTE = "The story's thread is locked, so the rest of it is posted in this channel."
NO_THREAD_NOTE = "A thread could not be made here, so the story is posted in this channel."

# What the bot needs to deliver a story, in the words Discord's own settings use.
NEEDED_IN_CHANNEL = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    "attach_files": "Attach Files",
}
NEEDED_IN_THREAD = {**NEEDED_IN_CHANNEL, "send_messages": "Send Messages in Threads"}
NEEDED_FOR_THREADS = {
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
}


def missing_names(permissions: discord.Permissions, needed: dict[str, str]) -> list[str]:
    """The names of the needed permissions that ``permissions`` lacks, in a stable order."""
    return [name for attribute, name in needed.items() if not getattr(permissions, attribute)]


def and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


@dataclass(frozen=True)
class Place:
    """Where one message goes: the messageable, and whether it is the story's thread (else its channel)."""

    channel: discord.PartialMessageable
    in_thread: bool

    @property
    def id(self) -> int:
        return self.channel.id


class MessageTargets:
    def __init__(self, bot: discord.Client, records: Storyboards, upload_limit_bytes: int | None) -> None:
        self.bot = bot
        self.records = records
        self.upload_limit_bytes = upload_limit_bytes  # None: the guild's own limit
        self._thread_locks: dict[str, asyncio.Lock] = {}

    def messageable(self, channel_id: int, story: Story) -> discord.PartialMessageable:
        return self.bot.get_partial_messageable(channel_id, guild_id=story.guild_id)

    def upload_limit(self, story: Story) -> int:
        if self.upload_limit_bytes is not None:
            return self.upload_limit_bytes
        guild = self.bot.get_guild(story.guild_id) if story.guild_id else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def fresh(self, story: Story) -> Story:
        return await self.records.story(story.id) or story

    def home(self, story: Story) -> Place:
        """Where the story's messages are now, without making anything: its thread, else its channel."""
        assert story.channel_id is not None
        if story.thread_id is not None and not story.post_in_channel:
            return Place(self.messageable(story.thread_id, story), in_thread=True)
        return Place(self.messageable(story.channel_id, story), in_thread=False)

    async def target(self, story: Story) -> Place:
        """The story's thread, made on first use from the storyboard message; else its channel."""
        assert story.channel_id is not None
        lock = self._thread_locks.setdefault(story.id, asyncio.Lock())
        async with lock:
            fresh = await self.fresh(story)
            if fresh.thread_id is not None or fresh.post_in_channel or fresh.storyboard_message_id is None:
                return self.home(fresh)
            thread_id = await self._make_thread(fresh)
            if thread_id is None:
                await self.move_to_channel(fresh, NO_THREAD_NOTE)
                return self.home(fresh.model_copy(update={"post_in_channel": True}))
            await self.records.record_thread(fresh.id, thread_id)
            return self.home(fresh.model_copy(update={"thread_id": thread_id}))

    # -- losses ------------------------------------------------------------------------------------

    async def move_to_channel(self, story: Story, note: str) -> None:
        """Post the rest of the story in its channel (the thread is locked, or none can be made)."""
        log.info("story %s: posting in the channel from now on (%s)", story.id, note)
        await self.records.post_in_channel(story.id, note)

    async def forget_thread(self, story: Story) -> None:
        """The thread was deleted: the next post starts a new one on the storyboard."""
        log.info("story %s: its thread %s was deleted; a new one will be made", story.id, story.thread_id)
        await self.records.record_thread(story.id, None)

    async def unarchive(self, thread_id: int) -> bool:
        """Unarchive a thread (Discord archives idle threads); False when the bot may not (it is locked)."""
        try:
            await self.bot.http.edit_channel(thread_id, archived=False)
        except discord.HTTPException as exc:
            log.info("thread %s cannot be unarchived (%s %s)", thread_id, exc.status, exc.code)
            return False
        return True

    def blocked(self, story: Story, place_id: int, exc: discord.HTTPException) -> DeliveryBlocked:
        """The parked-delivery error for a 403, naming what is missing where the cache can tell."""
        in_thread = place_id != story.channel_id
        where = "the story's thread" if in_thread else "this channel"
        permissions = self._permissions_in(story, place_id)
        if permissions is not None:
            missing = missing_names(permissions, NEEDED_IN_THREAD if in_thread else NEEDED_IN_CHANNEL)
            if missing:
                return DeliveryBlocked(f"I am missing the {and_list(missing)} permission in {where}")
        if exc.code == MISSING_ACCESS:
            return DeliveryBlocked(f"I can no longer see {where}")
        return DeliveryBlocked(f"I am missing a permission in {where}")

    def _permissions_in(self, story: Story, channel_id: int) -> discord.Permissions | None:
        guild = self.bot.get_guild(story.guild_id) if story.guild_id is not None else None
        channel = guild.get_channel_or_thread(channel_id) if guild is not None else None
        if guild is None or channel is None:
            return None
        return channel.permissions_for(guild.me)

    async def _fetch_channel(self, channel_id: int) -> object | None:
        """The channel over REST: a worker process has no gateway, so no cache of channels."""
        try:
            return await self.bot.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.info("channel %s cannot be fetched (%s %s)", channel_id, exc.status, exc.code)
            return None

    async def _make_thread(self, story: Story) -> int | None:
        assert story.channel_id is not None and story.storyboard_message_id is not None
        channel = self.bot.get_channel(story.channel_id) or await self._fetch_channel(story.channel_id)
        if not isinstance(channel, discord.TextChannel):
            return None  # threads on messages exist only in text channels (not in DMs, voice chats or threads)
        name = clip(story.title or "Story", 100)
        try:
            thread = await channel.get_partial_message(story.storyboard_message_id).create_thread(
                name=name, auto_archive_duration=THREAD_ARCHIVE_MINUTES
            )
        except discord.HTTPException as exc:
            if exc.code == THREAD_ALREADY_EXISTS:
                return story.storyboard_message_id  # a thread started from a message shares its id
            log.warning("story %s: cannot make a thread (%s); posting in the channel", story.id, exc)
            return None
        return thread.id
