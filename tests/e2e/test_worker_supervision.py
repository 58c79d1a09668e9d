"""Issue #11: a worker pool that dies anyway is restarted, and while none runs the bot says it cannot serve
(/health 503) and /story new refuses privately instead of accepting a story nothing would make.
The real StoryBot against the fake Discord."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.jobs import supervisor
from bot.jobs.worker import Worker
from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.support.discord_harness import OWNER, make_settings, running, wait_for_story

WAIT_S = 30.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} within {WAIT_S} s")


async def health(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/health") as response:
        return response.status, await response.json()


async def test_a_dead_worker_pool_is_restarted_and_nothing_is_accepted_meanwhile(
    fake: FakeDiscord,
    tmp_path: Path,
    reserved_port: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real_fill = Worker._fill
    crashed: list[bool] = []

    async def fill_that_crashes_once(self: Worker) -> None:
        if not crashed:
            crashed.append(True)
            raise RuntimeError("a bug in the pool itself")
        await real_fill(self)

    # The supervisor's wait before the restart lasts until the test has looked at the bot without workers.
    looked = asyncio.Event()

    async def wait_for_the_test(stop: asyncio.Event, seconds: float) -> bool:
        await looked.wait()
        return stop.is_set()

    monkeypatch.setattr(Worker, "_fill", fill_that_crashes_once)
    monkeypatch.setattr(supervisor, "_stopped_within", wait_for_the_test)
    caplog.set_level(logging.WARNING, logger="bot.jobs.supervisor")
    port = reserved_port
    async with running(make_settings(tmp_path, fake, health_http_port=port)) as bot:
        await eventually(lambda: bot.supervisor.restarts == 1, "the pool never crashed")
        assert not bot.supervisor.running and not bot.runtime.accepting_stories()
        status, body = await health(port)
        assert (status, body["status"], body["workers"]) == (503, "unavailable", {"running": False})

        refused = await fake.slash(OWNER, "story", "new", options={"prompt": "a heron learns to sing", "scenes": 1})
        ack = await refused.ack()
        assert (ack.type, ack.status, ack.ephemeral) == (4, 200, True)
        assert "the bot cannot make stories right now" in ack.data["content"], ack.data["content"]
        assert await storage_testing.list_all(bot.runtime.db) == []

        looked.set()
        await eventually(lambda: bot.supervisor.running, "the pool was never restarted")
        status, body = await health(port)
        assert (status, body["workers"]) == (200, {"running": True})
        accepted = await fake.slash(OWNER, "story", "new", options={"prompt": "a heron learns to sing", "scenes": 1})
        assert (await accepted.ack()).type == 5
        await wait_for_story(fake, accepted, scenes=1, video=False)

    crash_lines = [r.getMessage() for r in caplog.records if r.name == "bot.jobs.supervisor"]
    assert crash_lines[0].startswith("the worker pool stopped (RuntimeError: a bug in the pool itself); restarting")
    assert crash_lines[1:] == ["restarting the worker pool"]
