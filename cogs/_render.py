"""Pure renderers: the storyboard embed, scene messages and autocomplete choices. No I/O here.

Every string is cut to Discord's limits (discord-wire.md section 6): content 2000, embed title 256,
description 4096, 25 fields of 1024, 6000 characters in all; choices 25 of at most 100 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import discord
from discord import app_commands

from bot.domain import ImageStatus, Scene, Story, StoryStatus, VideoStatus
from bot.routing.registry import ModelSpec
from bot.services.progress import ACTIVE, eta_text, progress_of, scene_stage
from bot.services.storyboards import Board

MAX_CONTENT = 2000
MAX_CHOICES = 25
MAX_CHOICE_CHARS = 100
MAX_TITLE = 256
FIELD_TEXT_CHARS = 160  # a scene's snippet on the storyboard; ten scenes stay far below 6000 characters
PROMPT_CHARS = 300

PROVIDER_NAMES = {"openai": "OpenAI", "google": "Google", "xai": "xAI", "local": "Local"}
STAGE_MARKS = {"writing": "✍️", "waiting": "⏳", "drawing": "🎨", "animating": "🎬", "done": "✅", "failed": "❌"}
HEALTH_MARKS = {"closed": "🟢", "half_open": "🟡", "open": "🔴"}
STATUS_COLOURS = {
    StoryStatus.QUEUED: 0x99AAB5,
    StoryStatus.WRITING: 0x5865F2,
    StoryStatus.ILLUSTRATING: 0x5865F2,
    StoryStatus.COMPLETE: 0x57F287,
    StoryStatus.FAILED: 0xED4245,
    StoryStatus.CANCELLED: 0x99AAB5,
}


_MENTION = re.compile(r"<(?=[@#])")
_MASS_MENTION = re.compile(r"@(?=everyone|here)")
_LINE_MARK = re.compile(r"(?m)^(\s*)(#|-#|>)")


def shown(text: str) -> str:
    """Text from a user or a model, made inert for Discord: its markdown (bold, spoilers, code), masked links,
    headings, quotes and mentions are shown as typed instead of taking effect. (Mentions never ping anyway:
    every message goes out with AllowedMentions.none(); this keeps them from even rendering as mentions.)"""
    text = discord.utils.escape_markdown(text)
    text = _LINE_MARK.sub(lambda m: f"{m[1]}\\{m[2]}", text)
    text = _MASS_MENTION.sub("@\u200b", text)
    return _MENTION.sub("<\u200b", text)


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def status_line(board: Board) -> str:
    """The storyboard's headline: the stage and counts, plus "· about 2 min left" while work remains."""
    line = _stage_line(board)
    left = eta_text(board.eta_s) if board.story.status in ACTIVE else None
    return f"{line} · {left}" if left else line


def _stage_line(board: Board) -> str:
    story, progress = board.story, progress_of(board.story, board.scenes)
    status = story.status
    if status is StoryStatus.QUEUED:
        if board.queue_position:
            return f"Queued: number {board.queue_position} in line"
        return "Queued"
    if status is StoryStatus.WRITING:
        return f"Writing {story.scene_count} scenes…"
    counts = f"drawn {progress.drawn} of {progress.total}"
    if story.video_mode:
        counts += f", animated {progress.animated} of {progress.total}"
    if progress.failed:
        counts += f", {progress.failed} failed"
    if status is StoryStatus.ILLUSTRATING:
        return f"Illustrating: {counts}"
    if status is StoryStatus.COMPLETE:
        return f"Done, not all posted: {counts}" if story.undelivered else f"Done: {counts}"
    if status is StoryStatus.FAILED:
        return f"Failed: {shown(story.error) if story.error else counts}"
    return "Cancelled"


def fallback_notes(scenes: Iterable[Scene]) -> list[str]:
    notes = []
    for scene in scenes:
        number = scene.index + 1
        used, asked = scene.image_model_used, scene.image_model_requested
        if used and asked and used != asked:
            notes.append(f"Scene {number} was drawn with {used} instead of {asked}.")
        used, asked = scene.video_model_used, scene.video_model_requested
        if used and asked and used != asked:
            notes.append(f"Scene {number} was animated with {used} instead of {asked}.")
    return notes


