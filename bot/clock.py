"""Time as a dependency, so tests can move it instead of sleeping.

Two clocks, for two questions. ``now()`` is the wall clock: what gets stored (due times, timestamps)
and compared across processes. It can step (NTP, a VM resumed, an operator) and differ between
hosts. ``monotonic()`` only ever moves forward at the rate time passes, but means nothing outside
this process: use it for every "has this long passed?" question a process answers on its own
(waits, maintenance periods, how long another worker's heartbeat has stood still).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back; comparable only within this process."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ServerClock(SystemClock):
    """The wall clock of a server that every process shares (the PostgreSQL server's), read through this
    process's monotonic clock: ``now()`` is the server's time when last synced plus the time passed here
    since. Processes on hosts whose clocks disagree, or step, then agree on due times and timestamps to
    within a network round trip. Before the first ``sync`` it is the system clock.
    """

    def __init__(self, read_server_time: Callable[[], Awaitable[float]]) -> None:
        self._read = read_server_time
        self._offset: float | None = None  # server time minus our monotonic time

    def now(self) -> float:
        return time.time() if self._offset is None else time.monotonic() + self._offset

    async def sync(self) -> float:
        """Read the server's time again; returns how far our own wall clock is from it (for a log line)."""
        before = time.monotonic()
        server = await self._read()
        after = time.monotonic()
        self._offset = server - (before + after) / 2
        return time.time() - self.now()


class FakeClock:
    """A clock that only moves when told to; ``sleep`` advances it instantly.

    ``advance`` is time passing (both clocks move); ``step`` is the wall clock being set (only ``now``
    moves), as NTP or an operator does.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._monotonic = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._monotonic += seconds

    def step(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)
