"""DiscordPublisher: bot/publish.py's Publisher for Discord.

Each delivery goes into a thread on the story's storyboard message (or the channel when no thread
can be made; cogs/message_targets.py finds where). Posting is idempotent twice over: the deliver job
records what it published, and a scene whose message id is already stored is edited instead of posted
again; channel sends carry a nonce derived from the delivery key (discord.py adds ``enforce_nonce``),
so Discord itself drops a repeat of the same send. Every message goes out with ``AllowedMentions.none()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot.domain import ImageStatus, Scene, Story, StoryStatus, VideoStatus
from bot.jobs import Reschedule
from bot.media import MediaError
from bot.media_fit import fit_to_upload_limit
from bot.progress import progress_of
from bot.publish import Delivery
from cogs.buttons import redraw_view, retry_view
from cogs.message_targets import MessageTargets
from cogs.render import clip, scene_caption, storyboard_embed
from cogs.storyboard import DEFAULT_INTERVAL_S, StoryboardUpdater, load_board
from storage import scenes as scene_rows
from storage import stories as story_rows

if TYPE_CHECKING:
    from discord.ext import commands

    from bot.runtime import Runtime

log = logging.getLogger(__name__)

STORYBOARD_GRACE_S = 60.0  # how long a delivery waits for /story new to post the storyboard
STORYBOARD_WAIT_S = 1.0
ORDER_WAIT_S = 0.5  # an image waits for the scenes before it to be posted, so the thread reads in order
ORDER_PATIENCE_S = 120.0  # ...but never longer than this after it was drawn (an earlier delivery may be stuck)
NO_MENTIONS = discord.AllowedMentions.none()


def nonce_for(key: str) -> str:
    """Discord takes nonces of up to 25 characters; the same key always gives the same nonce."""
    return hashlib.sha256(key.encode()).hexdigest()[:25]


class DiscordPublisher:
    name = "discord"

    def __init__(
        self,
        *,
        upload_limit_bytes: int | None = None,
        storyboard_interval_s: float = DEFAULT_INTERVAL_S,
        storyboard_grace_s: float = STORYBOARD_GRACE_S,
    ) -> None:
        self.upload_limit_bytes = upload_limit_bytes  # None: the guild's own limit
        self.storyboard_interval_s = storyboard_interval_s
        self.storyboard_grace_s = storyboard_grace_s
        self._bot: commands.Bot | None = None
        self._runtime: Runtime | None = None
        self._updater: StoryboardUpdater | None = None
        self._targets: MessageTargets | None = None

    def bind(self, bot: commands.Bot, runtime: Runtime) -> None:
        self._bot = bot
        self._runtime = runtime
        self._updater = StoryboardUpdater(self._edit_storyboard, runtime.clock, self.storyboard_interval_s)
        self._targets = MessageTargets(bot, runtime, self.upload_limit_bytes)

    @property
    def bot(self) -> commands.Bot:
        if self._bot is None:
            raise RuntimeError("DiscordPublisher is not bound to a bot")
        return self._bot

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("DiscordPublisher is not bound to a runtime")
        return self._runtime

    @property
    def updater(self) -> StoryboardUpdater:
        if self._updater is None:
            raise RuntimeError("DiscordPublisher is not bound to a bot")
        return self._updater

    @property
    def targets(self) -> MessageTargets:
        if self._targets is None:
            raise RuntimeError("DiscordPublisher is not bound to a bot")
        return self._targets

    async def close(self, drain_timeout_s: float = 5.0) -> None:
        """Let pending storyboard edits land (briefly), then stop them."""
        if self._updater is None:
            return
        try:
            await asyncio.wait_for(self._updater.drain(), self.storyboard_interval_s + drain_timeout_s)
        except TimeoutError:
            log.warning("storyboard edits still pending at shutdown were dropped")
        await self._updater.close()

    # -- the storyboard ---------------------------------------------------------------------------

    async def attach_storyboard(self, story_id: str, message_id: int) -> None:
        """Remember the storyboard message of a story (posted by /story new), then refresh it."""
        rt = self.runtime
        async with rt.db.transaction() as conn:
            await story_rows.update(conn, story_id, now=rt.clock.now(), storyboard_message_id=message_id)
        self.updater.request(story_id)

    def refresh_storyboard(self, story_id: str) -> None:
        """Ask for a storyboard edit (throttled) after a change made outside the jobs, e.g. a button press."""
        self.updater.request(story_id)

    async def _edit_storyboard(self, story_id: str) -> None:
        board = await load_board(self.runtime.db, self.runtime.queue, story_id, settings=self.runtime.settings)
        if board is None or board.story.storyboard_message_id is None or board.story.channel_id is None:
            return
        channel = self.targets.messageable(board.story.channel_id, board.story)
        message = channel.get_partial_message(board.story.storyboard_message_id)
        try:
            await message.edit(embed=storyboard_embed(board), allowed_mentions=NO_MENTIONS)
        except discord.NotFound:
            log.info("the storyboard of story %s was deleted; not editing it", story_id)

    async def _ensure_storyboard(self, story: Story) -> Story:
        """The story with its storyboard message; posts one itself when /story new never managed to."""
        if story.storyboard_message_id is not None or story.channel_id is None:
            return story
        if self.runtime.clock.now() - story.created_at < self.storyboard_grace_s:
            raise Reschedule(STORYBOARD_WAIT_S, "waiting for the storyboard message")
        board = await load_board(self.runtime.db, self.runtime.queue, story.id, settings=self.runtime.settings)
        assert board is not None
        sent = await self.targets.messageable(story.channel_id, story).send(
            embed=storyboard_embed(board), allowed_mentions=NO_MENTIONS, nonce=nonce_for(f"storyboard:{story.id}")
        )
        await self.attach_storyboard(story.id, sent.id)
        return story.model_copy(update={"storyboard_message_id": sent.id})

    # -- publishing -------------------------------------------------------------------------------

    async def publish(self, delivery: Delivery) -> str | None:
        if delivery.story.channel_id is None:
            log.info("story %s was not started from Discord; nothing to post", delivery.story.id)
            return None
        story = await self._ensure_storyboard(delivery.story)
        reference = await self._deliver(story, delivery)
        self.updater.request(story.id)
        return reference

    async def _deliver(self, story: Story, delivery: Delivery) -> str | None:
        what, scene, key = delivery.what, delivery.scene, delivery.key
        if what == "written":
            return str(story.storyboard_message_id)  # the storyboard shows the title and the scenes
        if what == "story":
            self._wait_until_posted([s for s in delivery.scenes if not _posted(story, s)], story.updated_at, "the end")
            return await self._post(story, key, self._final_note(delivery))
        if scene is None or what not in ("image", "image_failed", "video", "video_failed"):
            log.warning("delivery %s (%s) is not one this publisher knows; skipped", key, what)
            return None
        if what in ("image", "image_failed"):
            earlier = [s for s in delivery.scenes if s.index < scene.index and s.image_message_id is None]
            self._wait_until_posted(earlier, scene.updated_at, f"scene {scene.index + 1}")
        else:  # a clip follows its own picture and the clips before it
            earlier = [s for s in delivery.scenes if s.index < scene.index and not _posted(story, s)]
            first = [scene] if scene.image_message_id is None else []
            self._wait_until_posted(first + earlier, scene.updated_at, f"scene {scene.index + 1}'s clip")
        if _outdated(what, scene):
            log.info("delivery %s: scene %s was retried since; its newer result is delivered instead", key, scene.id)
            return str(scene.image_message_id if what == "image_failed" else scene.video_message_id)
        if what == "image":
            image = _path(scene.image_path)
            return await self._post_scene(
                story, scene, key, "image", scene_caption(scene), image, view=redraw_view(scene.id)
            )
        if what == "image_failed":
            note = f"❌ The picture could not be drawn: {scene.image_error or 'unknown error'}"
            content = scene_caption(scene, extra=note)
            return await self._post_scene(story, scene, key, "image", content, view=redraw_view(scene.id))
        if what == "video":
            return await self._post_clip(story, scene, key)
        text = f"❌ Scene {scene.index + 1}'s clip failed: {scene.video_error or 'unknown error'}"
        return await self._post_scene(story, scene, key, "video", clip(text, 2000), view=retry_view(scene.id))

    def _wait_until_posted(self, waiting: list[Scene], since: float, what: str) -> None:
        """Keep the thread in reading order: reschedule while scenes that come first are not posted yet."""
        if waiting and self.runtime.clock.now() - since < ORDER_PATIENCE_S:
            raise Reschedule(ORDER_WAIT_S, f"{what} waits for scene {waiting[0].index + 1} to be posted")

    def _final_note(self, delivery: Delivery) -> str:
        story = delivery.story
        title = story.title or "The story"
        if story.status is StoryStatus.COMPLETE:
            progress = progress_of(story, delivery.scenes)
            text = f"✅ “{title}” is finished: {progress.drawn} of {progress.total} scenes drawn"
            if story.video_mode:
                text += f", {progress.animated} animated"
            if progress.failed:
                text += f", {progress.failed} failed"
            return clip(text + ".", 2000)
        return clip(f"❌ “{title}” could not be finished: {story.error or 'see the storyboard'}", 2000)

    async def _post_clip(self, story: Story, scene: Scene, key: str) -> str | None:
        source = _path(scene.video_path)
        if source is None:
            return await self._post_scene(story, scene, key, "video", f"❌ Scene {scene.index + 1}'s clip is missing.")
        try:
            fitted = await fit_to_upload_limit(source, self.targets.upload_limit(story))
        except MediaError as exc:
            log.warning("scene %s: clip does not fit Discord's upload limit: %s", scene.id, exc)
            text = f"❌ Scene {scene.index + 1}'s clip is too large to upload here, even re-encoded."
            return await self._post_scene(story, scene, key, "video", text)
        try:
            caption = f"🎬 Scene {scene.index + 1}"
            if scene.video_model_used and scene.video_model_used != scene.video_model_requested:
                caption += f" (animated with {scene.video_model_used})"
            return await self._post_scene(story, scene, key, "video", caption, fitted, upload_name=source)
        finally:
            if fitted != source:
                fitted.unlink(missing_ok=True)

    async def _post_scene(
        self,
        story: Story,
        scene: Scene,
        key: str,
        kind: str,
        content: str,
        file: Path | None = None,
        *,
        upload_name: Path | None = None,
        view: discord.ui.View | None = None,
    ) -> str:
        """Post (or, when the scene already has its message, edit) a scene's image or clip message.

        ``view`` holds the message's buttons; an edit without one removes any it had (a clip that landed
        after a Retry loses its button).
        """
        target = await self.targets.target(story)
        existing = scene.image_message_id if kind == "image" else scene.video_message_id
        attachments = [] if file is None else [_file(file, scene, kind, upload_name or file)]
        if existing is not None:
            try:
                await target.get_partial_message(existing).edit(
                    content=content, attachments=attachments, view=view, allowed_mentions=NO_MENTIONS
                )
                return str(existing)
            except discord.NotFound:
                log.info("scene %s: its %s message was deleted; posting a new one", scene.id, kind)
                attachments = [] if file is None else [_file(file, scene, kind, upload_name or file)]
        buttons: dict[str, Any] = {} if view is None else {"view": view}  # send() takes no view=None
        sent = await target.send(
            content=content, files=attachments, allowed_mentions=NO_MENTIONS, nonce=nonce_for(key), **buttons
        )
        rt = self.runtime
        async with rt.db.transaction() as conn:
            await scene_rows.set_message_id(conn, scene.id, kind=kind, message_id=sent.id, now=rt.clock.now())
        return str(sent.id)

    async def _post(self, story: Story, key: str, content: str) -> str:
        target = await self.targets.target(story)
        sent = await target.send(content=content, allowed_mentions=NO_MENTIONS, nonce=nonce_for(key))
        return str(sent.id)


def _posted(story: Story, scene: Scene) -> bool:
    """Whether everything a scene will show in the thread has been posted."""
    if scene.image_message_id is None:
        return False
    settled = scene.video_status in (VideoStatus.COMPLETE, VideoStatus.FAILED)
    return not (story.video_mode and settled and scene.video_message_id is None)


def _outdated(what: str, scene: Scene) -> bool:
    """A failure whose message exists, on a scene retried since: showing it would overwrite the newer state."""
    if what == "image_failed":
        return scene.image_status is not ImageStatus.FAILED and scene.image_message_id is not None
    if what == "video_failed":
        return scene.video_status is not VideoStatus.FAILED and scene.video_message_id is not None
    return False


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _file(path: Path, scene: Scene, kind: str, named_after: Path) -> discord.File:
    suffix = named_after.suffix or (".png" if kind == "image" else ".mp4")
    return discord.File(path, filename=f"scene-{scene.index + 1:02d}-{kind}{suffix}")
