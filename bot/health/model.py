"""The shapes the health package shares: states, probe results, window statistics, the status report.

Everything here is plain data; the status renderers (Discord embed, terminal table, /health JSON,
/metrics) read only a StatusReport, and the checker reads only Probes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.domain import (
    HealthState,  # one enum for the registry and the health package; rules in bot/health/rules.py
    KindDepth,
)
from bot.errors import ErrorKind

__all__ = [
    "WINDOWS_S",
    "ChartPoint",
    "HealthState",
    "ModelStatus",
    "Probe",
    "StatusReport",
    "WindowStats",
]


WINDOWS_S: dict[str, float] = {"10m": 600.0, "1h": 3600.0, "24h": 86_400.0}


@dataclass(frozen=True)
class Probe:
    """What a provider's cheap listing endpoint said about one model (never a generation)."""

    model_key: str
    ok: bool
    checked_at: float
    latency_ms: float = 0.0
    retired: bool = False
    shutdown_date: str | None = None  # ISO date from the listing, when the provider announces one
    error_kind: ErrorKind | None = None
    detail: str = ""  # plain words for /status when not ok


@dataclass(frozen=True)
class WindowStats:
    calls: int = 0
    successes: int = 0
    fallbacks: int = 0  # calls made as a fallback for another model
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    max_ms: float | None = None  # the slowest call (its histogram bin's middle for aggregated calls)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.calls if self.calls else None

    @property
    def error_rate(self) -> float | None:
        return (self.calls - self.successes) / self.calls if self.calls else None

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.calls if self.calls else None

    @property
    def fault_rate(self) -> float | None:
        """Failures that say something about the model: content-policy blocks are the prompt's doing."""
        if not self.calls:
            return None
        blocked = self.errors_by_kind.get(ErrorKind.CONTENT_POLICY.value, 0)
        return (self.calls - self.successes - blocked) / self.calls


@dataclass(frozen=True)
class ModelStatus:
    key: str
    provider: str
    modality: str
    state: HealthState
    available: bool
    windows: dict[str, WindowStats]  # keyed like WINDOWS_S
    last_error: str | None = None  # plain words
    last_success_at: float | None = None
    last_failure_at: float | None = None
    cooldown_left_s: float = 0.0
    breaker: str = "closed"  # closed | half_open | open
    successor: str | None = None  # for a retired model
    unavailable_since: float | None = None  # when it last stopped being available (None while available)


@dataclass(frozen=True)
class ChartPoint:
    """One hour of the last 24 for one model: success rate (0-1, None without calls) and p50 latency."""

    model_key: str
    hour_start: float
    success_rate: float | None
    p50_ms: float | None


@dataclass(frozen=True)
class StatusReport:
    generated_at: float
    models: list[ModelStatus]
    queue_depth: int
    oldest_queued_age_s: float | None
    database_ok: bool = True
    discord_connected: bool | None = None  # None: not running as a Discord bot
    chart: list[ChartPoint] = field(default_factory=list)
    workers_running: bool | None = None  # None: this process runs no long-lived worker pool
    queue_by_kind: dict[str, KindDepth] = field(default_factory=dict)  # per job kind, every kind (empty: unread)

    @property
    def can_serve(self) -> bool:
        """/health answers 200 only when the database works, Discord (if used) is connected, the worker pool
        (if any) runs, and each modality has at least one model that is not down, retired or unconfigured."""
        if not self.database_ok or self.discord_connected is False or self.workers_running is False:
            return False
        serving = {m.modality for m in self.models if m.state in (HealthState.UP, HealthState.DEGRADED)}
        return {"text", "image"} <= serving
