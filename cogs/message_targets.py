"""Where a story's Discord messages go: its thread (made on first use), else its channel.

The publisher (cogs/publisher.py) decides what to post and in which order; this module only finds
the destination: the story's thread, created once from the storyboard message under a per-story
lock and recorded on the story, or the channel when no thread can be made; and the upload limit
that applies there. It is apart so the thread bookkeeping does not mix with the posting rules.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

import discord

from bot.domain import Story
from cogs.render import clip
from storage import stories as story_rows

if TYPE_CHECKING:
    from discord.ext import commands

    from bot.runtime import Runtime

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
THREAD_ARCHIVE_MINUTES: Literal[1440] = 1440
THREAD_ALREADY_EXISTS = 160004


class MessageTargets:
    def __init__(self, bot: commands.Bot, runtime: Runtime, upload_limit_bytes: int | None) -> None:
        self.bot = bot
        self.runtime = runtime
        self.upload_limit_bytes = upload_limit_bytes  # None: the guild's own limit
        self._thread_locks: dict[str, asyncio.Lock] = {}
        self._no_thread: set[str] = set()  # stories whose thread could not be made: post in the channel

    def messageable(self, channel_id: int, story: Story) -> discord.PartialMessageable:
        return self.bot.get_partial_messageable(channel_id, guild_id=story.guild_id)

    def upload_limit(self, story: Story) -> int:
        if self.upload_limit_bytes is not None:
            return self.upload_limit_bytes
        guild = self.bot.get_guild(story.guild_id) if story.guild_id else None
        return guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT

    async def target(self, story: Story) -> discord.PartialMessageable:
        """The story's thread, made on first use from the storyboard message; else its channel."""
        assert story.channel_id is not None
        lock = self._thread_locks.setdefault(story.id, asyncio.Lock())
        async with lock:
            fresh = await story_rows.get(self.runtime.db, story.id) or story
            if fresh.thread_id is not None:
                return self.messageable(fresh.thread_id, fresh)
            if fresh.storyboard_message_id is None or story.id in self._no_thread:
                return self.messageable(fresh.channel_id or story.channel_id, fresh)
            thread_id = await self._make_thread(fresh)
            if thread_id is None:
                self._no_thread.add(story.id)
                return self.messageable(story.channel_id, fresh)
            rt = self.runtime
            async with rt.db.transaction() as conn:
                await story_rows.update(conn, story.id, now=rt.clock.now(), thread_id=thread_id)
            return self.messageable(thread_id, fresh)

    async def _make_thread(self, story: Story) -> int | None:
        assert story.channel_id is not None and story.storyboard_message_id is not None
        channel = self.bot.get_channel(story.channel_id)
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
