"""SceneActions (bot/services/scene_actions.py) against a real Runtime: a clip that failed at the fake xAI is retried,
racing presses queue one render, a refusal (quota, rights, forged id) changes nothing, a redraw makes a
new picture, and a retried story never announces its end twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain import GuildConfig, ImageStatus, JobKind, StoryStatus, VideoStatus, new_id
from bot.runtime import Runtime
from bot.services.quotas import utc_day
from bot.services.scene_actions import Verdict
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from storage import guilds, scenes, stories
from storage import jobs as job_rows
from storage import testing as storage_testing
from tests.fakes.providers import FakeProviders, Fault
from tests.support.providers import provider_env

GUILD, OWNER, STRANGER, MODERATOR = 5001, 201, 301, 302


@pytest.fixture
async def runtime(fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runtime]:
    for name, value in provider_env(fake, tmp_path).items():
        monkeypatch.setenv(name, value)
    async with Runtime(load_settings(), out_dir=tmp_path / "out") as rt:
        yield rt


async def make_story(rt: Runtime, *, video: bool) -> str:
    options = StoryOptions(
        prompt="a girl and her lantern", scenes=1, video=video, text_model="local-template",
        image_model="local-sketch", video_model="grok-imagine-video" if video else None,
        guild_id=GUILD, owner_id=OWNER,
    )  # fmt: skip
    story = await rt.stories.create(options)
    stats = await rt.run_until_empty()
    assert stats.dead == 0
    return story.id


async def failed_clip(rt: Runtime, fake: FakeProviders) -> tuple[str, str]:
    """A finished story whose only clip was blocked by xAI's content policy; the fault is then cleared."""
    fake.fail_always("xai.videos.create", Fault.content_policy())
    story_id = await make_story(rt, video=True)
    fake.reset()
    [scene] = await scenes.list_for_story(rt.db, story_id)
    assert scene.video_status is VideoStatus.FAILED and "content policy" in (scene.video_error or "")
    story = await stories.get(rt.db, story_id)
    assert story is not None and story.status is StoryStatus.COMPLETE
    return story_id, scene.id


async def render_jobs(rt: Runtime, story_id: str, kind: JobKind) -> int:
    return sum(job.kind is kind for job in await job_rows.list_for_story(rt.db, story_id))


async def end_notes(rt: Runtime, story_id: str) -> list[str]:
    return [key for key in await storage_testing.keys_for_story(rt.db, story_id) if key.startswith("deliver:story:")]


async def test_racing_presses_queue_one_retry_and_the_clip_lands(runtime: Runtime, fake: FakeProviders) -> None:
    story_id, scene_id = await failed_clip(runtime, fake)
    assert len(await end_notes(runtime, story_id)) == 1
    actions = runtime.scene_actions

    presses = await asyncio.gather(
        *(actions.retry_video(scene_id, guild_id=GUILD, user_id=OWNER, can_manage=False) for _ in range(5))
    )
    verdicts = sorted(outcome.verdict for outcome in presses)
    assert verdicts == [Verdict.BUSY] * 4 + [Verdict.QUEUED]
    assert all("already being made" in o.text for o in presses if o.verdict is Verdict.BUSY)
    [queued] = [o for o in presses if o.queued]
    assert queued.scene is not None and queued.scene.video_status is VideoStatus.PENDING
    assert queued.scene.video_error is None
    assert await render_jobs(runtime, story_id, JobKind.RENDER_VIDEO) == 2
    story = await stories.get(runtime.db, story_id)
    assert story is not None and story.status is StoryStatus.ILLUSTRATING  # reopened until the clip settles
    assert await guilds.usage(runtime.db, GUILD, OWNER, utc_day(runtime.clock.now())) == (1, 2)

    stats = await runtime.run_until_empty()
    assert stats.dead == 0 and stats.failed == 0
    [scene] = await scenes.list_for_story(runtime.db, story_id)
    assert scene.video_status is VideoStatus.COMPLETE and scene.video_model_used == "grok-imagine-video"
    assert Path(scene.video_path or "").stat().st_size > 0
    story = await stories.get(runtime.db, story_id)
    assert story is not None and story.status is StoryStatus.COMPLETE
    assert len(fake.calls("xai.videos.create")) == 1
    assert len(await end_notes(runtime, story_id)) == 1  # the end was announced once, before the retry
    keys = await storage_testing.keys_for_story(runtime.db, story_id)
    assert len([k for k in keys if k.startswith(f"deliver:video:{scene_id}:")]) == 1


async def test_a_quota_refusal_rolls_everything_back(runtime: Runtime, fake: FakeProviders) -> None:
    story_id, scene_id = await failed_clip(runtime, fake)
    async with runtime.db.transaction() as conn:
        await guilds.upsert(conn, GuildConfig(guild_id=GUILD, daily_video_limit=1))  # the first clip used it
    before = await job_rows.list_for_story(runtime.db, story_id)
    actions = runtime.scene_actions

    outcome = await actions.retry_video(scene_id, guild_id=GUILD, user_id=OWNER, can_manage=False)

    assert outcome.verdict is Verdict.REFUSED
    assert "you have used 1 of your 1 clip today" in outcome.text, outcome.text
    [scene] = await scenes.list_for_story(runtime.db, story_id)
    assert scene.video_status is VideoStatus.FAILED and scene.video_error
    story = await stories.get(runtime.db, story_id)
    assert story is not None and story.status is StoryStatus.COMPLETE
    assert await job_rows.list_for_story(runtime.db, story_id) == before
    assert await guilds.usage(runtime.db, GUILD, OWNER, utc_day(runtime.clock.now())) == (1, 1)


