"""/story list, /story show and /story delete: a user's saved stories, answered privately.

The commands belong to the /story group of cogs/story.py, which hands them to ``StoryLibrary`` here. The
lookups and the deletion live in bot/services/library.py; this module turns them into ephemeral messages.
Who may do what: list and autocomplete show only your own stories in this server; show replays your
own story, or anyone's in this server for a member with Manage Messages (the stories were posted
publicly here anyway); delete is for the owner only, after a confirmation.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.domain import ImageStatus, Scene, Story, StoryStatus, VideoStatus
from bot.errors import MediaError, UserInputError
from bot.media.fit import fit_to_upload_limit
from bot.services.library import PAGE_SIZE, Library, StoryPage
from cogs._publisher import NO_MENTIONS
from cogs._render import (
    MAX_CHOICE_CHARS,
    MAX_CHOICES,
    clip,
    scene_caption,
    sentence,
    shown,
    status_word,
    storyboard_embed,
)

if TYPE_CHECKING:
    from bot.app import StoryBot

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S = 120.0
LIST_COLOUR = 0x5865F2
STATUS_MARKS = {
    StoryStatus.QUEUED: "⏳", StoryStatus.WRITING: "✍️", StoryStatus.ILLUSTRATING: "🎨",
    StoryStatus.COMPLETE: "✅", StoryStatus.FAILED: "❌", StoryStatus.CANCELLED: "🚫",
}  # fmt: skip


def story_name(story: Story, limit: int) -> str:
    """The title, or (while the story is being written) its prompt in quotes."""
    if story.title:
        return clip(" ".join(story.title.split()), limit)
    return f"“{clip(' '.join(story.prompt.split()), limit - 2)}”"


def short_date(timestamp: float, now: float) -> str:
    """E.g. "3 Nov", with the year when it is not this year's (UTC)."""
    day, today = datetime.fromtimestamp(timestamp, UTC), datetime.fromtimestamp(now, UTC)
    text = f"{day.day} {day:%b}"
    return text if day.year == today.year else f"{text} {day.year}"


def bold_name(story: Story) -> str:
    """The story's name in bold inside a message, its own markdown neutralised."""
    return f"**{shown(story_name(story, 150))}**"


def jump_url(story: Story) -> str | None:
    if story.guild_id is None or story.channel_id is None or story.storyboard_message_id is None:
        return None
    return f"https://discord.com/channels/{story.guild_id}/{story.channel_id}/{story.storyboard_message_id}"


def choice_for(story: Story, now: float) -> app_commands.Choice[str]:
    """E.g. "The Lantern Keeper · 3 Nov · complete", at most 100 characters; the value is the story id."""
    suffix = f" · {short_date(story.created_at, now)} · {status_word(story)}"
    return app_commands.Choice(name=story_name(story, MAX_CHOICE_CHARS - len(suffix)) + suffix, value=story.id)


def story_line(story: Story) -> str:
    scenes = f"{story.scene_count} scene{'s' * (story.scene_count != 1)}" + (" with clips" if story.video_mode else "")
    mark = "⚠️" if story.undelivered else STATUS_MARKS[story.status]
    parts = [f"{mark} {status_word(story)}", scenes, f"<t:{int(story.created_at)}:R>"]
    if story.undelivered:
        parts.append(clip(story.undelivered, 200))
    url = jump_url(story)
    if url:
        parts.append(f"[storyboard]({url})")
    parts.append(f"`{story.id[:8]}`")
    return " · ".join(parts)


def list_embed(page: StoryPage) -> discord.Embed:
    embed = discord.Embed(title="📚 Your stories in this server", colour=LIST_COLOUR)
    first = (page.page - 1) * PAGE_SIZE + 1
    for number, story in enumerate(page.stories, start=first):
        embed.add_field(name=f"{number}. {shown(story_name(story, 100))}", value=story_line(story), inline=False)
    noun = "story" if page.total == 1 else "stories"
    embed.set_footer(text=f"Page {page.page} of {page.pages} · {page.total} {noun} · /story show replays one")
    return embed


def delete_prompt(story: Story) -> str:
    return (
        f"Delete {bold_name(story)} (`{story.id[:8]}`)? Its scenes, pictures and clips are removed "
        "from the bot for good. Messages already posted in the server stay; delete those by hand if you want."
    )


