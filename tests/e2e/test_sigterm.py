"""SIGTERM stops `storybot run` cleanly: the bot mid-story (then a restart finishes it, posting nothing twice),
and the offline demo path (jobs handed back, exit 143)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from bot.domain import StoryStatus
from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.support.cli import STORYBOT, read_until
from tests.support.discord_harness import OWNER, make_settings, running, wait_for_story

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
SCENES = 3


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The test's own paths, and no provider keys: every model is local."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "DISCORD_TOKEN"}
    env.update(
        DATABASE_PATH=str(tmp_path / "db" / "storybot.db"),  # the same paths as make_settings
        MEDIA_DIR=str(tmp_path / "media"),
        VIDEO_POLL_S="0",
        HEALTH_HTTP_PORT="0",
        **extra,
    )
    return env


def _scalar(db: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute(sql).fetchone()[0])


def _posted_files(server: FakeDiscord) -> list[str]:
    threads = server.threads()
    return [a.filename for thread in threads for m in server.channel_messages(thread.id) for a in m.attachments]


async def test_sigterm_stops_the_bot_cleanly_and_a_restart_finishes_the_story(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    env = _env(tmp_path, DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base,
               DISCORD_GATEWAY_URL=fake.gateway_url)  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *STORYBOT, "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stderr: list[str] = []
    try:
        assert process.stderr is not None
        await read_until(process.stderr, "storybot ready as", stderr, READY_TIMEOUT_S)
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "a heron keeps time", "scenes": SCENES,
                                                                  "video": True})  # fmt: skip
        assert (await handle.ack()).type == 5
        await fake.wait_until(lambda: _posted_files(fake), READY_TIMEOUT_S, "the first scene posted")

        process.send_signal(signal.SIGTERM)
        stdout, rest = await asyncio.wait_for(process.communicate(), STOP_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = "".join(stderr) + rest.decode(errors="replace")
    assert process.returncode == 0, log
    stop_lines = [line for line in log.splitlines() if "storybot stopped (SIGTERM); " in line]
    assert len(stop_lines) == 1 and stop_lines[0].endswith("handed back to the queue"), log
    assert "Traceback" not in log and "Unclosed" not in log, log
    assert stdout == b""

    db = tmp_path / "db" / "storybot.db"
    assert _scalar(db, "SELECT COUNT(*) FROM jobs WHERE status = 'running'") == 0  # finished or handed back
    assert _scalar(db, "SELECT COUNT(*) FROM jobs WHERE status = 'queued'") > 0  # no new claims after SIGTERM
    assert _scalar(db, "SELECT COUNT(*) FROM stories WHERE status = 'complete'") == 0
    before = sorted(_posted_files(fake))

    async with running(make_settings(tmp_path, fake), storyboard_interval_s=0.2) as bot:
        await wait_for_story(fake, handle, scenes=SCENES, video=True)
        [story] = await storage_testing.list_all(bot.runtime.db)
        assert story.status is StoryStatus.COMPLETE
    files = _posted_files(fake)
    expected = [f"scene-{i:02d}-{kind}" for i in range(1, SCENES + 1) for kind in ("image.png", "video.mp4")]
    assert sorted(files) == expected  # every file once: nothing posted before the stop was posted again
    assert set(before) <= set(files)
    descriptions = [e.get("description", "") for r in fake.requests if isinstance(r.json, dict)
                    for e in r.json.get("embeds") or []]  # fmt: skip
    assert any(" left**" in d for d in descriptions), descriptions  # the storyboard showed an ETA on the way
    assert descriptions[-1].endswith(f"animated {SCENES} of {SCENES}**")  # and none once done
    [thread] = fake.threads()
    finals = [m for m in fake.channel_messages(thread.id) if "is finished" in m.content]
    assert len(finals) == 1


async def test_sigterm_stops_the_offline_demo_with_its_jobs_back_in_the_queue(tmp_path: Path) -> None:
    db = tmp_path / "db" / "storybot.db"
    process = await asyncio.create_subprocess_exec(
        *STORYBOT, "story", "a lantern that walks", "--scenes", "10", "--video", "--out", str(tmp_path / "out"),
        env=_env(tmp_path), cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        while not db.exists() or _images_done(db) < 1:
            assert process.returncode is None, "the story ended before the first image"
            assert asyncio.get_running_loop().time() < deadline, "no image was drawn in time"
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), STOP_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = stderr.decode(errors="replace")
    assert process.returncode == 143, text
    assert text.strip() == "storybot: stopped (SIGTERM); nothing is lost. Run `storybot work` (or start the bot " \
        "again) to finish."  # fmt: skip
    assert _scalar(db, "SELECT COUNT(*) FROM jobs WHERE status = 'running'") == 0
    assert _scalar(db, "SELECT COUNT(*) FROM jobs WHERE status = 'queued'") > 0


def _images_done(db: Path) -> int:
    try:
        return _scalar(db, "SELECT COUNT(*) FROM scenes WHERE image_status = 'complete'")
    except sqlite3.OperationalError:
        return 0  # not migrated yet
