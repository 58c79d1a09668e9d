"""/story list, /story show and /story delete: a user's saved stories.

STUB (contract for this session's helpers): StoryCog calls these four methods; bodies being written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

if TYPE_CHECKING:
    from bot.app import StoryBot


class StoryLibrary:
    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self.runtime = bot.runtime

    async def list(self, interaction: discord.Interaction, page: int) -> None:
        await interaction.response.send_message("/story list is not ready yet", ephemeral=True)

    async def show(self, interaction: discord.Interaction, story_id: str) -> None:
        await interaction.response.send_message("/story show is not ready yet", ephemeral=True)

    async def delete(self, interaction: discord.Interaction, story_id: str) -> None:
        await interaction.response.send_message("/story delete is not ready yet", ephemeral=True)

    async def choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return []
