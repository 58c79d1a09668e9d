"""The prompt that asks a chat model for a story, and the schema its JSON answer must fit.

Shared by every chat-model adapter, so each model is asked the same thing and judged the same way.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bot.errors import UnusableAnswer
from bot.providers.base import StoryDraft, StoryRequest

SYSTEM_PROMPT = (
    "You write short illustrated stories for a Discord community. Answer with one JSON object and "
    'nothing else: {"title": str, "bible": str, "scenes": [str, ...]}. "bible" is 2-4 sentences '
    "fixing the main characters' names and looks, the setting and the art style, so an illustrator "
    "can keep every picture consistent. Each scene is 2-3 vivid sentences that can be drawn as one "
    "picture. Keep it suitable for all ages."
)

# Far above what the prompt asks for, and within what a Discord message or embed can carry.
MAX_TITLE_CHARS = 200
MAX_BIBLE_CHARS = 1000
MAX_SCENE_CHARS = 1500
MAX_SCENES_IN_ANSWER = 50  # a model may write a few more scenes than asked (the first ones are kept), not hundreds

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)]
Bible = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_BIBLE_CHARS)]
SceneText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SCENE_CHARS)]


class StoryAnswer(BaseModel):
    """The only answer shape accepted: strings where strings belong (no numbers or objects coerced)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    title: Title
    bible: Bible
    scenes: list[SceneText] = Field(min_length=1, max_length=MAX_SCENES_IN_ANSWER)


def user_prompt(request: StoryRequest) -> str:
    style = f" Art style: {request.style}." if request.style else ""
    return f"Write a story in exactly {request.scene_count} scenes about: {request.prompt}.{style}"


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_story(text: str | None, request: StoryRequest, *, model: str) -> StoryDraft:
    """The model's JSON answer checked against ``StoryAnswer``; any other shape, or fewer scenes than
    asked, is an UnusableAnswer (transient: ask again, then another model)."""
    try:
        answer = StoryAnswer.model_validate_json(_FENCE.sub("", (text or "").strip()))
    except ValidationError as exc:
        raise _unfit(exc, model) from exc
    return _draft(answer, request, model)


def check_draft(draft: StoryDraft, request: StoryRequest, *, model: str | None = None) -> StoryDraft:
    """A draft from any adapter held to the same schema as a parsed answer (the guard's check)."""
    try:
        answer = StoryAnswer.model_validate(draft.model_dump(include={"title", "bible", "scenes"}))
    except ValidationError as exc:
        raise _unfit(exc, model) from exc
    return _draft(answer, request, model)


def _draft(answer: StoryAnswer, request: StoryRequest, model: str | None) -> StoryDraft:
    if len(answer.scenes) < request.scene_count:
        raise UnusableAnswer(
            f"the model wrote {len(answer.scenes)} of {request.scene_count} scenes", what="a story", model=model
        )
    return StoryDraft(title=answer.title, bible=answer.bible, scenes=list(answer.scenes[: request.scene_count]))


def _unfit(exc: ValidationError, model: str | None) -> UnusableAnswer:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors()[:3])
    return UnusableAnswer(f"the story answer does not fit the schema ({problems})", what="a story", model=model)
