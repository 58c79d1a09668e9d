"""Which alert conditions hold for a status report, at and around each configurable threshold."""

from __future__ import annotations

from bot.clock import FakeClock
from bot.domain import Modality, RoutingConfig
from bot.health.alerts import conditions, primary_models, recovery_message
from bot.health.model import HealthState, ModelStatus, StatusReport, WindowStats
from bot.health.rules import Thresholds
from bot.routing.catalog import BUILTIN_ALIASES, BUILTIN_SPECS
from bot.routing.registry import Registry

NOW = 1_800_000_000.0
T = Thresholds(unavailable_s=300, fallback_rate=0.10, error_rate=0.05, slow_call_s=30, min_calls=5)
PRIMARY = {Modality.IMAGE: "gpt-image-1.5"}


def status(key: str, modality: str = "image", *, state: HealthState = HealthState.UP, **fields: object) -> ModelStatus:
    values: dict[str, object] = {
        "key": key, "provider": "openai", "modality": modality, "state": state,
        "available": state in (HealthState.UP, HealthState.DEGRADED), "windows": {},
    }  # fmt: skip
    values.update(fields)
    return ModelStatus(**values)  # type: ignore[arg-type]


def report(*models: ModelStatus) -> StatusReport:
    return StatusReport(generated_at=NOW, models=list(models), queue_depth=0, oldest_queued_age_s=None)


def windows(ten: WindowStats | None = None, hour: WindowStats | None = None) -> dict[str, WindowStats]:
    return {"10m": ten or WindowStats(), "1h": hour or WindowStats(), "24h": WindowStats()}


def test_primary_unavailable_alerts_only_after_the_threshold() -> None:
    down = status("gpt-image-1.5", state=HealthState.DOWN, unavailable_since=NOW - 300, last_error="HTTP 503")
    assert conditions(report(down), PRIMARY, T) == {}
    down = status("gpt-image-1.5", state=HealthState.DOWN, unavailable_since=NOW - 301, last_error="HTTP 503")
    assert conditions(report(down), PRIMARY, T) == {
        "unavailable:gpt-image-1.5": "gpt-image-1.5, the primary image model, has been down for 5 min (HTTP 503); "
        "requests go to the fallback models meanwhile"
    }
    fallback = status("gemini-3.1-flash-image", state=HealthState.DOWN, unavailable_since=NOW - 3600)
    assert conditions(report(fallback), PRIMARY, T) == {}  # only primaries alert for availability


def test_a_retired_primary_names_its_successor_and_the_setting() -> None:
    retired = status("gpt-image-1.5", state=HealthState.RETIRED, unavailable_since=NOW - 900, successor="gpt-image-2")
    [message] = conditions(report(retired), PRIMARY, T).values()
    assert "has been retired for 15 min" in message
    assert message.endswith("its successor is gpt-image-2: set ROUTING__IMAGE__PRIMARY_MODEL=gpt-image-2")


def test_fallback_rate_is_per_modality_over_the_hour() -> None:
    primary = status("gpt-image-1.5", windows=windows(hour=WindowStats(calls=18, successes=18)))
    at_limit = status("gemini-3.1-flash-image", windows=windows(hour=WindowStats(calls=2, successes=2, fallbacks=2)))
    assert conditions(report(primary, at_limit), PRIMARY, T) == {}  # 2 of 20 is 10 %: not over
    over = status("gemini-3.1-flash-image", windows=windows(hour=WindowStats(calls=3, successes=3, fallbacks=3)))
    found = conditions(report(primary, over), PRIMARY, T)
    assert list(found) == ["fallback_rate:image"]
    assert found["fallback_rate:image"].startswith("14.3 % of image calls in the last hour went to a fallback model")


def test_error_rate_counts_the_models_faults_not_content_policy_blocks() -> None:
    blocked = WindowStats(calls=20, successes=10, errors_by_kind={"content_policy": 10})
    assert conditions(report(status("gpt-image-1.5", windows=windows(blocked))), PRIMARY, T) == {}
    at_limit = WindowStats(calls=20, successes=19, errors_by_kind={"transient": 1})
    assert conditions(report(status("gpt-image-1.5", windows=windows(at_limit))), PRIMARY, T) == {}
    over = WindowStats(calls=20, successes=18, errors_by_kind={"transient": 2})
    found = conditions(report(status("gpt-image-1.5", windows=windows(over), last_error="boom")), PRIMARY, T)
    assert found == {
        "error_rate:gpt-image-1.5": "gpt-image-1.5 failed 10 % of its 20 calls in the last 10 minutes "
        "(the limit is 5 %); last error: boom"
    }
    few = WindowStats(calls=4, successes=0, errors_by_kind={"transient": 4})
    assert conditions(report(status("gpt-image-1.5", windows=windows(few))), PRIMARY, T) == {}


def test_one_slow_call_alerts() -> None:
    quick = WindowStats(calls=1, successes=1, max_ms=30_000)
    assert conditions(report(status("local-sketch", windows=windows(quick))), PRIMARY, T) == {}
    slow = WindowStats(calls=1, successes=1, max_ms=42_000)
    assert conditions(report(status("local-sketch", windows=windows(slow))), PRIMARY, T) == {
        "slow:local-sketch": "local-sketch took 42 s to answer a call (the limit is 30 s)"
    }


def test_primaries_skip_models_without_a_key() -> None:
    registry = Registry(BUILTIN_SPECS, BUILTIN_ALIASES, key_present=lambda env: env == "XAI_API_KEY", clock=FakeClock())
    routing = {
        Modality.IMAGE: RoutingConfig(primary_model="gpt-image-1.5", fallbacks=["grok-imagine-image"]),
        Modality.TEXT: RoutingConfig(primary_model="gpt-5-mini", fallbacks=["local-template"]),
        Modality.VIDEO: RoutingConfig(primary_model="sora-2"),  # retired, but it is what the operator routes to
    }
    assert primary_models(registry, routing) == {
        Modality.IMAGE: "grok-imagine-image",
        Modality.TEXT: "local-template",
        Modality.VIDEO: "sora-2",
    }


def test_recovery_messages_name_what_cleared() -> None:
    assert recovery_message("unavailable:gpt-image-1.5", T) == "gpt-image-1.5 is available again"
    assert recovery_message("fallback_rate:image", T) == "image fallbacks are back under 10 % of calls"
    assert recovery_message("error_rate:x", T) == "x fails under 5 % of its calls again"
    assert recovery_message("slow:x", T) == "x answers within 30 s again"
