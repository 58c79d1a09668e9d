"""Issue #11 item 6 with real processes: `storybot work` (no Discord connection) renders a Discord story but
leaves its deliveries for the bot, which posts them; the bot renders a command-line story but leaves its
storybook to `storybot work`.

Before the fix the first `storybot work` took the Discord story's deliveries and wrote them into a
storybook nobody opens, so the scenes never reached Discord.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

import pytest

from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import Settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import GUILD_ID
from tests.support.cli import STORYBOT, cli_env
from tests.support.discord_harness import OWNER, STORY_TIMEOUT_S, make_settings, running, thread_complete

pytestmark = pytest.mark.slow

SCENES = 2


async def storybot_work(tmp_path: Path, settings: Settings) -> subprocess.CompletedProcess[str]:
    """`storybot work` in its own process on the bot's database; without the bot's async loop blocked."""
    env = cli_env(tmp_path, DATABASE_PATH=str(settings.database_path), MEDIA_DIR=str(settings.media_dir))
    proc = await asyncio.create_subprocess_exec(
        *STORYBOT, "work", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return subprocess.CompletedProcess([*STORYBOT, "work"], proc.returncode, out.decode(), err.decode())


def jobs_of(settings: Settings, story_id: str) -> list[sqlite3.Row]:
    with sqlite3.connect(settings.database_path) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute("SELECT * FROM jobs WHERE story_id = ?", (story_id,)))


def delivered(settings: Settings, story_id: str) -> list[str]:
    with sqlite3.connect(settings.database_path) as conn:
        return [row[0] for row in conn.execute("SELECT target FROM deliveries WHERE story_id = ?", (story_id,))]


async def test_work_leaves_a_discord_storys_deliveries_for_the_bot_and_the_bot_posts_them(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fake)
    out = tmp_path / "out"
    async with Runtime(settings, out_dir=out) as rt:  # queued while the bot was down
        story = await rt.stories.create(
            StoryOptions(prompt="a heron", scenes=SCENES, guild_id=GUILD_ID, channel_id=fake.channel_id,
                         owner_id=OWNER)
        )  # fmt: skip

    work = await storybot_work(tmp_path, settings)  # as the README advises after an interruption

    assert work.returncode == 0, work.stderr
    assert "0 failed, 0 dead" in work.stdout and "Discord deliveries left for the bot" in work.stdout, work.stdout
    jobs = jobs_of(settings, story.id)
    deliveries = [job for job in jobs if job["kind"] == "deliver"]
    assert deliveries and all((job["status"], job["attempts"]) == ("queued", 0) for job in deliveries)
    assert {job["status"] for job in jobs if job["kind"] != "deliver"} == {"succeeded"}  # the rest is rendered
    assert delivered(settings, story.id) == [] and not (out / story.id).exists()
    assert fake.channel_messages() == []

    # A command-line story queued now: the bot draws it, but its storybook is not the bot's to write.
    async with Runtime(settings, out_dir=out) as rt:
        cli_story = await rt.stories.create(StoryOptions(prompt="a fox", scenes=1, out_dir=out))

    async with running(settings, storyboard_grace_s=0) as bot:  # no /story new will post the storyboard

        async def settled() -> bool:
            mine = await bot.runtime.queue.list_for_story(story.id)
            theirs = await bot.runtime.queue.list_for_story(cli_story.id)
            return all(job.status.value == "succeeded" for job in mine) and all(
                job.status.value == ("queued" if job.kind.value == "deliver" else "succeeded") for job in theirs
            )

        deadline = asyncio.get_running_loop().time() + STORY_TIMEOUT_S
        while not await settled():
            assert asyncio.get_running_loop().time() < deadline, [
                (job["kind"], job["status"], job["publisher"], job["last_error"])
                for job in jobs_of(settings, story.id) + jobs_of(settings, cli_story.id)
            ]
            await asyncio.sleep(0.05)
        board = (await bot.runtime.queue.db.fetchone("SELECT storyboard_message_id FROM stories WHERE id = ?",
                                                      (story.id,)))[0]  # fmt: skip
        await fake.wait_until(lambda: thread_complete(fake, board, SCENES, False), STORY_TIMEOUT_S, "posted scenes")
    assert set(delivered(settings, story.id)) == {"discord"}
    assert delivered(settings, cli_story.id) == [] and not (out / cli_story.id).exists()

    finish = await storybot_work(tmp_path, settings)

    assert finish.returncode == 0, finish.stderr
    assert "left for the bot" not in finish.stdout, finish.stdout
    assert set(delivered(settings, cli_story.id)) == {"offline"}
    assert (out / cli_story.id / "index.html").is_file()
    assert not (out / story.id).exists()  # the Discord story never got a storybook
