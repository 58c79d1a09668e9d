"""Per-server settings and per-user limits against a real database and the real StoryService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.domain import GuildConfig, Modality, ModalityRoute, StoryStatus
from bot.errors import LimitExceeded, UserInputError
from bot.pipeline.flow import routing_for
from bot.publish.storybook import OfflinePublisher
from bot.runtime import Runtime
from bot.services.guild_config import GuildSettings
from bot.services.quotas import utc_day
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from storage import guilds
from storage import stories as story_rows
from storage import testing as storage_testing

GUILD, OTHER_GUILD, USER, ADMIN = 9001, 9002, 301, 302
START = 1_800_000_000.0  # 2027-01-15 08:00 UTC


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


async def make_runtime(tmp_path: Path, clock: FakeClock, **overrides: Any) -> Runtime:
    settings = load_settings(
        database_path=tmp_path / "db" / "storybot.db",
        media_dir=tmp_path / "media",
        openai_api_key="sk-test",  # makes the OpenAI models usable; nothing here calls a provider
        openai_base_url="http://127.0.0.1:9/v1",
        **overrides,
    )
    return await Runtime(settings, clock=clock, out_dir=tmp_path / "out").open()


@pytest.fixture
async def rt(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Runtime]:
    runtime = await make_runtime(tmp_path, clock, max_running_stories=20)  # out of the way of the daily limits
    try:
        yield runtime
    finally:
        await runtime.close()


def service(rt: Runtime) -> GuildSettings:
    return GuildSettings(rt.db, rt.registry, rt.settings.routing, rt.clock)


def options(guild: int | None = GUILD, owner: int | None = USER, **extra: Any) -> StoryOptions:
    return StoryOptions(prompt="a heron who keeps a lighthouse", guild_id=guild, channel_id=5, owner_id=owner, **extra)


async def stored_count(rt: Runtime) -> int:
    return len(await storage_testing.list_all(rt.db))


async def test_a_config_round_trips_and_a_server_without_one_gets_the_defaults(rt: Runtime) -> None:
    assert await guilds.get(rt.db, GUILD) is None
    assert await service(rt).get(GUILD) == GuildConfig(guild_id=GUILD)
    config = GuildConfig(
        guild_id=GUILD,
        routing={Modality.IMAGE: ModalityRoute(primary_model="local-sketch", fallbacks=("gpt-image-1-mini",))},
        video_enabled=False,
        daily_image_limit=20,
        alert_channel_id=77,
        updated_by=ADMIN,
        updated_at=START,
    )
    async with rt.db.transaction() as conn:
        await guilds.upsert(conn, config)
    assert await guilds.get(rt.db, GUILD) == config
    assert await guilds.alert_channels(rt.db) == {GUILD: 77}


@pytest.mark.parametrize(
    ("modality", "primary", "fallbacks", "expected"),
    [
        (Modality.IMAGE, "xyzzy", None, "unknown model 'xyzzy'; usable image models: gpt-image-1.5, gpt-image-1-mini"),
        (Modality.IMAGE, "local-kenburns", None, "'local-kenburns' is a video model, not an image model"),
        (Modality.IMAGE, "grok-imagine-image", None, "is unavailable: no key set (set XAI_API_KEY)"),
        (Modality.IMAGE, "local-sketch", "gpt-image-1.5, local-sketch", "'local-sketch' is already the primary model"),
        (Modality.IMAGE, "local-sketch", "gpt-image-1.5 dalle", "'gpt-image-1.5' is named twice in the fallbacks"),
        (Modality.TEXT, "local-template", "a, b, c, d, e", "name at most 4 fallbacks (you named 5)"),
        (Modality.VIDEO, "local-kenburns", "local-sketch", "'local-sketch' is an image model, not a video model"),
    ],
    ids=["unknown", "wrong-modality", "unusable", "primary-repeated", "twice", "too-many", "wrong-fallback"],
)
def test_bad_routes_say_what_to_fix(
    rt: Runtime, modality: Modality, primary: str, fallbacks: str | None, expected: str
) -> None:
    with pytest.raises(UserInputError) as caught:
        service(rt).parse_route(modality, primary, fallbacks)
    assert expected in str(caught.value)


def test_a_route_stores_canonical_keys(rt: Runtime) -> None:
    route = service(rt).parse_route(Modality.IMAGE, " dalle ", "gpt-image-1-mini,local-sketch")
    assert route == ModalityRoute(primary_model="gpt-image-1.5", fallbacks=("gpt-image-1-mini", "local-sketch"))


async def test_changes_keep_each_other_and_a_bad_one_stores_nothing(rt: Runtime, clock: FakeClock) -> None:
    settings = service(rt)
    route = settings.parse_route(Modality.IMAGE, "local-sketch", None)
    await settings.set_route(GUILD, ADMIN, Modality.IMAGE, route)
    await settings.set_route(GUILD, ADMIN, Modality.TEXT, settings.parse_route(Modality.TEXT, "local-template", None))
    await settings.set_video(GUILD, ADMIN, False)
    clock.advance(60)
    await settings.set_limits(GUILD, USER, {"daily_image_limit": 20, "daily_video_limit": 3})
    before = await guilds.get(rt.db, GUILD)
    assert before is not None
    assert before.routing[Modality.IMAGE] == route and not before.video_enabled
    assert (before.daily_image_limit, before.daily_video_limit, before.updated_by) == (20, 3, USER)
    assert before.updated_at == START + 60

    with pytest.raises(UserInputError, match="between 0 and 10000"):
        await settings.set_limits(GUILD, ADMIN, {"daily_image_limit": 5, "daily_video_limit": 10_001})
    assert await guilds.get(rt.db, GUILD) == before

    after = await settings.set_route(GUILD, ADMIN, Modality.IMAGE, None)
    assert set(after.routing) == {Modality.TEXT}
    assert settings.effective_route(after, Modality.IMAGE) == (rt.settings.routing[Modality.IMAGE].chain, False)
    cleared = await settings.set_limits(GUILD, ADMIN, {"daily_video_limit": None})
    assert (cleared.daily_image_limit, cleared.daily_video_limit) == (20, None)


async def test_the_servers_primary_is_its_default_model(rt: Runtime) -> None:
    assert (await rt.stories.prepare(options())).image_model == "gpt-image-1.5"  # the operator's chain
    settings = service(rt)
    await settings.set_route(GUILD, ADMIN, Modality.IMAGE, settings.parse_route(Modality.IMAGE, "local-sketch", None))
    await settings.set_route(GUILD, ADMIN, Modality.TEXT, settings.parse_route(Modality.TEXT, "local-template", None))
    story = await rt.stories.prepare(options())
    assert (story.image_model, story.text_model) == ("local-sketch", "local-template")
    assert (await rt.stories.prepare(options(image_model="gpt-image-1-mini"))).image_model == "gpt-image-1-mini"
    assert (await rt.stories.prepare(options(guild=OTHER_GUILD))).image_model == "gpt-image-1.5"
    created = await rt.stories.create(options())
    assert (created.image_model, created.text_model) == ("local-sketch", "local-template")
    pipeline_route = await routing_for(rt.pipeline(OfflinePublisher(rt.out_dir)), created, Modality.IMAGE)
    assert pipeline_route.primary_model == "local-sketch"


async def test_video_turned_off_is_refused_for_new_stories_and_retries(rt: Runtime) -> None:
    await service(rt).set_video(GUILD, ADMIN, False)
    with pytest.raises(UserInputError, match="video is turned off in this server"):
        await rt.stories.prepare(options(video=True))
    story = await rt.stories.create(options(scenes=2))  # without video it is fine
    with pytest.raises(LimitExceeded, match="video is turned off in this server"):
        async with rt.db.transaction() as conn:
            await rt.quotas.charge(conn, story, images=0, videos=1)
    assert await guilds.usage(rt.db, GUILD, USER, utc_day(START)) == (2, 0)


async def test_daily_limits_count_per_user_per_server_and_reset_at_midnight(rt: Runtime, clock: FakeClock) -> None:
    await service(rt).set_limits(GUILD, ADMIN, {"daily_image_limit": 5, "daily_video_limit": 3})
    first = await rt.stories.create(options(scenes=3, video=True))
    assert await guilds.usage(rt.db, GUILD, USER, utc_day(START)) == (3, 3)

    clock.advance(3600 * 3 + 60 * 12)  # 11:12 UTC
    with pytest.raises(LimitExceeded) as caught:
        await rt.quotas.check_story(await rt.stories.prepare(options(scenes=1, video=True)))
    assert str(caught.value) == (
        "you have used 3 of your 3 clips today in this server and this story needs 1; "
        "the limit resets in 12 h 48 min (midnight UTC)"
    )
    with pytest.raises(LimitExceeded, match="used 3 of your 5 pictures today in this server and this story needs 3"):
        await rt.stories.create(options(scenes=3))
    assert await stored_count(rt) == 1 and sum((await rt.queue.counts()).values()) == 1
    assert await guilds.usage(rt.db, GUILD, USER, utc_day(clock.now())) == (3, 3)

    await rt.stories.create(options(scenes=2))  # exactly up to the limit
    await rt.stories.create(options(guild=OTHER_GUILD, scenes=4))  # another server has its own (no) limits
    await rt.stories.create(options(owner=USER + 1, scenes=4, video=False))  # another member has their own
    async with rt.db.transaction() as conn:  # a redraw of one picture is charged like a new one
        with pytest.raises(LimitExceeded, match="used 5 of your 5 pictures"):
            await rt.quotas.charge(conn, first, images=1, videos=0)

    clock.advance(13 * 3600)  # the next UTC day
    await rt.quotas.check_story(await rt.stories.prepare(options(scenes=3, video=True)))
    assert await guilds.usage(rt.db, GUILD, USER, utc_day(clock.now())) == (0, 0)


async def test_running_stories_are_limited_per_user_across_servers(tmp_path: Path, clock: FakeClock) -> None:
    rt = await make_runtime(tmp_path, clock, max_running_stories=2)
    try:
        first = await rt.stories.create(options(scenes=1))
        await rt.stories.create(options(guild=OTHER_GUILD, scenes=1))
        expected = "you already have 2 stories being made (the limit is 2); wait for one to finish"
        with pytest.raises(LimitExceeded) as caught:
            await rt.quotas.check_story(await rt.stories.prepare(options(scenes=1)))
        assert str(caught.value) == expected
        with pytest.raises(LimitExceeded, match="the limit is 2"):
            await rt.stories.create(options(scenes=1))
        assert await stored_count(rt) == 2
        await rt.stories.create(options(owner=USER + 1, scenes=1))  # someone else is not held up
        await rt.stories.create(options(guild=None, owner=None, scenes=1))  # the CLI has no limits

        async with rt.db.transaction() as conn:
            for status in (StoryStatus.WRITING, StoryStatus.ILLUSTRATING, StoryStatus.COMPLETE):
                await story_rows.set_status(conn, first.id, status, now=clock.now())
        await rt.stories.create(options(scenes=1))
    finally:
        await rt.close()


async def test_racing_commands_cannot_both_slip_under_a_limit(tmp_path: Path, clock: FakeClock) -> None:
    rt = await make_runtime(tmp_path, clock, max_running_stories=1)
    try:
        results = await asyncio.gather(
            *(rt.stories.create(options(scenes=1)) for _ in range(3)), return_exceptions=True
        )
        assert sum(isinstance(r, LimitExceeded) for r in results) == 2
        assert await stored_count(rt) == 1 and await guilds.usage(rt.db, GUILD, USER, utc_day(START)) == (1, 0)

    finally:
        await rt.close()


async def test_racing_commands_cannot_both_use_the_last_pictures(rt: Runtime) -> None:
    await service(rt).set_limits(GUILD, ADMIN, {"daily_image_limit": 5})
    results = await asyncio.gather(*(rt.stories.create(options(scenes=3)) for _ in range(2)), return_exceptions=True)
    assert sum(isinstance(r, LimitExceeded) for r in results) == 1
    assert await stored_count(rt) == 1 and await guilds.usage(rt.db, GUILD, USER, utc_day(START)) == (3, 0)
