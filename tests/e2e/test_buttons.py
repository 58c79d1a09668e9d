"""Retry and Redraw buttons, end to end: the real StoryBot against the fake Discord (and, for a clip that
fails, the fake xAI), across a restart of the bot, with strangers, moderators, double presses and forged
custom_ids."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.domain import JobKind, Scene, Story, StoryStatus, VideoStatus
from bot.services.scene_actions import SCENE_ID
from storage import jobs as job_rows
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage import testing as storage_testing
from storage.db import Database
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import PERM_MANAGE_MESSAGES, CallbackRecord, FakeMessage
from tests.fakes.providers import FakeProviders, Fault
from tests.support.discord_harness import (
    OWNER,
    STORY_TIMEOUT_S,
    decode_clip,
    embed_text,
    make_settings,
    running,
    storyboard_done,
)

STRANGER, MODERATOR = 301, 302
ACK_S = 10.0  # generous: the fake's own 3 s deadline is what the bot must meet


@pytest.fixture
async def providers() -> AsyncIterator[FakeProviders]:
    async with FakeProviders() as server:
        yield server


def ids_of(message: FakeMessage) -> list[str]:
    return message.custom_ids


def button(message: FakeMessage) -> dict[str, Any]:
    [row] = message.components
    [only] = row["components"]
    return only


def thread_messages(server: FakeDiscord, board: FakeMessage) -> list[FakeMessage]:
    # The thread started on the storyboard shares its id; private answers to presses are not part of it.
    return [m for m in server.channel_messages(board.id) if not m.ephemeral]


def end_notes(server: FakeDiscord, board: FakeMessage) -> list[FakeMessage]:
    return [m for m in thread_messages(server, board) if "is finished" in m.content]


async def start_story(server: FakeDiscord, options: dict[str, Any]) -> FakeMessage:
    handle = await server.slash(OWNER, "story", "new", options=options)
    await server.wait_until(lambda: handle.original and handle.original.embeds, STORY_TIMEOUT_S, "the storyboard")
    board = handle.original
    assert board is not None
    await server.wait_until(lambda: end_notes(server, board), STORY_TIMEOUT_S, "the story's end")
    return board


async def only_story(db: Database) -> tuple[Story, Scene]:
    [story] = await storage_testing.list_all(db)
    [scene] = await scene_rows.list_for_story(db, story.id)
    return story, scene


async def render_jobs(db: Database, story_id: str, kind: JobKind) -> int:
    return sum(job.kind is kind for job in await job_rows.list_for_story(db, story_id))


def attachment_named(message: FakeMessage, suffix: str) -> Any:
    found = [a for a in message.attachments if a.filename.endswith(suffix)]
    return found[0] if found else None


async def refused(server: FakeDiscord, user_id: int, message: FakeMessage, custom_id: str) -> str:
    """Press as ``user_id``; the answer must be private and leave the message as it was."""
    edits = message.edit_count
    ack = await (await server.click(user_id, message.id, custom_id)).ack(ACK_S)
    assert (ack.type, ack.status, ack.ephemeral) == (4, 200, True), ack
    assert ack.data["allowed_mentions"]["parse"] == []
    assert server.message(message.id).edit_count == edits
    return str(ack.data["content"])


async def test_a_failed_clip_is_retried_after_a_restart(
    fake: FakeDiscord,
    providers: FakeProviders,
    tmp_path: Path,
) -> None:
    fake.add_member(STRANGER, "stranger")
    settings = make_settings(tmp_path, fake, xai_api_key="xai-test", xai_base_url=providers.xai_base_url)
    settings = settings.model_copy(update={"video_poll_s": 0.05})  # polls while the clip is held back
    providers.fail_always("xai.videos.create", Fault.content_policy())
    async with running(settings, storyboard_interval_s=0.2):
        options = {"prompt": "a fox who learns to fly", "scenes": 1, "video": True, "image_model": "local-sketch",
                   "video_model": "grok-imagine-video"}  # fmt: skip
        board = await start_story(fake, options)

    providers.reset()  # xAI accepts the clip now
    providers.video_pending_polls = 10**6  # ...but holds it back until both presses are answered
    async with running(settings, storyboard_interval_s=0.2) as bot:
        db = bot.runtime.db
        story, scene = await only_story(db)
        assert story.status is StoryStatus.COMPLETE and scene.video_status is VideoStatus.FAILED
        failed = fake.message(scene.video_message_id or 0)
        custom_id = f"storybot:retry:{scene.id}"
        assert ids_of(failed) == [custom_id] and not button(failed).get("disabled")
        assert failed.content.startswith("❌ Scene 1's clip failed: grok-imagine-video blocked the prompt")
        assert failed.attachments == []

        text = await refused(fake, STRANGER, failed, custom_id)
        assert text == "⚠️ Only the story's owner or a member with Manage Messages can retry this clip."
        assert await render_jobs(db, story.id, JobKind.RENDER_VIDEO) == 1

        presses = [await fake.click(OWNER, failed.id, custom_id), await fake.click(OWNER, failed.id, custom_id)]
        acks: list[CallbackRecord] = sorted([await p.ack(ACK_S) for p in presses], key=lambda a: a.type)
        busy, pressed = acks
        assert (busy.type, busy.ephemeral, pressed.type) == (4, True, 7)
        assert "clip is already being made" in busy.data["content"]
        assert await render_jobs(db, story.id, JobKind.RENDER_VIDEO) == 2
        retrying = fake.message(failed.id)
        assert retrying.content.startswith("🔁 Retrying scene 1's clip…")
        assert ids_of(retrying) == [custom_id] and button(retrying)["disabled"] is True

        providers.video_pending_polls = 0
        await fake.wait_until(lambda: attachment_named(fake.message(failed.id), ".mp4"), STORY_TIMEOUT_S, "the clip")
        landed = fake.message(failed.id)
        assert landed.content == "🎬 Scene 1" and landed.components == []
        assert decode_clip(attachment_named(landed, ".mp4").data) > 0
        await fake.wait_until(lambda: storyboard_done(fake, board.id, 1, True), STORY_TIMEOUT_S, "storyboard done")
        story, scene = await only_story(db)
        assert story.status is StoryStatus.COMPLETE and scene.video_status is VideoStatus.COMPLETE
        assert len(providers.calls("xai.videos.create")) == 1
        assert len(end_notes(fake, board)) == 1  # the end is not announced again
        assert len(thread_messages(fake, board)) == 3  # picture, clip, end: the retry posted nothing new


async def test_a_retry_that_fails_again_shows_the_new_error_and_a_fresh_button(
    fake: FakeDiscord,
    providers: FakeProviders,
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, fake, xai_api_key="xai-test", xai_base_url=providers.xai_base_url)
    providers.fail_always("xai.videos.create", Fault.content_policy())
    async with running(settings, storyboard_interval_s=0.2) as bot:
        options = {"prompt": "a fox who learns to fly", "scenes": 1, "video": True, "image_model": "local-sketch",
                   "video_model": "grok-imagine-video"}  # fmt: skip
        board = await start_story(fake, options)
        story, scene = await only_story(bot.runtime.db)
        failed = fake.message(scene.video_message_id or 0)
        custom_id = f"storybot:retry:{scene.id}"
        providers.reset()  # accepted this time, but the render fails
        providers.fail_always("xai.videos.poll", Fault.video_failed(message="The render farm is down."))

        ack = await (await fake.click(OWNER, failed.id, custom_id)).ack(ACK_S)
        assert ack.type == 7 and ack.data["content"].startswith("🔁 Retrying")

        def failed_again() -> bool:
            message = fake.message(failed.id)
            return "The render farm is down" in message.content and not button(message).get("disabled")

        await fake.wait_until(failed_again, STORY_TIMEOUT_S, "the second failure")
        assert fake.message(failed.id).content.startswith("❌ Scene 1's clip failed: ")
        assert ids_of(fake.message(failed.id)) == [custom_id]
        await fake.wait_until(lambda: "1 failed" in (board_text(fake, board) or ""), STORY_TIMEOUT_S, "the board")
        story, scene = await only_story(bot.runtime.db)
        assert story.status is StoryStatus.COMPLETE and scene.video_status is VideoStatus.FAILED
        assert len(end_notes(fake, board)) == 1 and len(thread_messages(fake, board)) == 3


def board_text(server: FakeDiscord, board: FakeMessage) -> str | None:
    message = server.messages_by_id.get(board.id)
    return embed_text(message) if message is not None and message.embeds else None


async def test_redraw_by_a_moderator_replaces_the_picture_and_its_clip(fake: FakeDiscord, tmp_path: Path) -> None:
    fake.add_member(STRANGER, "stranger")
    fake.add_member(MODERATOR, "moderator", PERM_MANAGE_MESSAGES)
    settings = make_settings(tmp_path, fake)
    async with running(settings, storyboard_interval_s=0.2) as bot:
        board = await start_story(fake, {"prompt": "a snail races", "scenes": 1, "video": True})
        story, scene = await only_story(bot.runtime.db)
        picture, clip_message = fake.message(scene.image_message_id or 0), fake.message(scene.video_message_id or 0)
        custom_id = f"storybot:redraw:{scene.id}"
        assert ids_of(picture) == [custom_id] and ids_of(clip_message) == []
        old_png = attachment_named(picture, ".png").data
        old_mp4 = attachment_named(clip_message, ".mp4").data

        text = await refused(fake, STRANGER, picture, custom_id)
        assert "Only the story's owner or a member with Manage Messages can redraw this picture" in text

        ack = await (await fake.click(MODERATOR, picture.id, custom_id)).ack(ACK_S)
        assert (ack.type, ack.status) == (7, 200)
        assert "🎨 Redrawing this picture…" in ack.data["content"] and ack.data["content"].startswith("**Scene 1**")
        assert ack.data["components"][0]["components"][0]["disabled"] is True

        def redrawn() -> bool:
            png = attachment_named(fake.message(picture.id), ".png")
            mp4 = attachment_named(fake.message(clip_message.id), ".mp4")
            return bool(png and mp4 and png.data != old_png and mp4.data != old_mp4)

        await fake.wait_until(redrawn, STORY_TIMEOUT_S, "the new picture and clip")
        await fake.wait_until(lambda: storyboard_done(fake, board.id, 1, True), STORY_TIMEOUT_S, "storyboard done")
        new_picture = fake.message(picture.id)
        assert Image.open(io.BytesIO(attachment_named(new_picture, ".png").data)).size[0] > 0
        assert decode_clip(attachment_named(fake.message(clip_message.id), ".mp4").data) > 0
        assert "Redrawing" not in new_picture.content and not button(new_picture).get("disabled")
        story, scene = await only_story(bot.runtime.db)
        assert story.status is StoryStatus.COMPLETE
        assert len(end_notes(fake, board)) == 1 and len(thread_messages(fake, board)) == 3


async def test_forged_buttons_get_a_clear_answer_and_change_nothing(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fake)
    async with running(settings) as bot:
        db, now = bot.runtime.db, bot.runtime.clock.now()
        elsewhere = Story(guild_id=fake.guild_id + 1, owner_id=OWNER, prompt="p", text_model="local-template",
                          image_model="local-sketch", scene_count=1, created_at=now, updated_at=now)  # fmt: skip
        gone = Story(**{**elsewhere.model_dump(exclude={"id"}), "guild_id": fake.guild_id})
        far_scene = Scene(story_id=elsewhere.id, index=0, text="t", updated_at=now)
        gone_scene = Scene(story_id=gone.id, index=0, text="t", updated_at=now)
        async with db.transaction() as conn:
            for story, scene in ((elsewhere, far_scene), (gone, gone_scene)):
                await story_rows.insert(conn, story)
                await scene_rows.insert_many(conn, [scene])
            await story_rows.delete(conn, gone.id)
        assert SCENE_ID.fullmatch(far_scene.id) and SCENE_ID.fullmatch(gone_scene.id)

        cases = {
            "storybot:retry:../../etc/passwd": "was not made by storybot",
            "storybot:redraw:": "was not made by storybot",
            f"storybot:redraw:{far_scene.id}": "belongs to a story in another server",
            f"storybot:retry:{far_scene.id}": "belongs to a story in another server",
            f"storybot:retry:{gone_scene.id}": "no longer exists",
        }
        for custom_id, expected in cases.items():
            components = [
                {"type": 1, "components": [{"type": 2, "style": 1, "label": "Retry", "custom_id": custom_id}]}
            ]
            forged = fake.store.create(fake.channel_id, {"content": "forged", "components": components}, [],
                                       author=fake.bot_user)  # fmt: skip
            text = await refused(fake, OWNER, forged, custom_id)
            assert expected in text and "nothing was changed" in text, text
        assert sum((await bot.runtime.queue.counts()).values()) == 0
        [scene] = await scene_rows.list_for_story(db, elsewhere.id)
        assert scene == far_scene