class StoryLibrary:
    def __init__(self, bot: StoryBot) -> None:
        self.bot = bot
        self.runtime = bot.runtime
        self.library = bot.runtime.library

    async def choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        found = await self.library.suggest(interaction.guild_id, interaction.user.id, current)
        now = self.runtime.clock.now()
        return [choice_for(story, now) for story in found[:MAX_CHOICES]]

    async def list(self, interaction: discord.Interaction, page: int) -> None:
        try:
            found = await self.library.page(interaction.guild_id, interaction.user.id, page)
        except UserInputError as exc:
            await refuse(interaction, exc)
            return
        if not found.total:
            text = "You have no stories in this server yet; start one with `/story new`."
            await interaction.response.send_message(text, ephemeral=True)
            return
        await interaction.response.send_message(embed=list_embed(found), ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def show(self, interaction: discord.Interaction, story_id: str) -> None:
        moderator = interaction.permissions.manage_messages
        try:
            story = await self.library.find(interaction.guild_id, interaction.user.id, story_id, any_owner=moderator)
        except UserInputError as exc:
            await refuse(interaction, exc)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        board = await self.runtime.storyboards.board(story.id)
        if board is None:
            await interaction.edit_original_response(content="⚠️ That story was deleted a moment ago.")
            return
        url = jump_url(board.story)
        header = f"Replay of {bold_name(board.story)}" + (f" · [original storyboard]({url})" if url else "")
        # The header goes into the deferred message itself: a first followup that silently edits it is
        # deprecated behaviour (discord-api-docs, "Create Followup Message").
        await interaction.edit_original_response(
            content=header, embed=storyboard_embed(board), allowed_mentions=NO_MENTIONS
        )
        for scene in board.scenes:
            await self._send_scene(interaction, board.story, scene)

    async def _send_scene(self, interaction: discord.Interaction, story: Story, scene: Scene) -> None:
        """One ephemeral followup per scene: its text, its picture and its clip (fitted to the upload limit)."""
        limit = interaction.filesize_limit
        files: list[discord.File] = []
        notes: list[str] = []
        temporary: Path | None = None
        image = await self._existing(scene.image_path) if scene.image_status is ImageStatus.COMPLETE else None
        if image is not None and image.stat().st_size <= limit:
            files.append(discord.File(image, filename=f"scene-{scene.index + 1:02d}-image{image.suffix}"))
        elif image is not None:
            notes.append("The picture is too large to upload here.")
        elif scene.image_status is ImageStatus.FAILED:
            notes.append(f"❌ The picture could not be drawn: {shown(scene.image_error or 'unknown error')}")
        elif scene.image_status is ImageStatus.COMPLETE:
            notes.append("The picture is no longer available.")
        animated = story.video_mode and scene.video_status is VideoStatus.COMPLETE
        clip_path = await self._existing(scene.video_path) if animated else None
        if clip_path is not None:
            try:
                fitted = await fit_to_upload_limit(clip_path, limit)
            except MediaError as exc:
                log.warning("scene %s: clip does not fit the upload limit: %s", scene.id, exc)
                notes.append("🎬 The clip is too large to upload here, even re-encoded.")
            else:
                temporary = fitted if fitted != clip_path else None
                files.append(discord.File(fitted, filename=f"scene-{scene.index + 1:02d}-video.mp4"))
        elif story.video_mode and scene.video_status is VideoStatus.FAILED:
            notes.append(f"❌ The clip failed: {shown(scene.video_error or 'unknown error')}")
        try:
            content = scene_caption(scene, extra="\n".join(notes) or None)
            await interaction.followup.send(content, files=files, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.warning("replaying scene %s failed: %s", scene.id, exc)
            content = scene_caption(scene, extra="⚠️ Its files could not be uploaded here.")
            with contextlib.suppress(discord.HTTPException):
                await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)
        finally:
            for file in files:
                file.close()
            if temporary is not None:
                temporary.unlink(missing_ok=True)

    async def _existing(self, ref: str | None) -> Path | None:
        """The file a scene's picture or clip is on this host (fetched from object storage first, with
        MEDIA_URL), or None when it is gone."""
        path = await self.runtime.media.local_file(ref) if ref else None
        return path if path is not None and path.is_file() else None

    async def delete(self, interaction: discord.Interaction, story_id: str) -> None:
        try:
            story = await self.library.find(interaction.guild_id, interaction.user.id, story_id)
        except UserInputError as exc:
            await refuse(interaction, exc)
            return
        view = ConfirmDelete(self.library, interaction, story)
        await interaction.response.send_message(
            delete_prompt(story), view=view, ephemeral=True, allowed_mentions=NO_MENTIONS
        )


class ConfirmDelete(discord.ui.View):
    """Delete / Keep under the confirmation; only the user who asked can press them (it is ephemeral too)."""

    def __init__(self, library: Library, asked: discord.Interaction, story: Story) -> None:
        super().__init__(timeout=CONFIRM_TIMEOUT_S)
        self.library = library
        self.asked = asked
        self.story = story
        self.confirm.custom_id = f"library:delete:{story.id}"
        self.keep.custom_id = f"library:keep:{story.id}"

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.asked.user.id

    @discord.ui.button(label="Delete", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmDelete]) -> None:
        self.stop()
        await interaction.response.defer()  # removing the files may take a moment
        try:
            deleted = await self.library.delete(interaction.guild_id, interaction.user.id, self.story.id)
        except UserInputError as exc:
            await interaction.edit_original_response(content=f"⚠️ {sentence(str(exc))}", view=None)
            return
        text = f"🗑️ Deleted {bold_name(deleted.story)}. Messages already posted in the server stay."
        await interaction.edit_original_response(content=text, view=None, allowed_mentions=NO_MENTIONS)

    @discord.ui.button(label="Keep", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button[ConfirmDelete]) -> None:
        self.stop()
        text = f"Kept {bold_name(self.story)}; nothing was deleted."
        await interaction.response.edit_message(content=text, view=None, allowed_mentions=NO_MENTIONS)

    async def on_timeout(self) -> None:
        with contextlib.suppress(discord.HTTPException):
            await self.asked.edit_original_response(content="No answer, so nothing was deleted.", view=None)


async def refuse(interaction: discord.Interaction, error: UserInputError) -> None:
    await interaction.response.send_message(f"⚠️ {sentence(str(error))}", ephemeral=True)
