"""/status: every model's health, the queue, the processes serving the database, and a chart of the last 24 hours
(anyone may run it; only they see it)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain import ProcessBeat
from bot.health.chart import render_chart
from bot.health.model import StatusReport
from bot.health.table import (
    NO_WORKER,
    NONE,
    WINDOW_NOTE,
    ProcessRow,
    StatusRow,
    no_worker,
    process_row,
    queue_line,
    status_rows,
)
from cogs._render import MAX_TITLE, clip, shown

if TYPE_CHECKING:
    from bot.app import StoryBot

CHART_FILE = "status.png"
MAX_FIELDS = 25
MAX_EMBED_CHARS = 6000
FIELD_VALUE_CHARS = 1024
ERROR_CHARS = 200  # a last error longer than this is cut; 25 such fields still fit in 6000 characters
PROCESS_CHARS = 200  # a process's line (a very long host name) is cut at this
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


def process_line(row: ProcessRow) -> str:
    """One live process: "**worker** · host pid 41 · 4 worker slots · beat 2 s ago" (shards for a gateway)."""
    parts = [f"**{row.role}**", f"{shown(row.host)} pid {row.pid}"]
    if row.worker_slots != NONE:
        parts.append(f"{row.worker_slots} worker slots")
    if row.shards != NONE:
        parts.append(f"shards {row.shards}")
    parts.append(f"beat {row.last_beat}")
    return " · ".join(parts)


def processes_field(report: StatusReport, processes: Sequence[ProcessBeat] | None) -> tuple[str, str]:
    """The live processes, one line each; those that do not fit in the field are counted instead."""
    if processes is None:
        return "Processes", "unknown: the database did not answer"
    if not processes:
        return "Processes", "none is running"
    lines = [clip(process_line(process_row(process, report.generated_at)), PROCESS_CHARS) for process in processes]
    value, hidden = "\n".join(lines), 0
    while len(value) > FIELD_VALUE_CHARS:
        hidden += 1
        value = "\n".join([*lines[:-hidden], f"…and {hidden} more"])
    return f"Processes: {len(processes)} running", value


def status_embed(report: StatusReport, processes: Sequence[ProcessBeat] | None = None) -> discord.Embed:
    """The /status embed, within Discord's limits: at most 25 fields and 6000 characters in all. ``processes``
    (the live ones; None: not shown) go in a last field, and without a worker among them the description says
    so first."""
    title = clip("Model health", MAX_TITLE)
    description = queue_line(report)
    if no_worker(report, processes):
        description += f"\n⚠️ {NO_WORKER}"
    elif not report.can_serve:
        description += "\n⚠️ Some stories cannot be made right now: see the models below."
    footer = f"{WINDOW_NOTE} · chart: last 24 hours"
    embed = discord.Embed(title=title, description=description, colour=COLOUR_OK if report.can_serve else COLOUR_BAD)
    embed.set_footer(text=footer)
    fields = [model_field(row) for row in status_rows(report)]
    tail = [processes_field(report, processes)] if processes is not None else []
    used = len(title) + len(description) + len(footer) + sum(len(name) + len(value) for name, value in tail)
    room = MAX_FIELDS - len(tail)
    more_reserve = 120  # room for the "n more" field
    added = 0
    for name, value in fields:
        last = added == len(fields) - 1
        if added == room - 1 and not last:
            break
        if used + len(name) + len(value) > MAX_EMBED_CHARS - (0 if last else more_reserve):
            break
        embed.add_field(name=name, value=value, inline=False)
        used += len(name) + len(value)
        added += 1
    hidden = len(fields) - added
    if hidden:
        embed.add_field(name=f"…and {hidden} more", value="`storybot status` lists every model", inline=False)
    for name, value in tail:
        embed.add_field(name=name, value=value, inline=False)
    return embed


class StatusCog(commands.Cog):
    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self.runtime = bot.runtime

    @app_commands.command(name="status", description="Model health, the queue, the running processes, a 24-hour chart")
    async def status(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        processes = await self.runtime.live_processes()  # first: the report's "workers running" reads them
        report = await self.runtime.health.report()
        png = await asyncio.to_thread(render_chart, report.chart)
        embed = status_embed(report, processes)
        embed.set_image(url=f"attachment://{CHART_FILE}")
        chart = discord.File(io.BytesIO(png), filename=CHART_FILE)
        await interaction.edit_original_response(embed=embed, attachments=[chart])


async def setup(bot: StoryBot) -> None:
    await bot.add_cog(StatusCog(bot))
