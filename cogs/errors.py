"""What a user sees when a slash command fails: a private line, never a traceback (those go to the log).

The handler is the command tree's ``on_error`` while this cog is loaded; unloading it puts back the one
it replaced.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from bot.app import StoryBot

log = logging.getLogger(__name__)

SOMETHING_WENT_WRONG = "⚠️ Something went wrong on our side; please try again in a moment."


class ErrorsCog(commands.Cog):
    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self._replaced: Callable[..., Coroutine[Any, Any, Any]] | None = None

    async def cog_load(self) -> None:
        self._replaced = self.bot.tree.on_error
        self.bot.tree.error(self.on_app_command_error)

    async def cog_unload(self) -> None:
        if self._replaced is not None:
            self.bot.tree.error(self._replaced)

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        name = interaction.command.qualified_name if interaction.command else "?"
        if isinstance(error, app_commands.TransformerError):  # an option value Discord's own lists never offer
            log.info("command %s: option value refused: %s", name, error)
            wanted = "a text channel" if error.type is discord.AppCommandOptionType.channel else "a value"
            text = f"⚠️ Nothing was done: that option needs {wanted} from the list Discord offers; pick one there."
        else:
            log.error("command %s failed", name, exc_info=error)
            text = SOMETHING_WENT_WRONG
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():  # after a public defer a followup would be public anyway
                await interaction.edit_original_response(content=text, embed=None)
            else:
                await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: StoryBot) -> None:
    await bot.add_cog(ErrorsCog(bot))
