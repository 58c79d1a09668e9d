"""/config (Manage Guild): per-server routing, video on or off, daily limits, the alert channel.

STUB (contract for this session's helpers): the cog is registered by StoryBot; commands being written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

if TYPE_CHECKING:
    from bot.app import StoryBot


class ConfigCog(commands.Cog):
    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self.runtime = bot.runtime
