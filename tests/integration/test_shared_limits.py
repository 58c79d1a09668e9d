"""The per-provider limit holds across processes, as the provider sees it: three Runtimes on one database
(three processes' workers, each allowed 4 jobs at once) and a limit of 2 for OpenAI, against the fake
OpenAI server on 127.0.0.1 through the real SDK. On both engines."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from storage import testing as storage_testing
from tests.fakes.providers import FakeProviders, Fault
from tests.support.providers import provider_env

IMAGES = ("openai.images.generate", "openai.images.edit")  # the first scene's picture, then the others from it


async def test_three_processes_with_a_limit_of_2_never_send_the_provider_3_calls_at_once(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None
) -> None:
    for name, value in provider_env(fake, tmp_path).items():
        monkeypatch.setenv(name, value)
    for route in IMAGES:
        fake.fail_always(route, Fault.latency(0.3))  # slow enough for every worker to want a call at once
    settings = load_settings(database_url=database_url, provider_concurrency=2, worker_concurrency=4)
    async with contextlib.AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(
                Runtime(settings.model_copy(update={"media_dir": tmp_path / f"media-{n}"}), out_dir=tmp_path / "out")
            )
            for n in range(3)
        ]
        for n in range(2):
            await runtimes[0].stories.create(StoryOptions(prompt=f"three foxes, tale {n}", scenes=3))
        stats = await asyncio.gather(*(rt.run_until_empty(idle_poll_s=0.05) for rt in runtimes))
        stories = await storage_testing.list_all(runtimes[0].db)

    assert sum(s.succeeded for s in stats) > 0 and all(s.dead == 0 and s.failed == 0 for s in stats)
    assert [story.status.value for story in stories] == ["complete", "complete"]
    assert sum(len(fake.calls(route)) for route in IMAGES) == 6
    assert fake.peak_in_flight["openai"] == 2  # the limit, reached and never passed
    assert sum(1 for s in stats if s.succeeded) >= 2  # the work was shared between processes
