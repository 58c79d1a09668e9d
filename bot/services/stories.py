"""Creating stories: validate every user input, then store the story and queue its first job atomically.

Both the CLI and the Discord cog call ``StoryService.create``; neither touches storage directly.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from bot.clock import Clock
from bot.domain import GuildConfig, JobKind, Modality, Story
from bot.errors import ImageTooLarge, MediaError, UserInputError
from bot.jobs import JobQueue
from bot.media.probe import MAX_PICTURE_MEGAPIXELS, PICTURE_FORMATS, MediaLimits, decode_picture, off_loop
from bot.media.store import MediaStore
from bot.routing.catalog import LOCAL_MODELS
from bot.routing.registry import Registry
from bot.services.quotas import Quotas
from bot.settings import Settings
from storage import guilds
from storage import stories as story_rows
from storage.db import Database

MAX_PROMPT_CHARS = 1000
MAX_STYLE_CHARS = 200
MIN_SCENES, MAX_SCENES = 1, 10
MAX_REFERENCE_MEGAPIXELS = MAX_PICTURE_MEGAPIXELS  # the cap every picture has (bot.media_probe)
# Verdicts on references recently checked, by their bytes' digest: one command validates its reference
# several times (before it answers, then when it stores the story), and it is decoded only the first time.
REFERENCE_VERDICTS_KEPT = 64


@dataclass(frozen=True, slots=True)
class ReferenceVerdict:
    """What checking a reference found: its file extension, or the one sentence saying what to fix."""

    ext: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class StoryOptions:
    prompt: str
    scenes: int = 4
    video: bool = False
    text_model: str | None = None
    image_model: str | None = None
    video_model: str | None = None
    style: str | None = None
    reference: bytes | None = None  # the user's reference image, as uploaded
    guild_id: int | None = None
    channel_id: int | None = None
    owner_id: int | None = None
    out_dir: Path | None = None
    in_channel_because: str | None = None  # post the scenes in the channel, not a thread, for this reason


def one_line(text: str) -> str:
    """Whitespace runs made one space, control characters dropped; empty when nothing visible is left
    (zero-width spaces and joiners stay inside words but do not count as text on their own)."""
    kept = " ".join("".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) != "Cc").split())
    return kept if any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in kept) else ""


def clean_prompt(prompt: str) -> str:
    text = one_line(prompt)
    if not text:
        raise UserInputError("the prompt is empty: describe the story you want, e.g. 'a fox who learns to fly'")
    if len(text) > MAX_PROMPT_CHARS:
        raise UserInputError(f"the prompt is {len(text)} characters long; keep it to {MAX_PROMPT_CHARS} or fewer")
    return text


def check_scene_count(scenes: int) -> int:
    if not MIN_SCENES <= scenes <= MAX_SCENES:
        raise UserInputError(f"scenes must be between {MIN_SCENES} and {MAX_SCENES} (got {scenes})")
    return scenes


def clean_style(style: str | None) -> str | None:
    if style is None:
        return None
    text = one_line(style)
    if len(text) > MAX_STYLE_CHARS:
        raise UserInputError(f"the style is {len(text)} characters long; keep it to {MAX_STYLE_CHARS} or fewer")
    return text or None


class StoryService:
    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        registry: Registry,
        media: MediaStore,
        settings: Settings,
        clock: Clock,
        *,
        quotas: Quotas | None = None,
    ) -> None:
        self.db = db
        self.media = media
        self.queue = queue
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.quotas = quotas or Quotas(db, settings, clock)
        self._verdicts: OrderedDict[bytes, ReferenceVerdict] = OrderedDict()

    def default_model(self, modality: Modality, config: GuildConfig | None = None) -> str:
        """The first usable model of the server's chain (set with /config), then of the operator's chain;
        the local model when none is usable."""
        route = config.routing.get(modality) if config is not None else None
        chain = [*(route.chain if route else []), *self.settings.routing[modality].chain]
        for key in chain:
            if self.registry.get(key) is not None and self.registry.availability(key).usable:
                return key
        return LOCAL_MODELS[modality]

    def judge_reference(self, data: bytes) -> ReferenceVerdict:
        """Size, pixel cap, a full decode and the format, as a verdict. Blocking (decodes)."""
        limit = self.settings.max_reference_bytes
        if len(data) > limit:
            return ReferenceVerdict(
                problem=f"the reference image is {len(data) / 2**20:.1f} MiB; keep it under {limit / 2**20:.0f} MiB"
            )
        try:
            info = decode_picture(data, MediaLimits(picture_bytes=limit))
        except ImageTooLarge as exc:
            return ReferenceVerdict(
                problem=f"the reference image is {exc}; keep it under {MAX_REFERENCE_MEGAPIXELS} megapixels"
            )
        except MediaError:
            return ReferenceVerdict(problem="the reference is not an image: attach a PNG, JPEG or WebP picture")
        kind = PICTURE_FORMATS.get(info.format)
        if kind is None:
            return ReferenceVerdict(
                problem=f"the reference is a {info.format} image: attach a PNG, JPEG or WebP picture"
            )
        return ReferenceVerdict(ext=kind.ext)

    async def reference_verdict(self, data: bytes) -> ReferenceVerdict:
        """``judge_reference`` off the event loop, decoding each distinct reference once (see
        REFERENCE_VERDICTS_KEPT): a big picture takes a CPU for a second, and other members are waiting."""
        if len(data) > self.settings.max_reference_bytes:
            return self.judge_reference(data)  # refused on its size alone: nothing to hash or decode
        digest = await off_loop(_digest, data)
        verdict = self._verdicts.get(digest)
        if verdict is None:
            verdict = await off_loop(self.judge_reference, data)
            self._verdicts[digest] = verdict
            while len(self._verdicts) > REFERENCE_VERDICTS_KEPT:
                self._verdicts.popitem(last=False)
        else:
            self._verdicts.move_to_end(digest)
        return verdict

    async def prepare(self, options: StoryOptions) -> Story:
        """``validate`` with the server's /config (its default models, video on or off). Stores nothing.
        A reference is decoded off the event loop, once however often the same bytes are prepared."""
        return (await self._prepare(options))[0]

    async def _prepare(self, options: StoryOptions) -> tuple[Story, ReferenceVerdict | None]:
        config = await guilds.get(self.db, options.guild_id) if options.guild_id is not None else None
        verdict = await self.reference_verdict(options.reference) if options.reference is not None else None
        return self.validate(options, config, reference=verdict), verdict

    def validate(
        self, options: StoryOptions, config: GuildConfig | None = None, *, reference: ReferenceVerdict | None = None
    ) -> Story:
        """Build the Story row from options (and the server's config), or raise UserInputError. Touches nothing.

        ``reference`` is the verdict on ``options.reference`` when the caller has it (``prepare``); without
        it the reference is checked here, on the calling thread.
        """
        prompt = clean_prompt(options.prompt)
        scenes = check_scene_count(options.scenes)
        style = clean_style(options.style)
        text_key = options.text_model or self.default_model(Modality.TEXT, config)
        text = self.registry.require_usable(text_key, Modality.TEXT)
        image_key = options.image_model or self.default_model(Modality.IMAGE, config)
        image = self.registry.require_usable(image_key, Modality.IMAGE)
        video_key = None
        if options.video:
            if config is not None and not config.video_enabled:
                raise UserInputError("video is turned off in this server; run the story again without video")
            video_key = self.registry.require_usable(
                options.video_model or self.default_model(Modality.VIDEO, config), Modality.VIDEO
            ).key
        elif options.video_model:
            raise UserInputError("a video model was given without video: turn video on, or leave the model out")
        if options.reference is not None:
            _ext_or_raise(reference or self.judge_reference(options.reference))
            if not image.supports_references:
                raise UserInputError(f"{image.key} cannot take a reference image; pick a model tagged 'refs'")
        now = self.clock.now()
        return Story(
            guild_id=options.guild_id,
            channel_id=options.channel_id,
            owner_id=options.owner_id,
            prompt=prompt,
            style=style,
            text_model=text.key,
            image_model=image.key,
            video_model=video_key,
            video_mode=options.video,
            scene_count=scenes,
            out_dir=str(options.out_dir) if options.out_dir else None,
            post_in_channel=options.in_channel_because is not None,
            delivery_note=options.in_channel_because,
            created_at=now,
            updated_at=now,
        )

    async def create(self, options: StoryOptions) -> Story:
        """Validate, then check the user's limits, count the usage and store the story and its write_story job,
        all in one transaction.

        A reference image is copied into the media store first (under a uuid name); if the
        transaction fails, the copy is removed, so nothing is left half-made.
        """
        story, verdict = await self._prepare(options)
        stored = None
        if options.reference is not None and verdict is not None:
            stored = await self.media.write_bytes(story.id, options.reference, _ext_or_raise(verdict))
            story.reference_path = stored.ref
        try:
            await self._insert(story)
        except BaseException:
            if stored is not None:
                await self.media.discard(stored)
            raise
        return story

    async def _insert(self, story: Story) -> None:
        async with self.db.transaction() as conn:
            await self.quotas.charge_story(conn, story)  # before the insert: the new story is not counted as running
            await story_rows.insert(conn, story)
            await self.queue.enqueue(
                JobKind.WRITE_STORY,
                {"story_id": story.id},
                idempotency_key=f"write:{story.id}",
                story_id=story.id,
                user_id=story.owner_id,
                provider=self.registry.resolve(story.text_model).provider,
                conn=conn,
            )


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _ext_or_raise(verdict: ReferenceVerdict) -> str:
    if verdict.ext is None:
        raise UserInputError(verdict.problem or "the reference is not an image: attach a PNG, JPEG or WebP picture")
    return verdict.ext
