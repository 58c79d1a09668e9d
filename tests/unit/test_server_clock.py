"""ServerClock: processes on hosts whose clocks disagree take their wall time from the database server."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.clock import ServerClock


async def test_before_its_first_sync_it_is_the_system_clock() -> None:
    async def never() -> float:
        raise AssertionError("not read until sync()")

    clock = ServerClock(never)

    assert abs(clock.now() - time.time()) < 1.0


async def test_it_tells_the_servers_time_as_it_moves_on_here() -> None:
    hour_ahead = time.time() + 3600  # the server's clock is an hour ahead of ours

    async def server() -> float:
        return hour_ahead

    clock = ServerClock(server)
    drift = await clock.sync()
    first = clock.now()
    await asyncio.sleep(0.05)
    later = clock.now()

    assert abs(first - hour_ahead) < 0.5
    assert abs(drift + 3600) < 0.5  # our clock is an hour behind the server's
    assert 0.04 <= later - first < 1.0  # time passes at our monotonic rate, whatever our wall clock does


async def test_a_step_of_this_hosts_wall_clock_does_not_move_it(monkeypatch: pytest.MonkeyPatch) -> None:
    server_time = time.time()

    async def server() -> float:
        return server_time

    clock = ServerClock(server)
    await clock.sync()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # NTP, or an operator, sets it an hour back

    assert abs(clock.now() - server_time) < 0.5
