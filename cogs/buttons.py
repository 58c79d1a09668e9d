"""The buttons' cog: registers the restart-proof DynamicItems of cogs/_buttons.py, so presses of buttons
posted by any earlier run are answered, and answers a press of a button storybot does not know.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import discord
from discord.ext import commands

from cogs._buttons import DYNAMIC_ITEMS, POST_AGAIN_ID, REDRAW_ID, RETRY_ID
from cogs._publisher import NO_MENTIONS

if TYPE_CHECKING:
    from bot.app import StoryBot

log = logging.getLogger(__name__)

# Presses that something else answers: the DynamicItems, and cogs/_library.py's live delete confirmations.
HANDLED_PREFIXES = (RETRY_ID, REDRAW_ID, POST_AGAIN_ID, "library:")
UNKNOWN_BUTTON = "⚠️ This button is not one storybot knows (it may be from an old version); nothing was changed."


class ButtonsCog(commands.Cog):
    """Answers presses of buttons posted by any earlier run (the DynamicItems), and of unknown ones."""

    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*DYNAMIC_ITEMS)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*DYNAMIC_ITEMS)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A press no storybot button handles gets a private answer instead of Discord's "interaction failed"."""
        data = cast("dict[str, Any]", interaction.data or {})  # a union of TypedDicts; only components have custom_id
        custom_id = str(data.get("custom_id", ""))
        if interaction.type is not discord.InteractionType.component or custom_id.startswith(HANDLED_PREFIXES):
            return
        log.info("user %s pressed an unknown button %r", interaction.user.id, custom_id[:100])
        await interaction.response.send_message(UNKNOWN_BUTTON, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: StoryBot) -> None:
    await bot.add_cog(ButtonsCog(bot))
