"""The health monitor in a real Runtime (SQLite, router, registry) on a FakeClock: checks and their cache,
states, alerts once per condition with one recovery each, restarts, a retired primary, and real checks
against the fake providers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.domain import CallRecord, Modality, RoutingConfig
from bot.errors import ErrorKind, ProviderError
from bot.health.alerts import Alert
from bot.health.model import HealthState, Probe
from bot.routing.registry import ModelSpec
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from storage import health as health_rows
from storage import testing as storage_testing
from tests.fakes.providers import FakeProviders

START = 1_800_000_000.0
PRIMARY, FALLBACK = "gpt-image-1.5", "gemini-3.1-flash-image"
IMAGE_ROUTING = RoutingConfig(primary_model=PRIMARY, fallbacks=[FALLBACK], retry_delay_ms=100)


class FakeProber:
    """Answers checks from a table (ok unless told otherwise) and records what was checked."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.answers: dict[str, dict[str, Any]] = {}

    async def __call__(self, spec: ModelSpec, now: float) -> Probe:
        self.sent.append(spec.key)
        return Probe(spec.key, checked_at=now, **self.answers.get(spec.key, {"ok": True}))


class RecordingNotifier:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def take(self) -> set[tuple[str, bool]]:
        taken = {(alert.key, alert.recovered) for alert in self.alerts}
        self.alerts.clear()
        return taken


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_path": tmp_path / "storybot.db",
        "media_dir": tmp_path / "media",
        "openai_api_key": "sk-test",
        "gemini_api_key": "gemini-test",
        "routing": {"image": IMAGE_ROUTING.model_dump()},
        "health_http_port": 0,
    }
    values.update(overrides)
    return load_settings(**values)


@contextlib.asynccontextmanager
async def monitored(
    settings: Settings, clock: FakeClock, prober: FakeProber, notifier: RecordingNotifier
) -> AsyncIterator[Runtime]:
    async with Runtime(settings, clock=clock) as runtime:
        runtime.health.prober = prober
        runtime.health.alerts.notifiers.append(notifier)
        yield runtime


async def draw(runtime: Runtime, times: int) -> list[str]:
    """``times`` image requests for the primary; it fails with 503s, the fallback answers."""

    async def invoke(spec: ModelSpec) -> str:
        if spec.key == PRIMARY:
            raise ProviderError(ErrorKind.TRANSIENT, "503 from upstream", status=503)
        return spec.key

    return [(await runtime.router.call(PRIMARY, Modality.IMAGE, invoke)).model_used for _ in range(times)]


async def test_down_thresholds_alert_once_then_recover_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.health.alerts")
    clock, prober, notifier = FakeClock(START), FakeProber(), RecordingNotifier()
    settings = settings_for(tmp_path)
    async with monitored(settings, clock, prober, notifier) as runtime:
        await runtime.health.tick()
        assert notifier.take() == set()
        prober.answers[PRIMARY] = {"ok": False, "error_kind": ErrorKind.TRANSIENT, "detail": "HTTP 503"}
        clock.advance(60)
        await runtime.health.tick()
        status = {m.key: m for m in (await runtime.health.report()).models}[PRIMARY]
        assert (status.state, status.last_error, status.unavailable_since) == (HealthState.DOWN, "HTTP 503", START + 60)
        assert notifier.take() == set()  # down, but not for 5 minutes yet

        assert set(await draw(runtime, 8)) == {FALLBACK}
        runtime.health.recorder(CallRecord(FALLBACK, clock.now(), 31_000.0, None, True))  # one slow answer
        await runtime.health.tick()
        assert notifier.take() == {
            ("error_rate:gpt-image-1.5", False),
            ("fallback_rate:image", False),
            ("slow:gemini-3.1-flash-image", False),
        }
        await runtime.health.tick()
        assert notifier.take() == set()  # once per condition

        clock.advance(300)  # over 5 minutes since the primary went down
        await runtime.health.tick()
        assert notifier.take() == {("unavailable:gpt-image-1.5", False)}
        await runtime.health.tick()
        assert notifier.take() == set()

    restarted = RecordingNotifier()  # a restart remembers what was sent and what is still wrong
    async with monitored(settings, clock, prober, restarted) as runtime:
        assert runtime.health.book.get(PRIMARY).state is HealthState.DOWN
        clock.advance(5)
        await runtime.health.tick()
        assert restarted.take() == set()

        prober.answers.clear()  # the provider is back
        clock.advance(3601)  # and an hour passes without errors, fallbacks or slow answers
        await runtime.health.tick()
        assert restarted.take() == {
            ("error_rate:gpt-image-1.5", True),
            ("fallback_rate:image", True),
            ("slow:gemini-3.1-flash-image", True),
            ("unavailable:gpt-image-1.5", True),
        }
        assert runtime.health.book.get(PRIMARY).state is HealthState.UP
        await runtime.health.tick()
        assert restarted.take() == set()
        assert await health_rows.open_alerts(runtime.db) == {}
        assert await storage_testing.count_calls(runtime.db) > 8  # every provider call was stored

    logged = [r.getMessage() for r in caplog.records if r.name == "bot.health.alerts"]
    assert sum(m.startswith("🚨 Alert: ") for m in logged) == 4
    assert sum(m.startswith("✅ Recovered: ") for m in logged) == 4


