"""/story new: validate and store the story, acknowledge, and answer with its storyboard.

Everything that can refuse runs before the interaction is acknowledged: the bot's permissions in the
channel, the options, the limits, and storing the story (one short transaction that checks the limits
again, plus a reference image's download, bounded well inside Discord's 3 seconds). So every refusal is
sent with ``send_message(ephemeral=True)`` and is really private, unlike an answer after a public defer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.domain import Modality
from bot.errors import StorybotError, UserInputError
from bot.services.stories import StoryOptions
from cogs._library import StoryLibrary
from cogs._publisher import NO_MENTIONS, DiscordPublisher
from cogs._render import model_choices, storyboard_embed
from cogs._targets import NEEDED_FOR_THREADS, NEEDED_IN_CHANNEL, NEEDED_IN_THREAD, and_list, missing_names

if TYPE_CHECKING:
    from bot.app import StoryBot

log = logging.getLogger(__name__)

CANNOT_START = "⚠️ The story could not be started because of a problem on our side; please try again in a moment."
REFERENCE_READ_BUDGET_S = 1.5  # the download must leave time to acknowledge within 3 s


def check_attachment(attachment: discord.Attachment, limit_bytes: int) -> None:
    """What Discord tells us about an attachment, checked before it is downloaded."""
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if not content_type.startswith("image/"):
        shown = content_type or "an unknown type"
        raise UserInputError(f"the reference must be an image (PNG, JPEG or WebP), not {shown}")
    if attachment.size > limit_bytes:
        raise UserInputError(
            f"the reference image is {attachment.size / 2**20:.1f} MiB; keep it under {limit_bytes / 2**20:.0f} MiB"
        )


async def read_reference(attachment: discord.Attachment) -> bytes:
    try:
        return await asyncio.wait_for(attachment.read(), REFERENCE_READ_BUDGET_S)
    except TimeoutError:
        raise UserInputError("the reference image took too long to download; try a smaller file") from None
    except discord.HTTPException:
        raise UserInputError("the reference image could not be downloaded; attach it again") from None


THREADS = (discord.ChannelType.public_thread, discord.ChannelType.private_thread, discord.ChannelType.news_thread)


def _in_thread(interaction: discord.Interaction) -> bool:
    return interaction.channel is not None and interaction.channel.type in THREADS


def missing_where(interaction: discord.Interaction) -> list[str]:
    """What the bot lacks, among what delivering a story needs, where the command ran (its app_permissions)."""
    needed = NEEDED_IN_THREAD if _in_thread(interaction) else NEEDED_IN_CHANNEL
    return missing_names(interaction.app_permissions, needed)


def no_thread_note(interaction: discord.Interaction) -> str | None:
    """Why the story goes into the channel instead of a thread, when the bot may not make or post in one."""
    if _in_thread(interaction):
        return None  # a story started inside a thread is posted in that thread
    missing = missing_names(interaction.app_permissions, NEEDED_FOR_THREADS)
    if not missing:
        return None
    return f"I cannot make threads here (no {and_list(missing)} permission), so the story is posted in this channel."


class StoryCog(commands.Cog):
    story = app_commands.Group(name="story", description="Illustrated, optionally animated stories", guild_only=True)

    def __init__(self, bot: StoryBot, publisher: DiscordPublisher) -> None:
        self.bot = bot
        self.runtime = bot.runtime
        self.publisher = publisher
        self.library = StoryLibrary(bot)

    @story.command(name="new", description="Write a story from a prompt and illustrate every scene")
    @app_commands.describe(
        prompt="What the story is about, e.g. 'a lighthouse keeper befriends a storm'",
        scenes="How many scenes (1-10, default 4)",
        image_model="The model that draws the scenes",
        video="Also animate each scene into a short clip",
        video_model="The model that animates the scenes (needs video)",
        style="An art style, e.g. 'watercolour'",
        reference="A picture of the characters or the look you want (PNG, JPEG or WebP)",
    )
    async def story_new(
        self,
        interaction: discord.Interaction,
        prompt: str,
        scenes: app_commands.Range[int, 1, 10] = 4,
        image_model: str | None = None,
        video: bool = False,
        video_model: str | None = None,
        style: str | None = None,
        reference: discord.Attachment | None = None,
    ) -> None:
        missing = missing_where(interaction)
        if missing:
            text = f"⚠️ Cannot start the story: I need the {and_list(missing)} permission in this channel to post it. "
            text += "Ask a moderator to give it to me, or start the story in another channel."
            await interaction.response.send_message(text, ephemeral=True)
            return
        options = StoryOptions(
            prompt=prompt,
            scenes=scenes,
            video=video,
            image_model=(image_model or "").strip() or None,
            video_model=(video_model or "").strip() or None,
            style=style,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            owner_id=interaction.user.id,
            in_channel_because=no_thread_note(interaction),
        )
        try:
            options = await self._validated(options, reference)
            # Stored before the acknowledgement, so a limit that a racing command of the same user filled a
            # moment ago is refused privately too (the limits are checked again inside this transaction).
            story = await self.runtime.stories.create(options)
        except UserInputError as exc:
            await interaction.response.send_message(f"⚠️ Cannot start the story: {exc}", ephemeral=True)
            return
        except StorybotError as exc:
            log.warning("creating a story failed after its checks passed: %s", exc)
            await interaction.response.send_message(CANNOT_START, ephemeral=True)
            return
        await interaction.response.defer()
        board = await self.runtime.storyboards.board(story.id)
        assert board is not None
        message = await interaction.edit_original_response(embed=storyboard_embed(board), allowed_mentions=NO_MENTIONS)
        await self.publisher.attach_storyboard(story.id, message.id)
        log.info("story %s started by %s in channel %s", story.id, interaction.user.id, interaction.channel_id)

    async def _validated(self, options: StoryOptions, reference: discord.Attachment | None) -> StoryOptions:
        """Options with the reference's bytes, or UserInputError (a broken limit included). Stores nothing."""
        if not self.runtime.accepting_stories():  # no worker runs, or the database file is gone
            raise UserInputError("the bot cannot make stories right now; please try again later")
        service = self.runtime.stories
        await self.runtime.quotas.check_story(await service.prepare(options))
        if reference is None:
            return options
        check_attachment(reference, self.runtime.settings.max_reference_bytes)
        options = dataclasses.replace(options, reference=await read_reference(reference))
        await service.prepare(options)
        return options

    @story_new.autocomplete("image_model")
    async def image_model_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self._choices(Modality.IMAGE, current)

    @story_new.autocomplete("video_model")
    async def video_model_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self._choices(Modality.VIDEO, current)

    @story.command(name="list", description="Your stories in this server, newest first")
    @app_commands.describe(page="Which page of your stories (10 a page)")
    async def story_list(self, interaction: discord.Interaction, page: app_commands.Range[int, 1, 1000] = 1) -> None:
        await self.library.list(interaction, page)

    @story.command(name="show", description="Replay one of your stories: its storyboard, pictures and clips")
    @app_commands.describe(story="The story to show (start typing its title)")
    async def story_show(self, interaction: discord.Interaction, story: str) -> None:
        await self.library.show(interaction, story)

    @story.command(name="delete", description="Delete one of your stories with its pictures and clips")
    @app_commands.describe(story="The story to delete (start typing its title)")
    async def story_delete(self, interaction: discord.Interaction, story: str) -> None:
        await self.library.delete(interaction, story)

    @story_show.autocomplete("story")
    @story_delete.autocomplete("story")
    async def story_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self.library.choices(interaction, current)

    def _choices(self, modality: Modality, current: str) -> list[app_commands.Choice[str]]:
        rt = self.runtime
        return model_choices(rt.registry.usable(modality), current, lambda key: rt.router.breakers.state(key).value)


async def setup(bot: StoryBot) -> None:
    if bot.publisher is None:
        raise RuntimeError("StoryBot.setup_hook builds the Discord publisher before it loads this extension")
    await bot.add_cog(StoryCog(bot, bot.publisher))
