"""Retry (failed clip) and Redraw (scene picture) buttons: DynamicItems that survive restarts.

STUB (contract for this session's helpers): ``register`` is called by StoryBot.setup_hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import StoryBot


def register(bot: StoryBot) -> None:
    """Make the bot answer presses of buttons posted by any earlier run."""
