"""The in-memory health of every model: updated at once by each call and each check, read by the registry.

Everything here is synchronous and reads only memory, so the router's call listener and the registry's
availability hook stay cheap. What changed is marked dirty; the recorder writes it to ``model_health``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from bot.clock import Clock
from bot.domain import CallRecord, ModelHealth
from bot.errors import PLAIN_WORDS, ErrorKind
from bot.health.model import HealthState, Probe
from bot.health.rules import RecentCalls, Thresholds, derive_state, is_fault
from bot.routing.breaker import Breakers, Cooldowns
from bot.routing.registry import Availability, Registry
from storage.health import CallRow

AVAILABLE_STATES = frozenset({HealthState.UP, HealthState.DEGRADED})


class HealthBook:
    """``breakers`` and ``cooldowns`` are the live router's; without them (``storybot status`` in another
    process) the breaker and cooldown stored by the running bot are shown as they are."""

    def __init__(
        self,
        registry: Registry,
        clock: Clock,
        thresholds: Thresholds,
        *,
        breakers: Breakers | None = None,
        cooldowns: Cooldowns | None = None,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.thresholds = thresholds
        self.breakers = breakers
        self.cooldowns = cooldowns
        self._entries: dict[str, ModelHealth] = {}
        self._recent: dict[str, RecentCalls] = {}
        self._dirty: set[str] = set()

    # reading ---------------------------------------------------------------------------------------------------

    def get(self, key: str) -> ModelHealth:
        """The model's health, worked out from the registry alone when nothing was recorded yet."""
        if key not in self._entries:
            self._entries[key] = ModelHealth(key)
            self.refresh(key)
            self._dirty.discard(key)  # worked out, not observed: a read (storybot status) must not write it
        return self._entries[key]

    def known(self) -> list[str]:
        return sorted(self._entries)

    def verdict(self, key: str) -> Availability | None:
        """The registry's health hook: unusable when a check or a call said the model is retired or its key
        was refused. Reads memory only."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.retired:
            reason = "retired by its provider"
            if entry.successor:
                reason += f"; use {entry.successor} instead"
            return Availability(False, reason, HealthState.RETIRED)
        if entry.key_rejected:
            return Availability(False, "the provider refused its API key", HealthState.UNCONFIGURED)
        return None

    # writing ---------------------------------------------------------------------------------------------------

    def load(self, entries: Iterable[ModelHealth], recent_calls: Iterable[CallRow] = ()) -> None:
        """What the last run stored, and its calls of the last 10 minutes (so "degraded" survives too)."""
        for entry in entries:
            if self.registry.get(entry.key) is not None:
                self._entries[entry.key] = entry
        for call in recent_calls:
            self._recent_of(call.model_key).add(call.started_at, call.latency_ms, is_fault(_kind(call.error_kind)))

    def on_call(self, record: CallRecord) -> None:
        """A real call's outcome, counted at once (called by the router for every provider call)."""
        key, now = record.model_key, self.clock.now()
        entry = self.get(key)
        kind = record.error_kind
        if kind is None:
            entry.last_success = now
            entry.consecutive_failures = 0
            entry.probe_failed = entry.retired = entry.key_rejected = False
        else:
            entry.last_failure = now
            entry.error_count += 1
            entry.last_error = PLAIN_WORDS[kind].format(model=key)
            if is_fault(kind):
                entry.consecutive_failures += 1
            if kind is ErrorKind.MODEL_RETIRED:
                entry.retired = True
        self._recent_of(key).add(record.started_at, record.latency_ms, is_fault(kind))
        self._dirty.add(key)
        self.refresh(key)

    def on_probe(self, probe: Probe) -> None:
        entry = self.get(probe.model_key)
        entry.last_check = probe.checked_at
        if probe.ok:
            entry.probe_failed = entry.retired = entry.key_rejected = False
            entry.consecutive_failures = 0  # it answers again: a model nobody calls must not stay down
        elif probe.retired or probe.error_kind is ErrorKind.MODEL_RETIRED:
            entry.retired, entry.probe_failed = True, False
        elif probe.error_kind is ErrorKind.AUTH:
            entry.key_rejected, entry.probe_failed = True, False
        else:
            entry.probe_failed = True
        if not probe.ok:
            kind = probe.error_kind or ErrorKind.TRANSIENT
            entry.last_error = probe.detail or PLAIN_WORDS[kind].format(model=probe.model_key)
        self._dirty.add(probe.model_key)
        self.refresh(probe.model_key)

    def refresh(self, key: str) -> None:
        """Re-read the live breaker and cooldown and re-derive the state (marks the entry dirty if it changed)."""
        now = self.clock.now()
        entry = self._entries.setdefault(key, ModelHealth(key))
        before = dataclasses.astuple(entry)
        if self.breakers is not None:
            state = self.breakers.state(key).value
            entry.breaker_state = state
            entry.breaker_reopen_at = now + self.breakers.reopen_in(key) if state == "open" else None
        if self.cooldowns is not None:
            left = self.cooldowns.remaining(key)
            entry.cooldown_until = now + left if left else None
        static = self.registry.availability(key, consult_health=False)
        recent = self._recent_of(key).stats(now)
        entry.state = derive_state(entry, static, recent, self.thresholds, now)
        available = entry.state in AVAILABLE_STATES
        if available:
            entry.unavailable_since = None
        elif entry.available or entry.unavailable_since is None:
            entry.unavailable_since = now
        entry.available = available
        entry.successor = self._successor(key) if entry.state is HealthState.RETIRED else None
        if dataclasses.astuple(entry) != before:
            self._dirty.add(key)

    def refresh_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.refresh(key)

    def take_dirty(self) -> list[ModelHealth]:
        """Copies of the entries changed since the last call (the recorder writes them)."""
        dirty, self._dirty = self._dirty, set()
        return [dataclasses.replace(self._entries[key]) for key in sorted(dirty) if key in self._entries]

    def mark_dirty(self, keys: Iterable[str]) -> None:
        """Put back entries whose write failed."""
        self._dirty.update(keys)

    # helpers ---------------------------------------------------------------------------------------------------

    def _recent_of(self, key: str) -> RecentCalls:
        return self._recent.setdefault(key, RecentCalls())

    def _successor(self, key: str) -> str | None:
        """The catalogue's successor, else a usable model of the same kind (same provider first)."""
        spec = self.registry.get(key)
        if spec is None:
            return None
        if spec.successor:
            return spec.successor
        candidates = [s for s in self.registry.specs(spec.modality) if s.key != key]
        candidates.sort(key=lambda s: (s.provider != spec.provider, s.provider == "local"))
        return next((c.key for c in candidates if self.registry.availability(c.key).usable), None)


def _kind(value: str | None) -> ErrorKind | None:
    return ErrorKind(value) if value else None
