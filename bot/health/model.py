"""The shapes the health package shares: states, probe results, window statistics, the status report.

Everything here is plain data; the status renderers (Discord embed, terminal table, /health JSON,
/metrics) read only a StatusReport, and the checker reads only Probes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from bot.errors import ErrorKind


class HealthState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"  # answering, but failing or slow more than it should
    DOWN = "down"  # unreachable or failing every call
    RETIRED = "retired"  # the provider shut it down (404, or a shutdown date that has passed)
    UNCONFIGURED = "unconfigured"  # no API key for its provider


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

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.calls if self.calls else None

    @property
    def error_rate(self) -> float | None:
        return (self.calls - self.successes) / self.calls if self.calls else None

    @property
    def fallback_rate(self) -> float | None:
        return self.fallbacks / self.calls if self.calls else None


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

    @property
    def can_serve(self) -> bool:
        """/health answers 200 only when the database works, Discord (if used) is connected, and each
        modality has at least one model that is not down, retired or unconfigured."""
        if not self.database_ok or self.discord_connected is False:
            return False
        serving = {m.modality for m in self.models if m.state in (HealthState.UP, HealthState.DEGRADED)}
        return {"text", "image"} <= serving
