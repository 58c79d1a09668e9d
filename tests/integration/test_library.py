"""Saved stories below Discord: the owner's queries on the stories_by_owner index, finding a story with its
ownership checked, deleting one with its rows and files, and deleting one while a worker is drawing it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.domain import JobKind, JobStatus, Story, StoryStatus
from bot.errors import UserInputError
from bot.runtime import Runtime
from bot.services.library import NOT_FOUND, Library, sweep_orphaned_media
from bot.services.stories import StoryOptions
from bot.settings import Settings, load_settings
from storage import assets, scenes, stories
from storage import jobs as job_rows
from storage import testing as storage_testing
from storage.db import Database
from tests.fakes.providers import FakeProviders, Fault, png_bytes

GUILD, OTHER_GUILD, OWNER, OTHER_USER = 10, 11, 201, 202
DAY = 86_400.0


def row(
    title: str | None, *, created_at: float, guild_id: int = GUILD, owner_id: int = OWNER, prompt: str | None = None
) -> Story:
    return Story(
        guild_id=guild_id, owner_id=owner_id, prompt=prompt or f"a story about {title or 'nothing'}", title=title,
        text_model="local-template", image_model="local-sketch", scene_count=1, status=StoryStatus.COMPLETE,
        created_at=created_at, updated_at=created_at,
    )  # fmt: skip


async def insert(db: Database, *rows: Story) -> None:
    async with db.transaction() as conn:
        for story in rows:
            await stories.insert(conn, story)


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def _true(value: bool) -> bool:
    return value


async def _finished(db: Database, story_id: str) -> bool:
    story = await stories.get(db, story_id)
    return story is not None and story.status is StoryStatus.COMPLETE


async def test_owner_queries_page_newest_first_and_search(db: Database) -> None:
    mine = [row(f"Tale {n:02d}", created_at=1000 + n * DAY) for n in range(12)]
    fox = row("The Fox_Who Flew 100%", created_at=50 * DAY, prompt="a fox learns to fly")
    untitled = row(None, created_at=60 * DAY, prompt="a lighthouse keeper befriends a storm")
    theirs = row("Tale of Theirs", created_at=70 * DAY, owner_id=OTHER_USER)
    elsewhere = row("Tale Elsewhere", created_at=80 * DAY, guild_id=OTHER_GUILD)
    await insert(db, *mine, fox, untitled, theirs, elsewhere)

    assert await stories.count_for_owner(db, GUILD, OWNER) == 14
    first = await stories.list_for_owner(db, GUILD, OWNER, limit=10, offset=0)
    second = await stories.list_for_owner(db, GUILD, OWNER, limit=10, offset=10)
    assert [s.id for s in first + second] == [s.id for s in sorted([*mine, fox, untitled], key=lambda s: -s.created_at)]
    assert [s.title for s in first[:2]] == [None, "The Fox_Who Flew 100%"]

    async def titles(text: str) -> list[str | None]:
        return [s.title for s in await stories.search_for_owner(db, GUILD, OWNER, text, limit=25)]

    assert len(await titles("")) == 14
    assert await titles("TALE 0") == [f"Tale 0{n}" for n in range(9, -1, -1)]  # newest first
    assert await titles("who flew") == ["The Fox_Who Flew 100%"]
    assert await titles("lighthouse") == [None]  # an untitled story is found by its prompt
    assert await titles("100%") == ["The Fox_Who Flew 100%"]
    assert await titles("x_w") == ["The Fox_Who Flew 100%"] and await titles("x%w") == []  # wildcards are literal
    assert await titles(fox.id[:8]) == ["The Fox_Who Flew 100%"]
    assert await titles("theirs") == [] and await titles("elsewhere") == []
    assert await titles("flew") == ["The Fox_Who Flew 100%"]
    # titles starting with what was typed come before the ones that merely contain it
    await insert(db, row("Flew Away", created_at=DAY))
    assert await titles("flew") == ["Flew Away", "The Fox_Who Flew 100%"]

    assert await stories.existing_ids(db, [fox.id, "0" * 32, theirs.id]) == {fox.id, theirs.id}


async def test_find_checks_server_and_owner(db: Database, tmp_path: Path) -> None:
    mine = row("The Lantern Keeper", created_at=2 * DAY)
    twin_a, twin_b = row("Twins", created_at=3 * DAY), row("Twins", created_at=4 * DAY)
    theirs = row("Not Yours", created_at=5 * DAY, owner_id=OTHER_USER)
    elsewhere = row("Elsewhere", created_at=6 * DAY, guild_id=OTHER_GUILD)
    await insert(db, mine, twin_a, twin_b, theirs, elsewhere)
    library = Library(db, None, None)  # type: ignore[arg-type]  # lookups touch neither the queue nor files

    assert (await library.find(GUILD, OWNER, mine.id)).id == mine.id
    assert (await library.find(GUILD, OWNER, f"  {mine.id.upper()} ")).id == mine.id
    assert (await library.find(GUILD, OWNER, mine.id[:8])).id == mine.id  # the storyboard footer's short id
    assert (await library.find(GUILD, OWNER, "the lantern KEEPER")).id == mine.id
    for text in ("", "lantern", "0" * 32, "'; DROP TABLE stories; --", "x" * 500, elsewhere.id, "Elsewhere"):
        with pytest.raises(UserInputError) as caught:
            await library.find(GUILD, OWNER, text)
        assert str(caught.value) == NOT_FOUND, text
    with pytest.raises(UserInputError, match="several of your stories"):
        await library.find(GUILD, OWNER, "twins")
    with pytest.raises(UserInputError, match="belongs to someone else"):
        await library.find(GUILD, OWNER, theirs.id)
    assert (await library.find(GUILD, OWNER, theirs.id, any_owner=True)).id == theirs.id
    with pytest.raises(UserInputError):
        await library.find(GUILD, OWNER, elsewhere.id, any_owner=True)  # never across servers
    with pytest.raises(UserInputError):
        await library.find(None, OWNER, mine.id)

    page = await library.page(GUILD, OWNER, 1)
    assert (page.page, page.pages, page.total) == (1, 1, 3)
    with pytest.raises(UserInputError, match="there is no page 2: your 3 stories here fit on 1 page$"):
        await library.page(GUILD, OWNER, 2)
    assert (await library.page(GUILD, 999, 5)).total == 0
    assert [s.id for s in await library.suggest(GUILD, OWNER, "twins")] == [twin_b.id, twin_a.id]
    assert await library.suggest(None, OWNER, "") == []


@pytest.fixture
def offline_settings(tmp_path: Path) -> Settings:
    return load_settings(database_path=tmp_path / "db" / "storybot.db", media_dir=tmp_path / "media")


async def test_delete_removes_rows_media_reference_and_storybook(offline_settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with Runtime(offline_settings, out_dir=out) as rt:
        options = StoryOptions(
            prompt="a fox who learns to fly",
            scenes=2,
            guild_id=GUILD,
            owner_id=OWNER,
            out_dir=out,
            reference=png_bytes(),
        )
        doomed = await rt.stories.create(options)
        kept = await rt.stories.create(StoryOptions(prompt="a crab dances", scenes=1, guild_id=GUILD, owner_id=OWNER))
        assert doomed.reference_path and Path(doomed.reference_path).is_file()
        stats = await rt.run_until_empty()
        assert stats.dead == 0 and stats.failed == 0
        media = [Path(s.image_path or "") for s in await scenes.list_for_story(rt.db, doomed.id)]
        assert len(media) == 2 and all(path.is_file() for path in media)
        storybook = out / doomed.id
        assert (storybook / "index.html").is_file()
        library = Library(rt.db, rt.queue, rt.media)

        with pytest.raises(UserInputError, match="belongs to someone else"):
            await library.delete(GUILD, OTHER_USER, doomed.id)
        with pytest.raises(UserInputError, match="already gone"):
            await library.delete(OTHER_GUILD, OWNER, doomed.id)
        assert await stories.get(rt.db, doomed.id) is not None and all(path.is_file() for path in media)

        deleted = await library.delete(GUILD, OWNER, doomed.id)
        assert deleted.story.id == doomed.id and deleted.files_removed >= 3  # 2 pictures + the storybook page
        assert await stories.get(rt.db, doomed.id) is None
        assert await scenes.list_for_story(rt.db, doomed.id) == []
        assert await assets.list_for_story(rt.db, doomed.id) == []
        assert await job_rows.list_for_story(rt.db, doomed.id) == []
        assert await storage_testing.keys_for_story(rt.db, doomed.id) == []
        assert not rt.media.story_dir(doomed.id).exists() and not storybook.exists()
        assert not any(path.exists() for path in media) and not Path(doomed.reference_path).exists()

        assert await stories.get(rt.db, kept.id) is not None
        assert any(rt.media.story_dir(kept.id).iterdir())
        with pytest.raises(UserInputError, match="already gone"):
            await library.delete(GUILD, OWNER, doomed.id)


async def test_a_story_deleted_while_a_worker_draws_it(fake: FakeProviders, tmp_path: Path) -> None:
    """The running job loses its lease: it records nothing, the worker carries on, and the file it
    wrote after the delete is swept as an orphan."""
    settings = load_settings(
        database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media", job_lease_s=5,
        openai_api_key="sk-test", openai_base_url=fake.openai_base_url,
    )  # fmt: skip
    fake.script("openai.images.generate", [Fault.latency(1.5)])
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        options = StoryOptions(prompt="a girl and her lantern", scenes=1, guild_id=GUILD, owner_id=OWNER)
        story = await rt.stories.create(options)
        assert story.image_model == "gpt-image-1.5"
        worker = rt.worker(idle_poll_s=0.05)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run_forever(stop))
        try:
            async with asyncio.timeout(30):
                await fake.wait_for_calls("openai.images.generate")  # the job is running, the picture not back yet
            jobs = await job_rows.list_for_story(rt.db, story.id)
            [drawing] = [j for j in jobs if j.kind is JobKind.RENDER_IMAGE and j.status is JobStatus.RUNNING]

            deleted = await Library(rt.db, rt.queue, rt.media).delete(GUILD, OWNER, story.id)
            assert deleted.jobs_cancelled >= 1
            assert await job_rows.get(rt.db, drawing.id) is None

            await until(lambda: _true(worker.stats.lease_lost > 0))  # the job noticed, one way or another
            after = await rt.stories.create(StoryOptions(prompt="a crab dances", scenes=1, guild_id=GUILD))
            await until(lambda: _finished(rt.db, after.id))  # and the worker is still at work
        finally:
            stop.set()
            stats = await asyncio.wait_for(running, 30)
        assert stats.dead == 0 and stats.failed == 0
        assert await stories.get(rt.db, story.id) is None
        assert await scenes.list_for_story(rt.db, story.id) == []
        assert await assets.list_for_story(rt.db, story.id) == []
        assert await job_rows.list_for_story(rt.db, story.id) == []

        swept = await sweep_orphaned_media(rt.db, rt.media, older_than_s=0, now=rt.clock.now() + 1)
        assert not rt.media.story_dir(story.id).exists()
        assert swept <= 1  # the late picture's folder, if the job got that far before it noticed
        assert rt.media.story_dir(after.id).is_dir()  # a live story's files are never swept


async def test_opening_the_runtime_sweeps_media_of_deleted_stories(tmp_path: Path) -> None:
    settings = load_settings(database_path=tmp_path / "db.sqlite", media_dir=tmp_path / "media")
    orphan = tmp_path / "media" / ("ab" * 16)
    orphan.mkdir(parents=True)
    (orphan / "scene.png").write_bytes(png_bytes())
    old = orphan.stat().st_mtime - 2 * 3600
    os.utime(orphan, (old, old))
    fresh = tmp_path / "media" / ("cd" * 16)  # a story being created right now: too young to judge
    fresh.mkdir()
    async with Runtime(settings):
        pass
    assert not orphan.exists() and fresh.exists()