async def test_checks_are_cached_and_never_sent_for_unconfigured_or_local_models(tmp_path: Path) -> None:
    clock, prober = FakeClock(START), FakeProber()
    async with monitored(settings_for(tmp_path), clock, prober, RecordingNotifier()) as runtime:
        assert await runtime.health.check() == len(prober.sent) > 0
        checked = set(prober.sent)
        assert checked == {"gpt-5-mini", "gemini-3-flash", "gpt-image-1.5", "gpt-image-1-mini",
                           "gemini-3.1-flash-image", "gemini-3-pro-image"}  # fmt: skip
        clock.advance(29)
        assert await runtime.health.check() == 0  # within HEALTH_CACHE_S: nothing is sent
        assert len(prober.sent) == len(checked)
        runtime.health.recorder(CallRecord("gpt-5-mini", clock.now(), 500.0, None, False))
        clock.advance(2)
        assert await runtime.health.check() == len(checked) - 1  # a real success just now counts as a check
        assert "gpt-5-mini" not in prober.sent[len(checked) :]


async def test_a_retired_primary_is_routed_around_and_its_successor_named(tmp_path: Path) -> None:
    clock, prober, notifier = FakeClock(START), FakeProber(), RecordingNotifier()
    prober.answers[PRIMARY] = {"ok": False, "retired": True, "error_kind": ErrorKind.MODEL_RETIRED, "detail": "404"}
    async with monitored(settings_for(tmp_path), clock, prober, notifier) as runtime:
        await runtime.health.tick()
        status = {m.key: m for m in (await runtime.health.report()).models}[PRIMARY]
        assert (status.state, status.available, status.successor) == (HealthState.RETIRED, False, "gpt-image-1-mini")
        assert PRIMARY not in [spec.key for spec in runtime.router.chain(PRIMARY, Modality.IMAGE)]
        called: list[str] = []

        async def invoke(spec: ModelSpec) -> str:
            called.append(spec.key)
            return spec.key

        result = await runtime.router.call(PRIMARY, Modality.IMAGE, invoke)
        assert called == [FALLBACK] and result.fallback
        clock.advance(301)
        await runtime.health.tick()
        [alert] = notifier.alerts
        assert alert.key == "unavailable:gpt-image-1.5"
        assert "set ROUTING__IMAGE__PRIMARY_MODEL=gpt-image-1-mini" in alert.text


async def test_real_checks_use_the_model_listing_never_a_generation(tmp_path: Path, fake: FakeProviders) -> None:
    clock = FakeClock(START)
    settings = settings_for(tmp_path, gemini_api_key=None, openai_base_url=fake.openai_base_url)
    async with Runtime(settings, clock=clock) as runtime:
        assert await runtime.health.check() == 3
        looked_up = sorted(call.path.rsplit("/", 1)[-1] for call in fake.calls("openai.models.retrieve"))
        assert looked_up == ["gpt-5-mini", "gpt-image-1-mini", "gpt-image-1.5"]
        assert fake.calls("openai.images.generate") == [] and fake.calls("openai.chat") == []
        assert runtime.health.book.get(PRIMARY).state is HealthState.UP

        fake.retire(PRIMARY)
        clock.advance(settings.health_check_interval_s)
        assert await runtime.health.check() == 3
        entry = runtime.health.book.get(PRIMARY)
        assert (entry.state, entry.successor) == (HealthState.RETIRED, "gpt-image-1-mini")
        assert not runtime.registry.availability(PRIMARY).usable
