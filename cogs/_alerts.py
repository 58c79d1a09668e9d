"""Health alerts posted into every server's alert channel (set with /config); the log gets them too."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord

from bot.health.alerts import Alert
from cogs._publisher import NO_MENTIONS
from cogs._render import MAX_CONTENT, clip

if TYPE_CHECKING:
    from bot.app import StoryBot

log = logging.getLogger(__name__)


class DiscordAlertNotifier:
    """bot.health.alerts.Notifier for Discord: one message per server that chose an alert channel."""

    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot

    async def notify(self, alert: Alert) -> None:
        channels = await self.bot.runtime.guild_settings.alert_channels()
        text = clip(alert.text, MAX_CONTENT)
        for guild_id, channel_id in sorted(channels.items()):
            channel = self.bot.get_partial_messageable(channel_id, guild_id=guild_id)
            try:
                await channel.send(text, allowed_mentions=NO_MENTIONS)
            except discord.HTTPException as exc:  # a deleted channel or lost permission must not stop the rest
                log.warning("could not post alert %s to channel %s of server %s: %s", alert.key, channel_id,
                            guild_id, exc)  # fmt: skip
