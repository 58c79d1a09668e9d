"""DiscordPublisher: bot/publish/protocol.py's Publisher for Discord.

Each delivery goes into a thread on the story's storyboard message (or the channel when no thread
can be made; cogs/_targets.py finds where). Posting is idempotent twice over: the deliver job
records what it published, and a scene whose message id is already stored is edited instead of posted
again; channel sends carry a nonce derived from the delivery key (discord.py adds ``enforce_nonce``),
so Discord itself drops a repeat of the same send. Every message goes out with ``AllowedMentions.none()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot.domain import ImageStatus, Scene, Story, StoryStatus, VideoStatus
from bot.errors import DeliveryBlocked, MediaError
from bot.jobs import Reschedule
from bot.media.fit import fit_to_upload_limit
from bot.publish.protocol import Delivery
from bot.services.progress import progress_of
from cogs._buttons import post_again_view, redraw_view, retry_view
from cogs._render import clip, scene_caption, shown, story_label, storyboard_embed
from cogs._storyboard import DEFAULT_INTERVAL_S, StoryboardUpdater
from cogs._targets import (
    FORBIDDEN,
    THREAD_ARCHIVED,
    THREAD_LOCKED,
    THREAD_LOCKED_NOTE,
    UNKNOWN_CHANNEL,
    UNKNOWN_MESSAGE,
    MessageTargets,
    Place,
)

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

STORYBOARD_GRACE_S = 60.0  # how long a delivery waits for /story new to post the storyboard
STORYBOARD_WAIT_S = 1.0
ORDER_WAIT_S = 0.5  # an image waits for the scenes before it to be posted, so the thread reads in order
ORDER_PATIENCE_S = 120.0  # ...but never longer than this after it was drawn (an earlier delivery may be stuck)
NO_MENTIONS = discord.AllowedMentions.none()
REROUTES = 3  # thread -> unarchived thread, or a new thread -> the channel


def nonce_for(key: str) -> str:
    """Discord takes nonces of up to 25 characters; the same key always gives the same nonce."""
    return hashlib.sha256(key.encode()).hexdigest()[:25]


class DiscordPublisher:
    name = "discord"

    def __init__(
        self,
        bot: discord.Client,
        runtime: Runtime,
        *,
        upload_limit_bytes: int | None = None,
        storyboard_interval_s: float = DEFAULT_INTERVAL_S,
        storyboard_grace_s: float = STORYBOARD_GRACE_S,
    ) -> None:
        self.bot = bot
        self.clock = runtime.clock
        self.records = runtime.storyboards
        self.storyboard_interval_s = storyboard_interval_s
        self.storyboard_grace_s = storyboard_grace_s
        self.updater = StoryboardUpdater(self._edit_storyboard, runtime.clock, storyboard_interval_s)
        self.targets = MessageTargets(bot, runtime.storyboards, upload_limit_bytes)  # None: the guild's own limit
        self._offered: set[str] = set()  # stories whose owner was offered Post again in this run

    async def close(self, drain_timeout_s: float = 5.0) -> None:
        """Let pending storyboard edits land (briefly), then stop them."""
        try:
            await asyncio.wait_for(self.updater.drain(), self.storyboard_interval_s + drain_timeout_s)
        except TimeoutError:
            log.warning("storyboard edits still pending at shutdown were dropped")
        await self.updater.close()

    # -- the storyboard ---------------------------------------------------------------------------

    async def attach_storyboard(self, story_id: str, message_id: int) -> None:
        """Remember the storyboard message of a story (posted by /story new), then refresh it."""
        await self.records.attach(story_id, message_id)
        self.updater.request(story_id)

    def posting_again(self, story_id: str) -> None:
        """The owner pressed Post again: a new block is worth telling them about, and the storyboard is redone."""
        self._offered.discard(story_id)
        self.updater.request(story_id)

    def refresh_storyboard(self, story_id: str) -> None:
        """Ask for a storyboard edit (throttled) after a change made outside the jobs, e.g. a button press."""
        self.updater.request(story_id)

    async def _edit_storyboard(self, story_id: str) -> None:
        board = await self.records.board(story_id)
        if board is None:
            return
        story, channel_id, message_id = board.story, board.story.channel_id, board.story.storyboard_message_id
        if channel_id is None or message_id is None:
            return
        view = post_again_view(story.id) if story.undelivered else None

        def fields() -> dict[str, Any]:
            return {"embed": storyboard_embed(board), "view": view, "allowed_mentions": NO_MENTIONS}

        try:
            edited = await self._edit_message(story, channel_id, message_id, fields)
        except DeliveryBlocked as blocked:
            log.info("the storyboard of story %s cannot be edited: %s", story_id, blocked)
            await self._note_blocked(story, str(blocked))
            return
        if not edited:
            log.info("the storyboard of story %s is gone; posting a new one", story_id)
            with contextlib.suppress(DeliveryBlocked):  # then the next delivery parks, and says so
                await self._post_storyboard(story, f"storyboard:{story.id}:{message_id}")

    async def _ensure_storyboard(self, story: Story) -> Story:
        """The story with its storyboard message; posts one itself when /story new never managed to (or it
        was deleted since)."""
        if story.storyboard_message_id is not None or story.channel_id is None:
            return story
        if self.clock.now() - story.created_at < self.storyboard_grace_s:
            raise Reschedule(STORYBOARD_WAIT_S, "waiting for the storyboard message")
        message_id = await self._post_storyboard(story, f"storyboard:{story.id}")
        return story.model_copy(update={"storyboard_message_id": message_id})

    async def _post_storyboard(self, story: Story, nonce_key: str) -> int:
        """Post a storyboard message in the story's channel (none was posted, or it was deleted) and record it."""
        assert story.channel_id is not None
        board = await self.records.board(story.id)
        assert board is not None
        view: dict[str, Any] = {"view": post_again_view(story.id)} if board.story.undelivered else {}
        channel = self.targets.messageable(story.channel_id, story)
        try:
            sent = await channel.send(
                embed=storyboard_embed(board), allowed_mentions=NO_MENTIONS, nonce=nonce_for(nonce_key), **view
            )
        except discord.HTTPException as exc:
            raise self._blocked_or(story, story.channel_id, exc) from exc
        await self.attach_storyboard(story.id, sent.id)
        return sent.id

    # -- publishing -------------------------------------------------------------------------------

    async def publish(self, delivery: Delivery) -> str | None:
        if delivery.story.channel_id is None:
            log.info("story %s was not started from Discord; nothing to post", delivery.story.id)
            return None
        try:
            story = await self._ensure_storyboard(delivery.story)
            reference = await self._deliver(story, delivery)
        except DeliveryBlocked as blocked:
            await self._note_blocked(delivery.story, str(blocked))
            raise
        self._offered.discard(delivery.story.id)
        if delivery.what == "story":
            # The story's last edit is part of its last job, not a throttled edit in this process's memory: a
            # worker killed before making it leaves the job to run again, and the storyboard shows the story done.
            await self._edit_storyboard(story.id)
        else:
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
            note = f"❌ The picture could not be drawn: {shown(scene.image_error or 'unknown error')}"
            content = scene_caption(scene, extra=note)
            return await self._post_scene(story, scene, key, "image", content, view=redraw_view(scene.id))
        if what == "video":
            return await self._post_clip(story, scene, key)
        text = f"❌ Scene {scene.index + 1}'s clip failed: {shown(scene.video_error or 'unknown error')}"
        return await self._post_scene(story, scene, key, "video", clip(text, 2000), view=retry_view(scene.id))

    def _wait_until_posted(self, waiting: list[Scene], since: float, what: str) -> None:
        """Keep the thread in reading order: reschedule while scenes that come first are not posted yet."""
        if waiting and self.clock.now() - since < ORDER_PATIENCE_S:
            raise Reschedule(ORDER_WAIT_S, f"{what} waits for scene {waiting[0].index + 1} to be posted")

    def _final_note(self, delivery: Delivery) -> str:
        story = delivery.story
        title = shown(story.title or "The story")
        if story.status is StoryStatus.COMPLETE:
            progress = progress_of(story, delivery.scenes)
            text = f"✅ “{title}” is finished: {progress.drawn} of {progress.total} scenes drawn"
            if story.video_mode:
                text += f", {progress.animated} animated"
            if progress.failed:
                text += f", {progress.failed} failed"
            return clip(text + ".", 2000)
        return clip(f"❌ “{title}” could not be finished: {shown(story.error or 'see the storyboard')}", 2000)

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
        """Post (or, when the scene already has its message, edit in place) a scene's image or clip message.

        ``view`` holds the message's buttons; an edit without one removes any it had (a clip that landed
        after a Retry loses its button).
        """
        existing = scene.image_message_id if kind == "image" else scene.video_message_id

        def files() -> list[discord.File]:  # a File is spent by one request: every try gets new ones
            return [] if file is None else [_file(file, scene, kind, upload_name or file)]

        if existing is not None:
            story = await self.targets.fresh(story)
            home = self.targets.home(story)
            label = "" if home.in_thread else story_label(story)

            def fields() -> dict[str, Any]:
                return {
                    "content": label + content,
                    "attachments": files(),
                    "view": view,
                    "allowed_mentions": NO_MENTIONS,
                }

            if await self._edit_message(story, home.id, existing, fields):
                return str(existing)
            log.info("scene %s: its %s message cannot be edited where it was; posting a new one", scene.id, kind)
        sent = await self._send(story, key, content, files, view)
        await self.records.record_message(scene.id, kind, sent.id)
        return str(sent.id)

    async def _post(self, story: Story, key: str, content: str) -> str:
        sent = await self._send(story, key, content, list, None)
        return str(sent.id)

    async def _send(
        self,
        story: Story,
        key: str,
        content: str,
        files: Callable[[], list[discord.File]],
        view: discord.ui.View | None,
    ) -> discord.Message:
        """Send one message where the story goes; a lost thread moves it to a new thread or the channel."""
        buttons: dict[str, Any] = {} if view is None else {"view": view}  # send() takes no view=None
        for _ in range(REROUTES):
            place = await self.targets.target(story)
            text = content if place.in_thread else clip(story_label(story) + content, 2000)
            try:
                return await place.channel.send(
                    content=text, files=files(), allowed_mentions=NO_MENTIONS, nonce=nonce_for(key), **buttons
                )
            except discord.HTTPException as exc:
                story = await self._reroute(story, place, exc)
        raise DeliveryBlocked("the story's thread keeps disappearing")

    async def _reroute(self, story: Story, place: Place, exc: discord.HTTPException) -> Story:
        """After a failed send: the story as it is once its lost thread was dealt with; else raise."""
        if not place.in_thread:
            raise self._blocked_or(story, place.id, exc) from exc
        if exc.code == THREAD_ARCHIVED and await self.targets.unarchive(place.id):
            return story  # a send unarchives on its own unless the thread is locked; this is the rare other case
        if exc.code in (THREAD_ARCHIVED, THREAD_LOCKED):
            await self.targets.move_to_channel(story, THREAD_LOCKED_NOTE)
        elif exc.code == UNKNOWN_CHANNEL:
            await self.targets.forget_thread(story)
        else:
            raise self._blocked_or(story, place.id, exc) from exc
        return await self.targets.fresh(story)

    async def _edit_message(
        self, story: Story, channel_id: int, message_id: int, fields: Callable[[], dict[str, Any]]
    ) -> bool:
        """Edit one of the story's messages in place, unarchiving its thread when Discord archived it.

        False when the message cannot be edited where it is (deleted, or its thread locked or deleted): the
        caller posts anew. A missing permission raises DeliveryBlocked.
        """
        message = self.targets.messageable(channel_id, story).get_partial_message(message_id)
        try:
            await message.edit(**fields())
            return True
        except discord.HTTPException as exc:
            failure = exc
        if failure.code == THREAD_ARCHIVED:
            if not await self.targets.unarchive(channel_id):
                await self.targets.move_to_channel(story, THREAD_LOCKED_NOTE)
                return False
            try:
                await message.edit(**fields())
                return True
            except discord.HTTPException as exc:
                failure = exc
        if failure.code in (UNKNOWN_MESSAGE, THREAD_LOCKED):
            if failure.code == THREAD_LOCKED:
                await self.targets.move_to_channel(story, THREAD_LOCKED_NOTE)
            return False
        if failure.code == UNKNOWN_CHANNEL and channel_id == story.thread_id:
            await self.targets.forget_thread(story)
            return False
        raise self._blocked_or(story, channel_id, failure) from failure

    def _blocked_or(self, story: Story, channel_id: int, exc: discord.HTTPException) -> Exception:
        """What a failure that no reroute answers becomes: parked when the bot may not post, else itself."""
        if exc.code in FORBIDDEN:
            return self.targets.blocked(story, channel_id, exc)
        if exc.code == UNKNOWN_CHANNEL and channel_id == story.channel_id:
            return DeliveryBlocked("the story's channel was deleted")
        return exc

    async def _note_blocked(self, story: Story, reason: str) -> None:
        """Once per story: say on the storyboard what is missing, with a Post again button; else tell the
        owner in a direct message. The story's record of it is bot/pipeline/deliver.py's."""
        if story.id in self._offered:
            return
        self._offered.add(story.id)
        story = await self.targets.fresh(story)
        if story.undelivered is None:  # bot/pipeline/deliver.py records a parked delivery; this covers the storyboard
            await self.records.mark_undelivered(story.id, reason)
        board = await self.records.board(story.id)
        if board is not None and story.channel_id is not None and story.storyboard_message_id is not None:
            edit = {
                "embed": storyboard_embed(board),
                "view": post_again_view(story.id),
                "allowed_mentions": NO_MENTIONS,
            }
            with contextlib.suppress(DeliveryBlocked, discord.HTTPException):
                if await self._edit_message(story, story.channel_id, story.storyboard_message_id, lambda: edit):
                    return
        await self._tell_owner(story, reason)

    async def _tell_owner(self, story: Story, reason: str) -> None:
        if story.owner_id is None:
            return
        text = clip(
            f"⚠️ I could not post everything of your story {story_label(story).strip(' ·')}: {reason}. "
            "Once that is fixed, press **Post again** (or I will keep trying for a day).",
            2000,
        )
        try:
            channel = await self.bot.create_dm(discord.Object(story.owner_id))
            await channel.send(text, view=post_again_view(story.id), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.info("story %s: the owner cannot be told in a direct message either (%s)", story.id, exc.code)


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
