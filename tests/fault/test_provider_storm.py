"""A provider storm: 30 % 429 with Retry-After, 10 % 5xx, 5 % hangs and 2 % malformed bodies on every
generation route of the fake providers, driven by the real SDK clients. Every story completes (the
local models are the last resort), fallbacks are recorded, breakers open and close, and nothing is
logged as an error or with a traceback.

The faults are scripted per route from a seeded RNG (set FAULT_SEED to replay a storm); which job
meets which fault still depends on timing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.clock import Clock
from bot.errors import ErrorKind
from bot.routing.breaker import Breakers, BreakerState
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from storage import assets
from storage import jobs as job_rows
from tests.fakes.providers import FakeProviders, Fault, FaultKind
from tests.support.faults import fault_seed
from tests.support.ledger import assert_nothing_lost_or_doubled
from tests.support.providers import fault_provider_env

pytestmark = pytest.mark.slow

STORIES, SCENES = 8, 2
DEFAULT_SEED = 30_10_05_02
STORM_ROUTES = frozenset({
    "openai.chat", "openai.images.generate", "openai.images.edit", "google.generate_content", "xai.chat",
    "xai.images.generate", "xai.images.edit", "xai.images.file",
    "xai.videos.create", "xai.videos.poll", "xai.videos.download",
})  # fmt: skip
PROVIDER_TIMEOUT_S = 1.0  # a hang costs this long
# Loggers of the fake server itself: a hang ended by the client is the server's business, not the bot's.
SERVER_SIDE = ("aiohttp", "tests.fakes")


def storm_deck(rng: random.Random) -> list[Fault]:
    """100 answers in the storm's exact proportions, shuffled: 30 x 429, 10 x 5xx, 5 hangs, 2 malformed."""
    deck = [Fault.rate_limit(retry_after=rng.choice((0.05, 0.1, 0.2))) for _ in range(30)]
    deck += [Fault.server_error(rng.choice((500, 502, 503))) for _ in range(10)]
    deck += [Fault.hang(60) for _ in range(5)] + [Fault.malformed() for _ in range(2)]
    deck += [Fault.ok() for _ in range(100 - len(deck))]
    rng.shuffle(deck)
    return deck


def front_loaded(deck: list[Fault], within: int) -> list[Fault]:
    """The deck with each rare fault (hang, malformed) moved into the first ``within`` answers if it
    was not there, so even a short storm meets every kind; the proportions stay exact."""
    for kind in (FaultKind.HANG, FaultKind.MALFORMED):
        if any(f.kind is kind for f in deck[:within]):
            continue
        rare = next(i for i, f in enumerate(deck) if f.kind is kind)
        plain = next(i for i, f in enumerate(deck[:within]) if f.kind is FaultKind.OK)
        deck[rare], deck[plain] = deck[plain], deck[rare]
    return deck


def opening_burst(deck: list[Fault], size: int) -> list[Fault]:
    """The deck with ``size`` of its 429s and 5xx moved to the front: the storm opens with a burst, so the
    first calls exhaust their retries (or open a breaker) and the router must fall back, whatever the
    timing. The proportions stay exact."""
    burst = [f for f in deck if f.kind in (FaultKind.RATE_LIMIT, FaultKind.SERVER_ERROR)][:size]
    rest = list(deck)
    for fault in burst:
        rest.remove(fault)
    return burst + rest


