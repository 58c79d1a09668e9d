"""The prompt that asks a chat model for a story, and the parser for its JSON answer.

Shared by every chat-model adapter, so each model is asked the same thing and judged the same way.
"""

from __future__ import annotations

import json
import re

from bot.errors import ErrorKind, ProviderError
from bot.providers.base import StoryDraft, StoryRequest

SYSTEM_PROMPT = (
    "You write short illustrated stories for a Discord community. Answer with one JSON object and "
    'nothing else: {"title": str, "bible": str, "scenes": [str, ...]}. "bible" is 2-4 sentences '
    "fixing the main characters' names and looks, the setting and the art style, so an illustrator "
    "can keep every picture consistent. Each scene is 2-3 vivid sentences that can be drawn as one "
    "picture. Keep it suitable for all ages."
)


def user_prompt(request: StoryRequest) -> str:
    style = f" Art style: {request.style}." if request.style else ""
    return f"Write a story in exactly {request.scene_count} scenes about: {request.prompt}.{style}"


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_story(text: str | None, request: StoryRequest, *, model: str) -> StoryDraft:
    """Parse the model's JSON answer; a missing or malformed story is a transient failure (ask again)."""
    try:
        data = json.loads(_FENCE.sub("", (text or "").strip()))
        title = str(data["title"]).strip()
        bible = str(data.get("bible") or "").strip()
        scenes = [str(scene).strip() for scene in data["scenes"] if str(scene).strip()]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError(ErrorKind.TRANSIENT, "the model did not return a story", model=model) from exc
    if not title or len(scenes) < request.scene_count:
        raise ProviderError(
            ErrorKind.TRANSIENT, f"the model wrote {len(scenes)} of {request.scene_count} scenes", model=model
        )
    return StoryDraft(title=title[:200], bible=bible[:1000], scenes=[s[:1500] for s in scenes[: request.scene_count]])
