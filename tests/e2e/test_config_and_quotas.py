"""/config and the per-user limits: the real StoryBot against the fake Discord."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain import GuildConfig, StoryStatus
from bot.services.quotas import utc_day
from bot.services.stories import StoryOptions
from storage import guilds
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_interactions import InteractionHandle
from tests.fakes.discord_state import GUILD_ID, FakeChannel
from tests.support.discord_harness import OWNER, make_settings, running, wait_for_story

ADMIN = 202
MANAGE_GUILD = 1 << 5
NO_PERMISSION = "You need the Manage Server permission to change storybot's settings here."
NO_NETWORK = "http://127.0.0.1:9/v1"  # OpenAI models count as usable, but nothing here may call them


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_member(OWNER, "owner")
        server.add_member(ADMIN, "admin", permissions=MANAGE_GUILD)
        yield server


async def config(fake: FakeDiscord, user: int, subcommand: str, **options: Any) -> str:
    """Run /config <subcommand> and return its answer, which must be ephemeral."""
    handle = await fake.slash(user, "config", subcommand, options=options)
    ack = await handle.ack()
    assert (ack.type, ack.status, ack.ephemeral) == (4, 200, True), ack.data
    return str(ack.data["content"])


async def new_story(fake: FakeDiscord, **options: Any) -> tuple[InteractionHandle, Any]:
    handle = await fake.slash(OWNER, "story", "new", options={"prompt": "an otter opens a bakery", **options})
    return handle, await handle.ack()


def assert_refused(ack: Any, expected: str) -> None:
    assert (ack.type, ack.status, ack.ephemeral) == (4, 200, True), ack.data
    assert ack.data["content"].startswith("⚠️ Cannot start the story: ")
    assert expected in ack.data["content"], ack.data["content"]


async def test_config_is_refused_without_manage_guild_and_stores_nothing(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, fake)) as bot:
        [command] = [c for c in fake.global_commands + fake.guild_commands if c["name"] == "config"]
        assert int(command["default_member_permissions"]) == MANAGE_GUILD
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("show", {}),
            ("video", {"enabled": False}),
            ("limits", {"images": 1}),
            ("routing", {"modality": "image", "primary": "local-sketch"}),
            ("alerts", {"channel": fake.channels[fake.channel_id]}),
        ]
        for subcommand, options in attempts:
            assert await config(fake, OWNER, subcommand, **options) == f"⛔ {NO_PERMISSION}"
        assert await guilds.get(bot.runtime.db, GUILD_ID) is None
        handle, ack = await new_story(fake, scenes=1, video=True)  # video is still allowed
        assert ack.type == 5
        await wait_for_story(fake, handle, scenes=1, video=True)


async def test_an_admins_routing_becomes_the_servers_default_models(fake: FakeDiscord, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fake, openai_api_key="sk-test", openai_base_url=NO_NETWORK)
    async with running(settings, storyboard_interval_s=0.2) as bot:
        typed = {"modality": "image", "primary": ""}
        choices = await fake.autocomplete(ADMIN, "config", "routing", options=typed, focused="primary")
        assert [c["value"] for c in choices] == ["gpt-image-1.5", "gpt-image-1-mini", "local-sketch"]
        typed = {"modality": "image", "primary": "local-sketch", "fallbacks": "gpt-image-1.5, MIN"}
        choices = await fake.autocomplete(ADMIN, "config", "routing", options=typed, focused="fallbacks")
        assert [c["value"] for c in choices] == ["gpt-image-1.5, gpt-image-1-mini"]

        answer = await config(fake, ADMIN, "routing", modality="image", primary="local-sketch", fallbacks="dalle")
        assert answer == "✅ Pictures for this server: **local-sketch**, then gpt-image-1.5."
        answer = await config(fake, ADMIN, "routing", modality="text", primary="local-template")
        assert answer == "✅ Story text for this server: **local-template**."
        shown = await config(fake, ADMIN, "show")
        assert "Pictures: **local-sketch**, then gpt-image-1.5\n" in shown
        assert "\nClips: **grok-imagine-video** (unavailable) (operator's default)\n" in shown  # no xAI key
        assert f"Last changed by <@{ADMIN}>" in shown

        handle, ack = await new_story(fake, scenes=1)
        assert ack.type == 5
        await wait_for_story(fake, handle, scenes=1, video=False)
        [story] = await storage_testing.list_all(bot.runtime.db)
        assert (story.image_model, story.text_model, story.status) == ("local-sketch", "local-template", "complete")
        [scene] = await scene_rows.list_for_story(bot.runtime.db, story.id)
        assert scene.image_model_used == "local-sketch"

        answer = await config(fake, ADMIN, "routing", modality="image")
        assert answer == (
            "✅ Pictures: back to the operator's default, **gpt-image-1.5**, "
            "then gemini-3.1-flash-image (unavailable), grok-imagine-image (unavailable)."
        )
        stored = await guilds.get(bot.runtime.db, GUILD_ID)
        assert stored is not None and set(stored.routing) == {"text"}


async def test_video_turned_off_refuses_video_stories(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, fake)) as bot:
        answer = await config(fake, ADMIN, "video", enabled=False)
        assert answer == "✅ Video is off: /story new refuses video in this server."
        _, ack = await new_story(fake, scenes=1, video=True)
        assert_refused(ack, "video is turned off in this server; run the story again without video")
        assert await storage_testing.list_all(bot.runtime.db) == []
        assert sum((await bot.runtime.queue.counts()).values()) == 0


async def test_the_daily_picture_limit_refuses_with_the_limit_and_its_reset(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, fake), storyboard_interval_s=0.2) as bot:
        assert (
            await config(fake, ADMIN, "limits", images=3)
            == "✅ Daily limits per member: 3 pictures, no limit on clips."
        )
        handle, ack = await new_story(fake, scenes=2)
        assert ack.type == 5
        await wait_for_story(fake, handle, scenes=2, video=False)
        day = utc_day(bot.runtime.clock.now())
        assert await guilds.usage(bot.runtime.db, GUILD_ID, OWNER, day) == (2, 0)

        _, ack = await new_story(fake, scenes=2)
        assert_refused(ack, "you have used 2 of your 3 pictures today in this server and this story needs 2; ")
        assert re.search(r"the limit resets in (\d+ h( \d+ min)?|\d+ min|less than a minute) \(midnight UTC\)$",
                         ack.data["content"]), ack.data["content"]  # fmt: skip
        assert len(await storage_testing.list_all(bot.runtime.db)) == 1
        assert await guilds.usage(bot.runtime.db, GUILD_ID, OWNER, day) == (2, 0)


async def test_too_many_running_stories_are_refused(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, fake, max_running_stories=1), storyboard_interval_s=0.2) as bot:
        rt = bot.runtime
        # A story still being made (no job, so it stays queued while the command runs).
        waiting = rt.stories.validate(StoryOptions(prompt="a slow one", scenes=1, guild_id=GUILD_ID, owner_id=OWNER))
        async with rt.db.transaction() as conn:
            await story_rows.insert(conn, waiting)
        _, ack = await new_story(fake, scenes=1)
        assert_refused(ack, "you already have 1 story being made (the limit is 1); wait for it to finish")
        assert [s.id for s in await storage_testing.list_all(rt.db)] == [waiting.id]

        async with rt.db.transaction() as conn:
            for status in (StoryStatus.WRITING, StoryStatus.ILLUSTRATING, StoryStatus.COMPLETE):
                await story_rows.set_status(conn, waiting.id, status, now=rt.clock.now())
        handle, ack = await new_story(fake, scenes=1)
        assert ack.type == 5
        await wait_for_story(fake, handle, scenes=1, video=False)


@pytest.mark.parametrize(
    ("subcommand", "options", "expected"),
    [
        ("routing", {"modality": "image", "primary": "xyzzy"}, "unknown model 'xyzzy'; usable image models: local-"),
        ("routing", {"modality": "video", "primary": "local-sketch"}, "'local-sketch' is an image model, not a video"),
        (
            "routing",
            {"modality": "image", "primary": "gpt-image-1.5"},
            "'gpt-image-1.5' is unavailable: no key set (set OPENAI_API_KEY); usable image models: local-sketch",
        ),
        (
            "routing",
            {"modality": "image", "primary": "local-sketch", "fallbacks": "local-sketch"},
            "'local-sketch' is already the primary model; leave it out of the fallbacks",
        ),
        ("routing", {"modality": "text", "fallbacks": "local-template"}, "name a primary model for the fallbacks"),
        ("limits", {}, "give images, videos (0-10000), or clear"),
        ("limits", {"images": 20_000}, "the daily picture limit must be between 0 and 10000 (got 20000)"),
        ("limits", {"videos": 3, "clear": "both"}, "you both set and cleared the videos limit; choose one"),
    ],
    ids=[
        "unknown",
        "wrong-modality",
        "unusable",
        "primary-in-fallbacks",
        "fallbacks-alone",
        "no-limits",
        "limit-too-big",
        "set-and-clear",
    ],  # fmt: skip
)
async def test_bad_config_input_says_what_to_fix_and_changes_nothing(
    fake: FakeDiscord, tmp_path: Path, subcommand: str, options: dict[str, Any], expected: str
) -> None:
    async with running(make_settings(tmp_path, fake)) as bot:
        answer = await config(fake, ADMIN, subcommand, **options)
        assert answer.startswith("⚠️ Nothing changed: ") and expected in answer, answer
        assert await guilds.get(bot.runtime.db, GUILD_ID) is None


async def test_limits_and_alerts_can_be_set_and_cleared(fake: FakeDiscord, tmp_path: Path) -> None:
    alerts = FakeChannel(fake.ids.next(), "storybot-alerts")
    fake.channels[alerts.id] = alerts  # before the bot connects, so it arrives with the guild
    async with running(make_settings(tmp_path, fake)) as bot:
        db = bot.runtime.db
        answer = await config(fake, ADMIN, "limits", images=20, videos=5)
        assert answer == "✅ Daily limits per member: 20 pictures, 5 clips."
        answer = await config(fake, ADMIN, "limits", clear="videos")
        assert answer == "✅ Daily limits per member: 20 pictures, no limit on clips."
        assert await config(fake, ADMIN, "alerts", channel=alerts) == f"✅ Alerts go to <#{alerts.id}>."
        assert await guilds.alert_channels(db) == {GUILD_ID: alerts.id}
        stored = await guilds.get(db, GUILD_ID)
        assert stored == GuildConfig(
            guild_id=GUILD_ID,
            daily_image_limit=20,
            alert_channel_id=alerts.id,
            updated_by=ADMIN,
            updated_at=stored.updated_at if stored else 0,
        )
        assert await config(fake, ADMIN, "alerts") == "✅ Alerts are off in this server."
        assert await guilds.alert_channels(db) == {}
        shown = await config(fake, ADMIN, "show")
        assert "Daily limits per member (UTC days): 20 pictures, no limit on clips\nAlerts: off" in shown