def scene_field(story: Story, scene: Scene) -> tuple[str, str]:
    stage = scene_stage(story, scene)
    value = f"{STAGE_MARKS[stage]} {stage}"
    if scene.image_status is ImageStatus.FAILED and scene.image_error:
        value += f": {shown(scene.image_error)}"
    elif scene.video_status is VideoStatus.FAILED and scene.video_error:
        value += f": {shown(scene.video_error)}"
    snippet = shown(" ".join(scene.text.split()))
    return f"Scene {scene.index + 1}", clip(f"{value}\n{snippet}", FIELD_TEXT_CHARS * 2)


def storyboard_embed(board: Board) -> discord.Embed:
    story = board.story
    prompt = clip(shown(" ".join(story.prompt.split())), PROMPT_CHARS)
    embed = discord.Embed(
        title=clip(f"📖 {shown(story.title or 'A new story')}", MAX_TITLE),
        description=f"*{prompt}*\n\n**{clip(status_line(board), 1000)}**",
        colour=STATUS_COLOURS[story.status],
    )
    if board.scenes:
        for scene in board.scenes[:10]:
            name, value = scene_field(story, scene)
            embed.add_field(name=name, value=value, inline=False)
    elif story.status in (StoryStatus.QUEUED, StoryStatus.WRITING):
        stage = "writing" if story.status is StoryStatus.WRITING else "waiting"
        for index in range(story.scene_count):
            embed.add_field(name=f"Scene {index + 1}", value=f"{STAGE_MARKS[stage]} {stage}", inline=True)
    notes = fallback_notes(board.scenes)
    if story.delivery_note:
        notes.insert(0, story.delivery_note)
    if notes:
        embed.add_field(name="Notes", value=clip("\n".join(notes), 1024), inline=False)
    if story.undelivered:
        text = f"{sentence(story.undelivered)} Once that is fixed, press **Post again** (I keep trying for a day)."
        embed.add_field(name="⚠️ Not posted yet", value=clip(text, 1024), inline=False)
    models = f"images: {story.image_model}"
    if story.video_mode and story.video_model:
        models += f" · clips: {story.video_model}"
    embed.set_footer(text=f"{models} · story {story.id[:8]}")
    return embed


def status_word(story: Story) -> str:
    """The story's status as a user reads it: "complete" only once everything it made was posted."""
    if story.undelivered and story.status in (StoryStatus.ILLUSTRATING, StoryStatus.COMPLETE):
        return "undelivered"
    return story.status.value


def sentence(text: str) -> str:
    """A service message as a sentence: capital first letter, closing full stop."""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "`")) else f"{text}."


def story_label(story: Story) -> str:
    """What a message posted in the channel (not the story's thread) starts with, so it is clear whose it is."""
    title = shown(clip(" ".join((story.title or "A story").split()), 100))
    return f"📖 **{title}** · "


def scene_caption(scene: Scene, *, extra: str | None = None) -> str:
    """A scene's message: its number and text, plus an optional note, within 2000 characters."""
    head = f"**Scene {scene.index + 1}**\n"
    tail = f"\n\n{extra}" if extra else ""
    room = MAX_CONTENT - len(head) - len(tail)
    if room < 20:
        return clip(head + (extra or ""), MAX_CONTENT)
    return head + clip(shown(scene.text.strip()), room) + tail


def health_mark(breaker_state: str) -> str:
    return HEALTH_MARKS.get(breaker_state, "⚪")


def choice_name(spec: ModelSpec, mark: str) -> str:
    """E.g. "🟢 gpt-image-1.5 · OpenAI · refs, hq, fidelity", at most 100 characters."""
    parts = [f"{mark} {spec.key}", PROVIDER_NAMES.get(spec.provider, spec.provider)]
    if spec.tags:
        parts.append(", ".join(spec.tags))
    return clip(" · ".join(parts), MAX_CHOICE_CHARS)


def model_choices(
    specs: Iterable[ModelSpec], typed: str, breaker_state: Callable[[str], str]
) -> list[app_commands.Choice[str]]:
    """Usable models whose key or display name contains what was typed (any case), at most 25."""
    needle = " ".join(typed.split()).lower()
    chosen = [
        spec
        for spec in specs
        if len(spec.key) <= MAX_CHOICE_CHARS
        and (not needle or needle in spec.key.lower() or needle in spec.display_name.lower())
    ]
    return [
        app_commands.Choice(name=choice_name(spec, health_mark(breaker_state(spec.key))), value=spec.key)
        for spec in chosen[:MAX_CHOICES]
    ]
