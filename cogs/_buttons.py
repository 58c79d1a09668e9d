"""Retry (failed clip), Redraw (scene picture) and Post again buttons: DynamicItems that survive restarts.

The scene id lives in the custom_id, so a button posted by any earlier run, days ago, still works:
discord.py rebuilds the item from the pressed message (cogs/buttons.py registers them). The checks and the
re-queue are bot/services/scene_actions.py's; this module only answers the press. A press that queues work
edits the pressed message at once (the button greys out); anything else is answered privately and changes
nothing. cogs/_publisher.py puts the buttons on the messages it posts (the ``*_view`` functions).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar, Self, cast

import discord

from bot.errors import StorybotError
from bot.services.scene_actions import Outcome, SceneActions, Verdict
from cogs._render import clip, scene_caption

if TYPE_CHECKING:
    from bot.app import StoryBot

log = logging.getLogger(__name__)

RETRY_ID = "storybot:retry:"
REDRAW_ID = "storybot:redraw:"
POST_AGAIN_ID = "storybot:repost:"
# Whatever follows the prefix is taken, so a forged or stale id gets an answer instead of silence;
# SceneActions checks it is a scene id.
_ANY_KEY = r"(?P<key>.*)"
# cogs/_publisher.py imports this module for the views, so its NO_MENTIONS cannot be imported here.
_NO_MENTIONS = discord.AllowedMentions.none()
_MARKS = {Verdict.BUSY: "⏳", Verdict.REFUSED: "⚠️"}
_SOMETHING_WENT_WRONG = "⚠️ Something went wrong on our side; nothing was changed. Please try again in a moment."


class _KeyedButton:
    """What the buttons share: a custom_id made of a prefix and the id of what it acts on (a scene, a story),
    mixed into a DynamicItem."""

    PREFIX: ClassVar[str]
    LABEL: ClassVar[str]
    EMOJI: ClassVar[str]
    STYLE: ClassVar[discord.ButtonStyle]

    def __init__(self, key: str, *, disabled: bool = False) -> None:
        button: discord.ui.Button[Any] = discord.ui.Button(
            label=self.LABEL, emoji=self.EMOJI, style=self.STYLE, custom_id=self.PREFIX + key, disabled=disabled
        )
        super().__init__(button)  # type: ignore[call-arg]  # DynamicItem.__init__
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> Self:
        return cls(match["key"])


class RetryButton(
    _KeyedButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=re.escape(RETRY_ID) + _ANY_KEY
):
    """On a failed clip's message: queue the clip again."""

    PREFIX, LABEL, EMOJI, STYLE = RETRY_ID, "Retry", "🔁", discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:
        actions, presser = _context(interaction)
        outcome = await _guarded(interaction, actions.retry_video(self.key, **presser))
        if outcome is not None and outcome.scene is not None:
            text = f"🔁 Retrying scene {outcome.scene.index + 1}'s clip… it will appear here when it is ready."
            await _pressed(interaction, outcome, text, retry_view(self.key, disabled=True))


class RedrawButton(
    _KeyedButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=re.escape(REDRAW_ID) + _ANY_KEY
):
    """On a scene's picture: draw it again (in video mode its clip is made again from the new picture)."""

    PREFIX, LABEL, EMOJI, STYLE = REDRAW_ID, "Redraw", "🎨", discord.ButtonStyle.secondary

    async def callback(self, interaction: discord.Interaction) -> None:
        actions, presser = _context(interaction)
        outcome = await _guarded(interaction, actions.redraw_image(self.key, **presser))
        if outcome is not None and outcome.scene is not None:
            note = "🎨 Redrawing this picture… the new one will appear here when it is ready."
            content = scene_caption(outcome.scene, extra=note)
            await _pressed(interaction, outcome, content, redraw_view(self.key, disabled=True))


class PostAgainButton(
    _KeyedButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=re.escape(POST_AGAIN_ID) + _ANY_KEY
):
    """On a storyboard (or in the owner's direct messages) when the bot could not post part of a story: once the
    missing permission is given back, post everything that waits. The key is the story id."""

    PREFIX, LABEL, EMOJI, STYLE = POST_AGAIN_ID, "Post again", "📮", discord.ButtonStyle.primary

    async def callback(self, interaction: discord.Interaction) -> None:
        actions, presser = _context(interaction)
        outcome = await _guarded(interaction, actions.post_again(self.key, **presser))
        if outcome is None or outcome.story is None:
            return
        log.info("user %s: %s (story %s)", interaction.user.id, outcome.text, outcome.story.id)
        text = f"📮 {outcome.text[:1].upper()}{outcome.text[1:]}; if something is still missing, I will say so."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=_NO_MENTIONS)
        publisher = _bot(interaction).publisher
        if publisher is not None:
            publisher.posting_again(outcome.story.id)


def post_again_view(story_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(PostAgainButton(story_id))
    return view


def retry_view(scene_id: str, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RetryButton(scene_id, disabled=disabled))
    return view


def redraw_view(scene_id: str, *, disabled: bool = False) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(RedrawButton(scene_id, disabled=disabled))
    return view


def _context(interaction: discord.Interaction) -> tuple[SceneActions, dict[str, Any]]:
    """The service, and who pressed where: the server, the user, and whether they may manage messages here."""
    presser = {
        "guild_id": interaction.guild_id,
        "user_id": interaction.user.id,
        "can_manage": interaction.permissions.manage_messages,
    }
    return _bot(interaction).runtime.scene_actions, presser


async def _guarded(interaction: discord.Interaction, press: Awaitable[Outcome]) -> Outcome | None:
    """The press's outcome when it queued work; anything else is answered privately here (None)."""
    try:
        outcome = await press
    except StorybotError:
        log.exception("a button press by user %s failed", interaction.user.id)
        await interaction.response.send_message(_SOMETHING_WENT_WRONG, ephemeral=True, allowed_mentions=_NO_MENTIONS)
        return None
    if outcome.queued:
        return outcome
    text = clip(f"{_MARKS[outcome.verdict]} {outcome.text[:1].upper()}{outcome.text[1:]}.", 2000)
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=_NO_MENTIONS)
    return None


async def _pressed(interaction: discord.Interaction, outcome: Outcome, content: str, view: discord.ui.View) -> None:
    """Show on the pressed message that the work is queued (its button greyed out); refresh the storyboard."""
    log.info("user %s: %s (job %s)", interaction.user.id, outcome.text, outcome.job_id)
    await interaction.response.edit_message(content=content, view=view, allowed_mentions=_NO_MENTIONS)
    publisher = _bot(interaction).publisher
    if outcome.story is not None and publisher is not None:
        publisher.refresh_storyboard(outcome.story.id)


def _bot(interaction: discord.Interaction) -> StoryBot:
    return cast("StoryBot", interaction.client)


DYNAMIC_ITEMS = (RetryButton, RedrawButton, PostAgainButton)