async def test_refusals_change_nothing(runtime: Runtime, fake: FakeProviders) -> None:
    story_id, scene_id = await failed_clip(runtime, fake)
    before = await job_rows.list_for_story(runtime.db, story_id)
    actions = runtime.scene_actions
    cases = [
        (scene_id, GUILD, STRANGER, False, "only the story's owner or a member with Manage Messages"),
        (scene_id, GUILD + 1, OWNER, True, "a story in another server"),
        (scene_id, None, OWNER, False, "a story in another server"),
        ("../../etc/passwd", GUILD, OWNER, False, "not made by storybot"),
        (scene_id.upper(), GUILD, OWNER, False, "not made by storybot"),
        (new_id(), GUILD, OWNER, False, "no longer exists"),
    ]
    for target, guild_id, user_id, can_manage, expected in cases:
        for press in (actions.retry_video, actions.redraw_image):
            outcome = await press(target, guild_id=guild_id, user_id=user_id, can_manage=can_manage)
            assert outcome.verdict is Verdict.REFUSED and expected in outcome.text, (target, outcome)
    assert await job_rows.list_for_story(runtime.db, story_id) == before
    [scene] = await scenes.list_for_story(runtime.db, story_id)
    assert scene.video_status is VideoStatus.FAILED and scene.image_status is ImageStatus.COMPLETE

    # A member with Manage Messages may retry someone else's clip; a finished clip cannot be retried again.
    outcome = await actions.retry_video(scene_id, guild_id=GUILD, user_id=MODERATOR, can_manage=True)
    assert outcome.queued
    assert (await runtime.run_until_empty()).dead == 0
    again = await actions.retry_video(scene_id, guild_id=GUILD, user_id=OWNER, can_manage=False)
    assert again.verdict is Verdict.REFUSED and "already done" in again.text


async def test_a_redraw_draws_a_new_picture_once(runtime: Runtime) -> None:
    story_id = await make_story(runtime, video=False)
    [drawn] = await scenes.list_for_story(runtime.db, story_id)
    old_picture = Path(drawn.image_path or "").read_bytes()
    actions = runtime.scene_actions

    first = await actions.redraw_image(drawn.id, guild_id=GUILD, user_id=OWNER, can_manage=False)
    second = await actions.redraw_image(drawn.id, guild_id=GUILD, user_id=OWNER, can_manage=False)
    assert first.queued and first.scene is not None and first.scene.image_status is ImageStatus.PENDING
    assert second.verdict is Verdict.BUSY and "already being drawn" in second.text
    assert await render_jobs(runtime, story_id, JobKind.RENDER_IMAGE) == 2

    assert (await runtime.run_until_empty()).dead == 0
    [scene] = await scenes.list_for_story(runtime.db, story_id)
    assert scene.image_status is ImageStatus.COMPLETE and scene.image_path != drawn.image_path
    assert Path(scene.image_path or "").read_bytes() != old_picture  # a new picture, not the same seed again
    story = await stories.get(runtime.db, story_id)
    assert story is not None and story.status is StoryStatus.COMPLETE
    assert len(await end_notes(runtime, story_id)) == 1
    assert await guilds.usage(runtime.db, GUILD, OWNER, utc_day(runtime.clock.now())) == (2, 0)


async def test_key_prefix_lookup_is_a_range_on_the_unique_index(runtime: Runtime) -> None:
    for key in ("deliver:story:ab:1", "deliver:story:abc", "deliver:story;x", "deliver:storz"):
        await runtime.queue.enqueue(JobKind.DELIVER, {}, idempotency_key=key)
    assert await job_rows.any_with_key_prefix(runtime.db, "deliver:story:ab:")
    assert await job_rows.any_with_key_prefix(runtime.db, "deliver:story:abc")
    assert not await job_rows.any_with_key_prefix(runtime.db, "deliver:story:abd")
    assert not await job_rows.any_with_key_prefix(runtime.db, "deliver:story:a_:")
    plan = await runtime.db.fetchall(
        "EXPLAIN QUERY PLAN SELECT 1 FROM jobs WHERE idempotency_key >= ? AND idempotency_key < ? LIMIT 1",
        ("deliver:story:ab:", "deliver:story:ab;"),
    )
    assert any("USING COVERING INDEX sqlite_autoindex_jobs" in row["detail"] for row in plan), [r[3] for r in plan]


async def test_a_redraw_or_retry_counts_against_the_running_stories_limit(
    runtime: Runtime, fake: FakeProviders
) -> None:
    story_id, scene_id = await failed_clip(runtime, fake)
    limit = runtime.settings.max_running_stories
    running = [
        await runtime.stories.create(StoryOptions(prompt=f"a busy tale {i}", scenes=1, guild_id=GUILD, owner_id=OWNER))
        for i in range(limit)
    ]  # not run: they stay queued, so they are "being made"
    actions = runtime.scene_actions
    for press in (actions.retry_video, actions.redraw_image):
        outcome = await press(scene_id, guild_id=GUILD, user_id=OWNER, can_manage=False)
        assert outcome.verdict is Verdict.REFUSED, outcome
        assert f"you already have {limit} stories being made" in outcome.text
    story = await stories.get(runtime.db, story_id)
    assert story is not None and story.status is StoryStatus.COMPLETE  # nothing reopened
    assert await render_jobs(runtime, story_id, JobKind.RENDER_VIDEO) == 1
    await runtime.queue.cancel(story_id=running[0].id)
    async with runtime.db.transaction() as conn:
        await stories.set_status(conn, running[0].id, StoryStatus.CANCELLED, now=runtime.clock.now())
    outcome = await actions.retry_video(scene_id, guild_id=GUILD, user_id=OWNER, can_manage=False)
    assert outcome.queued, outcome
