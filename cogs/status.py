"""/status: every model's health, the queue, and a chart of the last 24 hours.

STUB (contract for this session's helpers): the cog is registered by StoryBot; the command is being written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

if TYPE_CHECKING:
    from bot.app import StoryBot


class StatusCog(commands.Cog):
    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self.runtime = bot.runtime
