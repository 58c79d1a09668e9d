"""Alert rules over the status report, sent once per condition until it clears, then one recovery message.

Conditions (thresholds from settings, see rules.Thresholds):
- ``unavailable:<model>``: a modality's primary model (the first configured model of its routing chain)
  has not been available for longer than ``alert_unavailable_s`` (a retired one names its successor);
- ``fallback_rate:<modality>``: over the last hour, more than ``alert_fallback_rate`` of the modality's
  calls were made as a fallback (at least ``min_calls`` calls);
- ``error_rate:<model>``: over the last 10 minutes, more than ``alert_error_rate`` of a model's calls
  failed through its fault (at least ``min_calls`` calls);
- ``slow:<model>``: a call in the last 10 minutes took longer than ``alert_slow_call_s``.
Open alerts live in ``health_alerts``, so a restart neither repeats an alert nor forgets a recovery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.domain import HealthState, Modality, RoutingConfig
from bot.health.model import ModelStatus, StatusReport
from bot.health.rules import Thresholds
from bot.health.table import duration, percent
from bot.routing.registry import Registry
from storage import health as health_rows
from storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    key: str  # e.g. "error_rate:gpt-image-1.5"
    message: str
    recovered: bool = False

    @property
    def text(self) -> str:
        return f"{'✅ Recovered' if self.recovered else '🚨 Alert'}: {self.message}"


class Notifier(Protocol):
    async def notify(self, alert: Alert) -> None:
        """Deliver one alert or recovery; failures are the notifier's to log (the log always has it)."""
        ...


class LoggingNotifier:
    async def notify(self, alert: Alert) -> None:
        if alert.recovered:
            log.info("%s", alert.text)
        else:
            log.warning("%s", alert.text)


def primary_models(registry: Registry, routing: Mapping[Modality, RoutingConfig]) -> dict[Modality, str]:
    """Each modality's primary: the first model of its chain that has its key (unconfigured ones are skipped)."""
    primaries = {}
    for modality, config in routing.items():
        for key in config.chain:
            spec = registry.get(key)
            if spec is None:
                continue
            if registry.availability(spec.key, consult_health=False).state is not HealthState.UNCONFIGURED:
                primaries[modality] = spec.key
                break
    return primaries


def conditions(report: StatusReport, primaries: Mapping[Modality, str], thresholds: Thresholds) -> dict[str, str]:
    """alert key -> message, for every condition that holds now."""
    found: dict[str, str] = {}
    by_key = {model.key: model for model in report.models}
    for modality, key in primaries.items():
        model = by_key.get(key)
        if model is None or model.available or model.state is HealthState.UNCONFIGURED:
            continue
        since = model.unavailable_since
        if since is not None and report.generated_at - since > thresholds.unavailable_s:
            found[f"unavailable:{key}"] = _unavailable(model, modality, report.generated_at - since)
    for modality in Modality:
        models = [m for m in report.models if m.modality == modality.value]
        calls = sum(m.windows["1h"].calls for m in models if "1h" in m.windows)
        fallbacks = sum(m.windows["1h"].fallbacks for m in models if "1h" in m.windows)
        if calls >= thresholds.min_calls and fallbacks / calls > thresholds.fallback_rate:
            found[f"fallback_rate:{modality.value}"] = (
                f"{percent(fallbacks / calls)} of {modality.value} calls in the last hour went to a fallback model "
                f"({fallbacks} of {calls}; the limit is {percent(thresholds.fallback_rate)})"
            )
    for model in report.models:
        recent = model.windows.get("10m")
        if recent is None or not recent.calls:
            continue
        rate = recent.fault_rate or 0.0
        if recent.calls >= thresholds.min_calls and rate > thresholds.error_rate:
            found[f"error_rate:{model.key}"] = (
                f"{model.key} failed {percent(rate)} of its {recent.calls} calls in the last 10 minutes "
                f"(the limit is {percent(thresholds.error_rate)}); last error: {model.last_error or 'unknown'}"
            )
        if recent.max_ms is not None and recent.max_ms > thresholds.slow_call_s * 1000:
            found[f"slow:{model.key}"] = (
                f"{model.key} took {recent.max_ms / 1000:.0f} s to answer a call "
                f"(the limit is {thresholds.slow_call_s:g} s)"
            )
    return found


def _unavailable(model: ModelStatus, modality: Modality, for_s: float) -> str:
    text = f"{model.key}, the primary {modality.value} model, has been {model.state.value} for {duration(for_s)}"
    if model.last_error:
        text += f" ({model.last_error})"
    if model.state is HealthState.RETIRED and model.successor:
        variable = f"ROUTING__{modality.value.upper()}__PRIMARY_MODEL"
        return f"{text}; its successor is {model.successor}: set {variable}={model.successor}"
    return f"{text}; requests go to the fallback models meanwhile"


def recovery_message(key: str, thresholds: Thresholds) -> str:
    kind, _, subject = key.partition(":")
    return {
        "unavailable": f"{subject} is available again",
        "fallback_rate": f"{subject} fallbacks are back under {percent(thresholds.fallback_rate)} of calls",
        "error_rate": f"{subject} fails under {percent(thresholds.error_rate)} of its calls again",
        "slow": f"{subject} answers within {thresholds.slow_call_s:g} s again",
    }.get(kind, f"{key} cleared")


class AlertManager:
    def __init__(self, db: Database, notifiers: Sequence[Notifier], thresholds: Thresholds) -> None:
        self.db = db
        self.notifiers = list(notifiers)
        self.thresholds = thresholds
        self._lock = asyncio.Lock()

    async def evaluate(self, report: StatusReport, primaries: Mapping[Modality, str]) -> list[Alert]:
        """Send what started or cleared since the last evaluation; returns what was sent."""
        async with self._lock:  # two evaluations at once would both see a new condition and both send it
            return await self._evaluate(report, primaries)

    async def _evaluate(self, report: StatusReport, primaries: Mapping[Modality, str]) -> list[Alert]:
        if not report.database_ok:
            return []  # without the database the rules see no calls, and nothing could be remembered
        now = report.generated_at
        current = conditions(report, primaries, self.thresholds)
        opened = await health_rows.open_alerts(self.db)
        sent = []
        for key, message in current.items():
            if key in opened:
                continue
            alert = Alert(key, message)
            await self._send(alert)
            async with self.db.transaction() as conn:
                await health_rows.open_alert(conn, key, message, now)
            sent.append(alert)
        for key in opened:
            if key in current:
                continue
            alert = Alert(key, recovery_message(key, self.thresholds), recovered=True)
            await self._send(alert)
            async with self.db.transaction() as conn:
                await health_rows.close_alert(conn, key)
            sent.append(alert)
        return sent

    async def _send(self, alert: Alert) -> None:
        for notifier in self.notifiers:
            try:
                await notifier.notify(alert)
            except Exception:  # one broken channel must not silence the others
                log.exception("an alert notifier failed for %s", alert.key)