class StormProviders(FakeProviders):
    """The fake providers, answering every generation route from one seeded storm, deck after deck,
    so every 100 requests meet the storm's exact mix whatever the routes they go to."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        # Four stories start at once and each model gets 3 tries: 12 failures first make a fallback certain.
        opening = opening_burst(storm_deck(self._rng), size=12)
        self._deck = front_loaded(opening, within=40)[::-1]  # popped from the end
        self.served: list[tuple[str, Fault]] = []
        self.calm = False  # the storm is over: every route answers normally

    def _next_fault(self, route: str) -> Fault:
        if route not in STORM_ROUTES or self.calm:
            return super()._next_fault(route)
        if not self._deck:
            self._deck = storm_deck(self._rng)
        fault = self._deck.pop()
        self.served.append((route, fault))
        return fault


@pytest.fixture
async def storm_providers() -> AsyncIterator[StormProviders]:
    seed = fault_seed(DEFAULT_SEED)
    print(f"provider storm seed: {seed} (replay with FAULT_SEED={seed})")
    server = StormProviders(seed)
    async with server:
        yield server


class RecordingBreakers(Breakers):
    """Breakers that remember every state change they make (model key, from, to)."""

    def __init__(self, clock: Clock, **options: float) -> None:
        super().__init__(clock, **options)  # type: ignore[arg-type]
        self.transitions: list[tuple[str, BreakerState, BreakerState]] = []

    def _watch(self, key: str, change: Callable[[], object]) -> object:
        before = self.state(key)
        result = change()
        after = self.state(key)
        if after is not before:
            self.transitions.append((key, before, after))
        return result

    def allow(self, key: str) -> bool:
        return bool(self._watch(key, lambda: super(RecordingBreakers, self).allow(key)))

    def record_success(self, key: str) -> None:
        self._watch(key, lambda: super(RecordingBreakers, self).record_success(key))

    def record_failure(self, key: str, kind: ErrorKind) -> None:
        self._watch(key, lambda: super(RecordingBreakers, self).record_failure(key, kind))


async def test_every_story_completes_through_a_provider_storm(
    storm_providers: StormProviders,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    every_log: pytest.LogCaptureFixture,
) -> None:
    providers = storm_providers
    env = fault_provider_env(providers, tmp_path, PROVIDER_TIMEOUT_S=str(PROVIDER_TIMEOUT_S))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rt = Runtime(load_settings(), out_dir=tmp_path / "out")
    # Breakers that open after 3 failures in a row and half-open after half a second, so a short
    # storm shows them both opening and closing again.
    breakers = RecordingBreakers(rt.clock, failure_threshold=3, reset_timeout_s=0.5, probe_timeout_s=5.0)
    rt.router.breakers = breakers
    async with rt:
        for index in range(STORIES):
            await rt.stories.create(StoryOptions(prompt=f"storm story {index}", scenes=SCENES, video=True))
        stats = await rt.run_until_empty(backoff_base_s=0.05, backoff_cap_s=0.5)
        ledger = assert_nothing_lost_or_doubled(rt.settings.database_path, stories=STORIES, scenes=SCENES, video=True)
        assert (stats.dead, stats.failed) == (0, 0), stats

        # The storm really blew: every kind of fault was served, many times.
        kinds = Counter(fault.kind for _, fault in providers.served)
        print(f"faults served: {dict(kinds)}; breaker transitions: {breakers.transitions}; stats: {stats}")
        assert len(providers.served) >= 60, f"only {len(providers.served)} provider calls: not a storm"
        for kind in (FaultKind.RATE_LIMIT, FaultKind.SERVER_ERROR, FaultKind.HANG, FaultKind.MALFORMED):
            assert kinds[kind] > 0, f"no {kind} was served: {dict(kinds)}"

        # Fallbacks are recorded on the assets and jobs, each with a warning the user can read.
        fallbacks = []
        for story_id in ledger.story_ids:
            fallbacks += [a for a in await assets.list_for_story(rt.db, story_id) if a.fallback_occurred]
        assert fallbacks, "the storm caused no fallback"
        for asset in fallbacks:
            assert asset.model_used != asset.model_requested
            warnings = asset.generation_metadata.get("warnings") or []
            assert any(f"with {asset.model_used} instead" in w for w in warnings), warnings
        jobs = [job for story_id in ledger.story_ids for job in await job_rows.list_for_story(rt.db, story_id)]
        assert any(job.model_fallback_occurred and job.generation_warnings for job in jobs)

        # Breakers opened under the storm. Once it is over, one more story sends a probe through each
        # open breaker of its primary models (their reset time has passed), and they close again.
        opened = {key for key, before, after in breakers.transitions if after is BreakerState.OPEN}
        assert opened, "no breaker opened"
        providers.calm = True
        await asyncio.sleep(breakers.reset_timeout_s)
        await rt.stories.create(StoryOptions(prompt="after the storm", scenes=SCENES, video=True))
        calm = await rt.run_until_empty()
        assert (calm.dead, calm.failed, calm.retried) == (0, 0, 0), calm
        assert_nothing_lost_or_doubled(rt.settings.database_path, stories=STORIES + 1, scenes=SCENES, video=True)
        closed = {key for key, before, after in breakers.transitions if after is BreakerState.CLOSED}
        assert opened & closed, f"breakers opened ({opened}) but none closed again ({closed})"

    # Nothing crashed: no error, and no traceback, from the bot or the SDKs below it.
    ours = [r for r in every_log.records if not r.name.startswith(SERVER_SIDE)]
    errors = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in ours if r.levelno >= logging.ERROR]
    assert not errors, errors
    tracebacks = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in ours if r.exc_info or r.exc_text]
    assert not tracebacks, tracebacks
    assert any("rate_limited" in r.getMessage() for r in ours if r.levelno == logging.WARNING)
