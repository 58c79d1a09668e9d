"""The real StoryBot (Runtime with the local models, DiscordPublisher) against the fake Discord."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path
from typing import Any

import discord
import pytest
from PIL import Image

from bot.app import StoryBot
from bot.domain import JobStatus, StoryStatus
from bot.publish.protocol import Delivery
from bot.runtime import Runtime
from bot.settings import load_settings
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import GUILD_ID
from tests.support.discord_harness import (
    CLIP_LIMIT,
    OWNER,
    decode_clip,
    make_settings,
    png_bytes,
    running,
    wait_for_story,
)


async def test_story_with_video_from_command_to_posted_clips(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fake)
    fake.attachment_size_limit = CLIP_LIMIT
    async with running(settings, upload_limit_bytes=CLIP_LIMIT, storyboard_interval_s=0.5) as bot:
        reference = fake.upload("hero.png", png_bytes(), "image/png")
        options = {"prompt": "a fox who learns to fly @everyone", "scenes": 2, "video": True, "reference": reference}
        handle = await fake.slash(OWNER, "story", "new", options=options)
        ack = await handle.ack()
        assert (ack.type, ack.status) == (5, 200)
        assert ack.elapsed_s < fake.ack_deadline_s
        await fake.wait_until(lambda: handle.original and handle.original.embeds, what="first storyboard")
        fake.expire_tokens()  # as if 15 minutes had passed: the storyboard must still be edited
        board = await wait_for_story(fake, handle, scenes=2, video=True)

        [story] = await storage_testing.list_all(bot.runtime.db)
        assert story.status is StoryStatus.COMPLETE and story.reference_path
        assert (story.storyboard_message_id, story.owner_id, story.channel_id) == (board.id, OWNER, fake.channel_id)
        assert fake.channel_messages() == [board]  # the scenes went into the thread, not the channel
        [thread] = fake.threads()
        assert thread.id == board.id == story.thread_id and thread.name == story.title

        posted = fake.channel_messages(thread.id)
        images = [a for m in posted for a in m.attachments if a.filename.endswith(".png")]
        clips = [a for m in posted for a in m.attachments if a.filename.endswith(".mp4")]
        assert [a.filename for a in images] == ["scene-01-image.png", "scene-02-image.png"]
        assert sorted(a.filename for a in clips) == ["scene-01-video.mp4", "scene-02-video.mp4"]
        for image in images:
            assert Image.open(io.BytesIO(image.data)).size[0] > 0
        for clip in clips:
            assert clip.size <= CLIP_LIMIT
            assert decode_clip(clip.data) > 10
        rows = await scene_rows.list_for_story(bot.runtime.db, story.id)
        assert any(Path(s.video_path or "").stat().st_size > CLIP_LIMIT for s in rows), "no clip needed re-encoding"
        by_id = {m.id: m for m in posted}
        for scene in rows:
            assert scene.image_message_id in by_id and scene.video_message_id in by_id
            assert by_id[scene.image_message_id].content.startswith(f"**Scene {scene.index + 1}**\n")
        assert "is finished: 2 of 2 scenes drawn, 2 animated" in posted[-1].content

        for message in [board, *posted]:
            assert message.allowed_mentions is not None and message.allowed_mentions["parse"] == [], message.content
        assert all(isinstance(m.nonce, str) and len(m.nonce) == 25 for m in posted)
        assert len({m.nonce for m in posted}) == len(posted)
        assert len(fake.callbacks) == 1  # only the defer: every later change went through channel routes
        assert fake.requests_to("channel_edit_message"), "the storyboard was never edited through the channel"


async def test_autocomplete_lists_usable_models_filtered(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fake, openai_api_key="sk-test", dev_guild_id=GUILD_ID)
    async with running(settings):
        assert {"story", "config"} <= {c["name"] for c in fake.guild_commands} and fake.global_commands == []

        async def names(option: str, typed: str) -> list[str]:
            choices = await fake.autocomplete(OWNER, "story", "new", options={option: typed}, focused=option)
            assert len(choices) <= 25
            assert all(len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in choices)
            return [c["value"] for c in choices]

        assert await names("image_model", "") == ["gpt-image-1.5", "gpt-image-1-mini", "local-sketch"]
        assert await names("image_model", "MINI") == ["gpt-image-1-mini"]
        assert await names("image_model", "sketch") == ["local-sketch"]
        assert await names("image_model", "grok") == []  # known, but no xAI key: not usable
        assert await names("video_model", "") == ["local-kenburns"]
        [choice] = await fake.autocomplete(OWNER, "story", "new", options={"image_model": "1.5"}, focused="image_model")
        assert choice["name"] == "🟢 gpt-image-1.5 · OpenAI · refs, hq, fidelity"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"prompt": "   "}, "the prompt is empty"),
        ({"prompt": "a cat", "scenes": 11}, "scenes must be between 1 and 10"),
        (
            {"prompt": "a cat", "image_model": "xyzzy-art"},
            "unknown model 'xyzzy-art'; usable image models: local-sketch",
        ),
        (
            {"prompt": "a cat", "image_model": "gpt-image-1.5"},
            "(set OPENAI_API_KEY); usable image models: local-sketch",
        ),
        ({"prompt": "a cat", "video_model": "local-kenburns"}, "a video model was given without video"),
        ({"prompt": "a cat", "reference": ("notes.txt", b"hello", "text/plain")}, "must be an image"),
        ({"prompt": "a cat", "reference": ("fake.png", b"not a png", "image/png")}, "the reference is not an image"),
    ],
    ids=["empty-prompt", "scenes-11", "unknown-model", "unusable-model", "video-model-alone", "text-file", "bad-png"],
)
async def test_bad_input_gets_an_ephemeral_message_and_stores_nothing(
    fake: FakeDiscord, tmp_path: Path, options: dict[str, Any], expected: str
) -> None:
    settings = make_settings(tmp_path, fake)
    async with running(settings) as bot:
        if "reference" in options:
            options = {**options, "reference": fake.upload(*options["reference"])}
        handle = await fake.slash(OWNER, "story", "new", options=options)
        ack = await handle.ack()
        assert (ack.type, ack.status, ack.ephemeral) == (4, 200, True)
        assert expected in ack.data["content"], ack.data["content"]
        assert await storage_testing.list_all(bot.runtime.db) == []
        assert sum((await bot.runtime.queue.counts()).values()) == 0
        assert [m for m in fake.channel_messages() if not m.ephemeral] == [] and fake.threads() == []


async def test_a_restarted_bot_posts_nothing_twice(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fake)
    async with running(settings, storyboard_interval_s=0.2):
        handle = await fake.slash(
            OWNER, "story", "new", options={"prompt": "a snail races", "scenes": 1, "video": True}
        )
        first_board = await wait_for_story(fake, handle, scenes=1, video=True)
    [thread] = fake.threads()
    before = [(m.id, m.content, m.edit_count) for m in fake.channel_messages(thread.id)]
    assert len(before) == 3  # image, clip, final note

    async with running(settings, storyboard_interval_s=0.2) as bot:
        # A second story proves the restarted workers drained the queue; the first story gets nothing new.
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "a crab dances", "scenes": 1})
        await wait_for_story(fake, handle, scenes=1, video=False)
        assert [(m.id, m.content, m.edit_count) for m in fake.channel_messages(thread.id)] == before
        assert len(fake.threads()) == 2 and fake.channel_messages() == [first_board, handle.original]
        assert (await bot.runtime.queue.counts())[JobStatus.QUEUED] == 0

        # A crash between posting and recording the delivery re-runs it: the clip message is edited, not re-posted.
        story = await story_rows.get(bot.runtime.db, (await storage_testing.list_all(bot.runtime.db))[-1].id)
        assert story is not None and story.thread_id == thread.id
        [scene] = await scene_rows.list_for_story(bot.runtime.db, story.id)
        keys = await storage_testing.keys_for_story(bot.runtime.db, story.id)
        [video_key] = [k for k in keys if k.startswith("deliver:video:")]
        again = Delivery(key=video_key, what="video", story=story, scenes=[scene], scene=scene)
        reference = await bot.publisher.publish(again)
        assert scene.video_message_id is not None and reference == str(scene.video_message_id)
        after = fake.channel_messages(thread.id)
        assert [m.id for m in after] == [m[0] for m in before]
        assert fake.message(scene.video_message_id).edit_count == 1
        assert fake.message(scene.video_message_id).attachments[0].filename == "scene-01-video.mp4"


async def test_a_rejected_token_is_one_clear_line_and_exit_2(fake: FakeDiscord, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DISCORD_TOKEN": "not-the-token",
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "DATABASE_PATH": str(tmp_path / "db.sqlite"),
        "MEDIA_DIR": str(tmp_path / "media"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2, stderr.decode()
    assert (
        stderr.decode().strip() == "storybot: Discord rejected DISCORD_TOKEN (login failed); copy the bot token again"
    )
    assert stdout == b""
    assert [r.route for r in fake.requests] == ["get_me"]


def test_storybot_refuses_a_runtime_without_the_discord_publisher(tmp_path: Path) -> None:
    settings = load_settings(database_path=tmp_path / "db.sqlite", media_dir=tmp_path / "media")
    with pytest.raises(TypeError, match="DiscordPublisher"):
        StoryBot(Runtime(settings), intents=discord.Intents.none())
