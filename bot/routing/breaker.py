"""Per-model circuit breakers and cooldowns, in memory, driven by an injectable clock.

Breaker: CLOSED until ``failure_threshold`` consecutive countable failures (transient, rate-limited),
then OPEN for ``reset_timeout_s``; then HALF_OPEN lets exactly one probe through. The probe's
success closes it, its failure re-opens it. A probe that never reports back (a hung call) is
given up after ``probe_timeout_s`` so the breaker cannot wedge half-open.

Cooldown: auth, exhausted-quota and retired-model errors make a model unusable for a while,
whatever the breaker says; the registry's availability reads ``remaining()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.clock import Clock
from bot.errors import ErrorKind


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


COUNTED = frozenset({ErrorKind.TRANSIENT, ErrorKind.RATE_LIMITED})


@dataclass
class _Circuit:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probe_started: float | None = None


class Breakers:
    def __init__(
        self, clock: Clock, *, failure_threshold: int = 5, reset_timeout_s: float = 60.0, probe_timeout_s: float = 300.0
    ) -> None:
        self.clock = clock
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.probe_timeout_s = probe_timeout_s
        self._circuits: dict[str, _Circuit] = {}

    def _circuit(self, key: str) -> _Circuit:
        return self._circuits.setdefault(key, _Circuit())

    def state(self, key: str) -> BreakerState:
        circuit = self._circuit(key)
        if circuit.state is BreakerState.OPEN and self.clock.now() >= circuit.opened_at + self.reset_timeout_s:
            return BreakerState.HALF_OPEN
        return circuit.state

    def reopen_in(self, key: str) -> float:
        """Seconds until an open breaker lets a probe through (0 when it would now)."""
        circuit = self._circuit(key)
        if circuit.state is not BreakerState.OPEN:
            return 0.0
        return max(circuit.opened_at + self.reset_timeout_s - self.clock.now(), 0.0)

    def allow(self, key: str) -> bool:
        """May a call go to this model now? In HALF_OPEN, only the first caller gets the probe."""
        circuit, now = self._circuit(key), self.clock.now()
        if self.state(key) is BreakerState.CLOSED:
            return True
        if self.state(key) is BreakerState.OPEN:
            return False
        probe_stale = circuit.probe_started is not None and now - circuit.probe_started > self.probe_timeout_s
        if circuit.probe_started is None or probe_stale:
            circuit.state, circuit.probe_started = BreakerState.HALF_OPEN, now
            return True
        return False

    def record_success(self, key: str) -> None:
        self._circuits[key] = _Circuit()

    def record_failure(self, key: str, kind: ErrorKind) -> None:
        circuit = self._circuit(key)
        if kind not in COUNTED:
            if circuit.state is BreakerState.HALF_OPEN:
                circuit.probe_started = None  # the probe ended without telling us about health
            return
        circuit.failures += 1
        if circuit.state is BreakerState.HALF_OPEN or circuit.failures >= self.failure_threshold:
            circuit.state, circuit.opened_at, circuit.probe_started = BreakerState.OPEN, self.clock.now(), None

    def snapshot(self) -> dict[str, tuple[BreakerState, float]]:
        return {key: (self.state(key), self.reopen_in(key)) for key in self._circuits}

    def open_until(self) -> dict[str, float]:
        """The open breakers, with the time each lets a probe through."""
        return {
            key: circuit.opened_at + self.reset_timeout_s
            for key, circuit in self._circuits.items()
            if self.state(key) is BreakerState.OPEN
        }

    def hold_open(self, key: str, until: float) -> None:
        """Open the breaker until ``until`` (another process's breaker opened), unless it is open that long already."""
        if until <= self.clock.now():
            return
        circuit, opened_at = self._circuit(key), until - self.reset_timeout_s
        if circuit.state is BreakerState.OPEN and circuit.opened_at >= opened_at:
            return
        circuit.state, circuit.opened_at, circuit.probe_started = BreakerState.OPEN, opened_at, None


class Cooldowns:
    """Models benched after auth, quota or retirement errors."""

    DURATIONS = {ErrorKind.AUTH: 600.0, ErrorKind.QUOTA_EXHAUSTED: 900.0, ErrorKind.MODEL_RETIRED: 86_400.0}

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._until: dict[str, tuple[float, ErrorKind]] = {}

    def bench(self, key: str, kind: ErrorKind) -> float:
        seconds = self.DURATIONS.get(kind, 60.0)
        self._until[key] = (self.clock.now() + seconds, kind)
        return seconds

    def remaining(self, key: str) -> float | None:
        entry = self._until.get(key)
        if entry is None:
            return None
        left = entry[0] - self.clock.now()
        if left <= 0:
            del self._until[key]
            return None
        return left

    def reason(self, key: str) -> ErrorKind | None:
        return self._until[key][1] if self.remaining(key) is not None else None

    def benched(self) -> dict[str, tuple[float, ErrorKind]]:
        """The models benched now: until when, and why."""
        return {key: entry for key, entry in list(self._until.items()) if self.remaining(key) is not None}

    def hold(self, key: str, until: float, kind: ErrorKind) -> None:
        """Bench the model until ``until`` (another process benched it), unless it is benched that long already."""
        entry = self._until.get(key)
        if until > self.clock.now() and (entry is None or entry[0] < until):
            self._until[key] = (until, kind)
