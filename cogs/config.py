"""/config (Manage Guild): per-server routing, video on or off, daily limits, the alert channel.

Discord hides the command from members without Manage Server (default_permissions), but a server can
change that in its integration settings, so every subcommand checks the invoker's permissions too.
Every answer is ephemeral; a bad input changes nothing and says what to fix.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain import MAX_DAILY_LIMIT, MAX_FALLBACKS, GuildConfig, Modality
from bot.errors import UserInputError
from bot.services.guild_config import split_models
from cogs._publisher import NO_MENTIONS
from cogs._render import MAX_CHOICE_CHARS, MAX_CHOICES, MAX_CONTENT, clip, model_choices

if TYPE_CHECKING:
    from bot.app import StoryBot

log = logging.getLogger(__name__)

NEEDS_MANAGE_GUILD = "⛔ You need the Manage Server permission to change storybot's settings here."
MODALITY_LABELS = {Modality.TEXT: "Story text", Modality.IMAGE: "Pictures", Modality.VIDEO: "Clips"}
LIMIT_FIELDS = {"images": "daily_image_limit", "videos": "daily_video_limit"}
CLEARED = {"images": ["images"], "videos": ["videos"], "both": ["images", "videos"]}

ModalityName = Literal["text", "image", "video"]
DailyLimit = app_commands.Range[int, 0, MAX_DAILY_LIMIT]


def chain_text(chain: list[str], unavailable: Container[str] = ()) -> str:
    """E.g. "**gpt-image-1.5**, then local-sketch", marking models that cannot be used right now."""
    shown = [f"**{key}**" if i == 0 else key for i, key in enumerate(chain)]
    shown = [text + (" (unavailable)" if key in unavailable else "") for text, key in zip(shown, chain, strict=True)]
    primary, *fallbacks = shown
    return primary + (f", then {', '.join(fallbacks)}" if fallbacks else "")


def limits_text(config: GuildConfig) -> str:
    def one(limit: int | None, noun: str) -> str:
        return f"no limit on {noun}" if limit is None else f"{limit} {noun}"

    return f"{one(config.daily_image_limit, 'pictures')}, {one(config.daily_video_limit, 'clips')}"


class ConfigCog(commands.Cog):
    config = app_commands.Group(
        name="config",
        description="storybot's settings for this server (needs Manage Server)",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self.runtime = bot.runtime
        self.settings = bot.runtime.guild_settings

    # -- subcommands ------------------------------------------------------------------------------

    @config.command(name="show", description="Show this server's storybot settings")
    async def config_show(self, interaction: discord.Interaction) -> None:
        if await self._refused(interaction):
            return
        config = await self.settings.get(self._guild_id(interaction))
        await self._answer(interaction, self.describe(config))

    @config.command(name="routing", description="Choose the models this server uses, with their fallbacks")
    @app_commands.describe(
        modality="What the models make: story text, pictures or clips",
        primary="The model tried first; leave empty to use the operator's default again",
        fallbacks=f"Up to {MAX_FALLBACKS} models tried next, in order, e.g. 'gpt-image-1-mini, local-sketch'",
    )
    async def config_routing(
        self,
        interaction: discord.Interaction,
        modality: ModalityName,
        primary: str | None = None,
        fallbacks: str | None = None,
    ) -> None:
        if await self._refused(interaction):
            return
        kind = Modality(modality)
        label = MODALITY_LABELS[kind]
        try:
            primary = (primary or "").strip() or None
            if primary is None and split_models(fallbacks):
                raise UserInputError("name a primary model for the fallbacks, or leave both empty for the default")
            route = self.settings.parse_route(kind, primary, fallbacks) if primary else None
            config = await self.settings.set_route(self._guild_id(interaction), interaction.user.id, kind, route)
        except UserInputError as exc:
            await self._refuse(interaction, exc)
            return
        chain, own = self._route_text(config, kind)
        if own:
            await self._answer(interaction, f"✅ {label} for this server: {chain}.")
        else:
            await self._answer(interaction, f"✅ {label}: back to the operator's default, {chain}.")

    @config.command(name="video", description="Allow or refuse video (animated clips) in this server")
    @app_commands.describe(enabled="Whether /story new may animate scenes into clips")
    async def config_video(self, interaction: discord.Interaction, enabled: bool) -> None:
        if await self._refused(interaction):
            return
        await self.settings.set_video(self._guild_id(interaction), interaction.user.id, enabled)
        if enabled:
            await self._answer(interaction, "✅ Video is on: stories may animate their scenes.")
        else:
            await self._answer(interaction, "✅ Video is off: /story new refuses video in this server.")

    @config.command(name="limits", description="Pictures and clips each member may ask for per day (UTC)")
    @app_commands.describe(
        images=f"Pictures per member per day (0-{MAX_DAILY_LIMIT})",
        videos=f"Clips per member per day (0-{MAX_DAILY_LIMIT})",
        clear="Remove a limit (no limit at all)",
    )
    async def config_limits(
        self,
        interaction: discord.Interaction,
        images: DailyLimit | None = None,
        videos: DailyLimit | None = None,
        clear: Literal["images", "videos", "both"] | None = None,
    ) -> None:
        if await self._refused(interaction):
            return
        given = {"images": images, "videos": videos}
        changes: dict[str, int | None] = {
            LIMIT_FIELDS[name]: value for name, value in given.items() if value is not None
        }
        try:
            for name in CLEARED.get(clear or "", []):
                if given[name] is not None:
                    raise UserInputError(f"you both set and cleared the {name} limit; choose one")
                changes[LIMIT_FIELDS[name]] = None
            if not changes:
                raise UserInputError(f"give images, videos (0-{MAX_DAILY_LIMIT}), or clear")
            config = await self.settings.set_limits(self._guild_id(interaction), interaction.user.id, changes)
        except UserInputError as exc:
            await self._refuse(interaction, exc)
            return
        await self._answer(interaction, f"✅ Daily limits per member: {limits_text(config)}.")

    @config.command(name="alerts", description="Where storybot posts model health alerts for this server")
    @app_commands.describe(channel="The channel for alerts; leave empty to turn alerts off")
    async def config_alerts(self, interaction: discord.Interaction, channel: discord.TextChannel | None = None) -> None:
        if await self._refused(interaction):
            return
        me = channel.guild.me if channel is not None else None
        if channel is not None and me is not None and not channel.permissions_for(me).send_messages:
            await self._refuse(interaction, f"I cannot post in {channel.mention}; let me send messages there first")
            return
        guild_id = self._guild_id(interaction)
        await self.settings.set_alerts(guild_id, interaction.user.id, channel.id if channel else None)
        text = f"✅ Alerts go to {channel.mention}." if channel else "✅ Alerts are off in this server."
        await self._answer(interaction, text)

    # -- autocomplete -----------------------------------------------------------------------------

    @config_routing.autocomplete("primary")
    async def primary_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        specs = [spec for modality in self._modalities(interaction) for spec in self.runtime.registry.usable(modality)]
        return model_choices(specs, current, self._breaker_state)

    @config_routing.autocomplete("fallbacks")
    async def fallback_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """Completes the last name of a comma-separated list, keeping what was typed before it."""
        *before, typed = [part.strip() for part in current.split(",")]
        named = [name for name in before if name]
        taken = {*named, str(getattr(interaction.namespace, "primary", "") or "").strip()}
        prefix = "".join(f"{name}, " for name in named)
        choices = []
        for modality in self._modalities(interaction):
            for spec in self.runtime.registry.usable(modality):
                value = prefix + spec.key
                if spec.key not in taken and typed.lower() in spec.key.lower() and len(value) <= MAX_CHOICE_CHARS:
                    choices.append(app_commands.Choice(name=value, value=value))
        return choices[:MAX_CHOICES]

    # -- helpers ----------------------------------------------------------------------------------

    def describe(self, config: GuildConfig) -> str:
        lines = ["**storybot in this server**"]
        for modality, label in MODALITY_LABELS.items():
            chain, own = self._route_text(config, modality)
            lines.append(f"{label}: {chain}" + ("" if own else " (operator's default)"))
        lines.append("The local models are every chain's last resort.")
        lines.append(f"Video: {'on' if config.video_enabled else 'off'}")
        lines.append(f"Daily limits per member (UTC days): {limits_text(config)}")
        lines.append(f"Alerts: {f'<#{config.alert_channel_id}>' if config.alert_channel_id else 'off'}")
        if config.updated_by is not None:
            lines.append(f"Last changed by <@{config.updated_by}> <t:{int(config.updated_at)}:R>")
        return "\n".join(lines)

    def _route_text(self, config: GuildConfig, modality: Modality) -> tuple[str, bool]:
        """(the server's chain for a modality as text, whether the server chose it)."""
        chain, own = self.settings.effective_route(config, modality)
        unavailable = {key for key in chain if not self.runtime.registry.availability(key).usable}
        return chain_text(chain, unavailable), own

    def _modalities(self, interaction: discord.Interaction) -> list[Modality]:
        chosen = getattr(interaction.namespace, "modality", None)
        return [Modality(chosen)] if chosen in {m.value for m in Modality} else list(Modality)

    def _breaker_state(self, key: str) -> str:
        return self.runtime.router.breakers.state(key).value

    @staticmethod
    def _guild_id(interaction: discord.Interaction) -> int:
        assert interaction.guild_id is not None  # the group is guild_only
        return interaction.guild_id

    async def _refused(self, interaction: discord.Interaction) -> bool:
        """True (after saying so) when the invoker may not change the settings."""
        if interaction.guild_id is not None and interaction.permissions.manage_guild:
            return False
        log.info("/config refused for %s in guild %s: no Manage Server", interaction.user.id, interaction.guild_id)
        await interaction.response.send_message(NEEDS_MANAGE_GUILD, ephemeral=True)
        return True

    async def _refuse(self, interaction: discord.Interaction, problem: UserInputError | str) -> None:
        await self._answer(interaction, f"⚠️ Nothing changed: {problem}")

    async def _answer(self, interaction: discord.Interaction, text: str) -> None:
        await interaction.response.send_message(clip(text, MAX_CONTENT), ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: StoryBot) -> None:
    await bot.add_cog(ConfigCog(bot))
