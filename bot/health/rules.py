"""How a model's health state is decided, and the thresholds behind it and behind the alerts.

The first rule that matches wins:

1. **unconfigured**: its provider has no API key (the registry says so), or a check was refused the key.
2. **retired**: the catalogue's ``retired_on`` has passed, or a check said 404 / a shutdown date that has
   passed, or a call failed with ``model_retired``. The registry's health hook makes it unusable, so the
   router goes around it; ``/status`` names its successor. A later successful check or call clears it.
3. **down**: the last check failed (and no call has succeeded since), or ``DOWN_AFTER_FAILURES``
   consecutive calls failed (since the last successful call or check), or its circuit breaker is
   open, or it is cooling down after an auth or quota error.
4. **degraded**: over the last 10 minutes, at least ``min_calls`` calls and more than ``error_rate`` of
   them failed through the model's fault (content-policy blocks are the prompt's, not the model's), or
   one call took longer than ``slow_call_s``, or its breaker is half-open (one probe call allowed).
5. **up** otherwise.

A model is *available* while it is up or degraded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bot.domain import ModelHealth
from bot.errors import ErrorKind
from bot.health.model import HealthState
from bot.routing.registry import Availability
from bot.settings import Settings

DOWN_AFTER_FAILURES = 3
RECENT_S = 600.0  # the window for "degraded" and for the error-rate alert
MIN_CALLS_FOR_RATE = 5  # a rate over fewer calls than this says nothing yet
NOT_THE_MODELS_FAULT = frozenset({ErrorKind.CONTENT_POLICY})


@dataclass(frozen=True)
class Thresholds:
    unavailable_s: float = 300.0
    fallback_rate: float = 0.10
    error_rate: float = 0.05
    slow_call_s: float = 30.0
    min_calls: int = MIN_CALLS_FOR_RATE
    down_after_failures: int = DOWN_AFTER_FAILURES

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            unavailable_s=settings.alert_unavailable_s,
            fallback_rate=settings.alert_fallback_rate,
            error_rate=settings.alert_error_rate,
            slow_call_s=settings.alert_slow_call_s,
        )


@dataclass(frozen=True)
class RecentStats:
    calls: int = 0
    faults: int = 0
    slowest_ms: float = 0.0

    def too_faulty(self, thresholds: Thresholds) -> bool:
        return self.calls >= thresholds.min_calls and self.faults / self.calls > thresholds.error_rate


class RecentCalls:
    """The last 10 minutes of one model's calls, in memory, so a call changes its state at once."""

    def __init__(self, window_s: float = RECENT_S) -> None:
        self.window_s = window_s
        self._calls: deque[tuple[float, float, bool]] = deque()  # (started_at, latency_ms, fault)

    def add(self, started_at: float, latency_ms: float, fault: bool) -> None:
        self._calls.append((started_at, latency_ms, fault))

    def stats(self, now: float) -> RecentStats:
        cutoff = now - self.window_s
        while self._calls and self._calls[0][0] < cutoff:
            self._calls.popleft()
        calls = [call for call in self._calls if call[0] >= cutoff]
        if not calls:
            return RecentStats()
        return RecentStats(len(calls), sum(1 for c in calls if c[2]), max(c[1] for c in calls))


def is_fault(kind: ErrorKind | None) -> bool:
    return kind is not None and kind not in NOT_THE_MODELS_FAULT


def derive_state(
    entry: ModelHealth, static: Availability, recent: RecentStats, thresholds: Thresholds, now: float
) -> HealthState:
    """The state by the rules above. ``static`` is the registry's availability without the health hook."""
    if static.state is HealthState.UNCONFIGURED or (entry.key_rejected and static.state is not HealthState.RETIRED):
        return HealthState.UNCONFIGURED
    if static.state is HealthState.RETIRED or entry.retired:
        return HealthState.RETIRED
    cooling = entry.cooldown_until is not None and entry.cooldown_until > now
    if (
        entry.breaker_state == "open"
        or cooling
        or static.state is HealthState.DOWN
        or entry.probe_failed
        or entry.consecutive_failures >= thresholds.down_after_failures
    ):
        return HealthState.DOWN
    if (
        entry.breaker_state == "half_open"
        or recent.too_faulty(thresholds)
        or recent.slowest_ms > thresholds.slow_call_s * 1000
    ):
        return HealthState.DEGRADED
    return HealthState.UP
