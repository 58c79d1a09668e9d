"""Open breakers and cooldowns reach every process on the database (bot/health/holds.py), on both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.clock import FakeClock
from bot.errors import ErrorKind
from bot.health.holds import SharedHolds
from bot.routing.breaker import Breakers, BreakerState, Cooldowns
from storage.db import Database
from tests.support.database import twin

MODEL = "gpt-image-1.5"


class Process:
    """One process's router state and its sharing, on its own connection."""

    def __init__(self, db: Database, clock: FakeClock) -> None:
        self.breakers = Breakers(clock, failure_threshold=3, reset_timeout_s=60.0)
        self.cooldowns = Cooldowns(clock)
        self.holds = SharedHolds(db, self.breakers, self.cooldowns, clock)


@pytest.fixture
async def two(db: Database, clock: FakeClock) -> AsyncIterator[tuple[Process, Process]]:
    async with twin(db) as first, twin(db) as second:
        yield Process(first, clock), Process(second, clock)


async def test_one_process_429s_open_the_breaker_of_the_others(two: tuple[Process, Process], clock: FakeClock) -> None:
    a, b = two
    for _ in range(3):
        a.breakers.record_failure(MODEL, ErrorKind.RATE_LIMITED)
    assert b.breakers.allow(MODEL)  # not shared yet

    await a.holds.sync()
    adopted = await b.holds.sync()

    assert [(hold.model_key, hold.kind) for hold in adopted] == [(MODEL, "breaker")]
    assert b.breakers.state(MODEL) is BreakerState.OPEN and not b.breakers.allow(MODEL)
    assert b.breakers.reopen_in(MODEL) == pytest.approx(60.0)
    clock.advance(61)
    assert b.breakers.allow(MODEL)  # its time is up: b sends its own probe
    assert await b.holds.sync() == [] and await a.holds.sync() == []


async def test_a_cooldown_benches_the_model_everywhere_with_its_reason(
    two: tuple[Process, Process], clock: FakeClock
) -> None:
    a, b = two
    seconds = a.cooldowns.bench(MODEL, ErrorKind.QUOTA_EXHAUSTED)
    await a.holds.sync()
    clock.advance(10)
    await b.holds.sync()

    assert b.cooldowns.remaining(MODEL) == pytest.approx(seconds - 10)
    assert b.cooldowns.reason(MODEL) is ErrorKind.QUOTA_EXHAUSTED


async def test_a_hold_only_moves_later(two: tuple[Process, Process], clock: FakeClock) -> None:
    a, b = two
    a.cooldowns.bench(MODEL, ErrorKind.MODEL_RETIRED)  # a day
    await a.holds.sync()
    b.cooldowns.bench(MODEL, ErrorKind.AUTH)  # ten minutes, later in time but ending sooner
    await b.holds.sync()

    assert b.cooldowns.remaining(MODEL) == pytest.approx(86_400.0)
    assert b.cooldowns.reason(MODEL) is ErrorKind.MODEL_RETIRED
    rows = await b.holds.db.fetchall("SELECT until, reason FROM model_holds WHERE model_key = ?", (MODEL,))
    assert [(row["until"], row["reason"]) for row in rows] == [(clock.now() + 86_400.0, "model_retired")]
