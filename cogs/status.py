"""/status: every model's health, the queue, and a chart of the last 24 hours (anyone may run it; only they see it)."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.health.chart import render_chart
from bot.health.model import StatusReport
from bot.health.table import NONE, WINDOW_NOTE, StatusRow, queue_line, status_rows
from cogs._render import MAX_TITLE, clip

if TYPE_CHECKING:
    from bot.app import StoryBot

CHART_FILE = "status.png"
MAX_FIELDS = 25
MAX_EMBED_CHARS = 6000
FIELD_VALUE_CHARS = 1024
ERROR_CHARS = 200  # a last error longer than this is cut; 25 such fields still fit in 6000 characters
COLOUR_OK, COLOUR_BAD = 0x57F287, 0xED4245


def model_field(row: StatusRow) -> tuple[str, str]:
    """One model's field: the name with its mark, then only the figures it has."""
    parts = [row.state]
    if row.success != NONE:
        parts += [f"success {row.success}", f"p50/p95 {row.latency}", f"fallback {row.fallback}"]
    if row.cooldown != NONE:
        parts.append(f"cooldown {row.cooldown}")
    value = " · ".join(parts)
    if row.last_error != NONE:
        value += f"\nlast error: {clip(row.last_error, ERROR_CHARS)}"
    return clip(f"{row.mark} {row.key}", 256), clip(value, FIELD_VALUE_CHARS)


def status_embed(report: StatusReport) -> discord.Embed:
    """The /status embed, within Discord's limits: at most 25 fields and 6000 characters in all."""
    title = clip("Model health", MAX_TITLE)
    description = queue_line(report)
    if not report.can_serve:
        description += "\n⚠️ Some stories cannot be made right now: see the models below."
    footer = f"{WINDOW_NOTE} · chart: last 24 hours"
    embed = discord.Embed(title=title, description=description, colour=COLOUR_OK if report.can_serve else COLOUR_BAD)
    embed.set_footer(text=footer)
    fields = [model_field(row) for row in status_rows(report)]
    used = len(title) + len(description) + len(footer)
    more_reserve = 120  # room for the "n more" field
    shown = 0
    for name, value in fields:
        last = shown == len(fields) - 1
        if shown == MAX_FIELDS - 1 and not last:
            break
        if used + len(name) + len(value) > MAX_EMBED_CHARS - (0 if last else more_reserve):
            break
        embed.add_field(name=name, value=value, inline=False)
        used += len(name) + len(value)
        shown += 1
    hidden = len(fields) - shown
    if hidden:
        embed.add_field(name=f"…and {hidden} more", value="`storybot status` lists every model", inline=False)
    return embed


class StatusCog(commands.Cog):
    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self.runtime = bot.runtime

    @app_commands.command(name="status", description="Model health, the queue, and a chart of the last 24 hours")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        report = await self.runtime.health.report()
        png = await asyncio.to_thread(render_chart, report.chart)
        embed = status_embed(report)
        embed.set_image(url=f"attachment://{CHART_FILE}")
        chart = discord.File(io.BytesIO(png), filename=CHART_FILE)
        await interaction.edit_original_response(embed=embed, attachments=[chart])


async def setup(bot: StoryBot) -> None:
    await bot.add_cog(StatusCog(bot))
