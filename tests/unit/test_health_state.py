"""Health states from calls, checks, breakers and cooldowns (HealthBook + rules), and the registry hook."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.clock import FakeClock
from bot.domain import CallRecord, Modality
from bot.errors import ErrorKind
from bot.health.book import HealthBook
from bot.health.model import HealthState, Probe
from bot.health.rules import Thresholds
from bot.routing.breaker import Breakers
from bot.routing.catalog import BUILTIN_ALIASES, BUILTIN_SPECS
from bot.routing.registry import Registry
from bot.routing.router import ModelRouter
from bot.settings import load_settings

MODEL = "gpt-image-1.5"


@dataclass
class World:
    clock: FakeClock
    registry: Registry
    router: ModelRouter
    book: HealthBook

    def call(self, error: ErrorKind | None = None, *, latency_ms: float = 800.0, key: str = MODEL) -> None:
        self.book.on_call(CallRecord(key, self.clock.now(), latency_ms, error, fallback=False))

    def state(self, key: str = MODEL) -> HealthState:
        self.book.refresh(key)
        return self.book.get(key).state


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    registry = Registry(
        BUILTIN_SPECS, BUILTIN_ALIASES, key_present=lambda env: env in {"OPENAI_API_KEY", "GEMINI_API_KEY"}, clock=clock
    )
    router = ModelRouter(registry, load_settings().routing, clock, breakers=Breakers(clock, failure_threshold=5))
    book = HealthBook(registry, clock, Thresholds(), breakers=router.breakers, cooldowns=router.cooldowns)
    registry.set_health_hook(book.verdict)
    return World(clock, registry, router, book)


def test_models_never_called_get_their_state_from_the_registry(world: World) -> None:
    assert world.state(MODEL) is HealthState.UP
    assert world.state("local-sketch") is HealthState.UP
    assert world.state("grok-imagine-image") is HealthState.UNCONFIGURED  # no xAI key
    retired = world.book.get("dall-e-3")
    assert (retired.state, retired.available, retired.successor) == (HealthState.RETIRED, False, "gpt-image-1.5")


def test_consecutive_failures_take_a_model_down_and_one_success_brings_it_back(world: World) -> None:
    world.call()
    world.call(ErrorKind.TRANSIENT)
    world.call(ErrorKind.TRANSIENT)
    assert world.state() is HealthState.UP
    down_at = world.clock.now()
    world.call(ErrorKind.TRANSIENT)
    entry = world.book.get(MODEL)
    assert (entry.state, entry.available, entry.consecutive_failures) == (HealthState.DOWN, False, 3)
    assert entry.unavailable_since == down_at
    assert entry.last_error == "gpt-image-1.5 had a temporary outage"
    world.clock.advance(700)  # past the 10-minute window, so the old failures no longer degrade it
    world.call()
    entry = world.book.get(MODEL)
    assert (entry.state, entry.available, entry.consecutive_failures, entry.unavailable_since) == (
        HealthState.UP, True, 0, None,
    )  # fmt: skip
    assert entry.error_count == 3 and entry.last_error == "gpt-image-1.5 had a temporary outage"  # kept as history


def test_content_policy_blocks_do_not_count_against_the_model(world: World) -> None:
    for _ in range(10):
        world.call(ErrorKind.CONTENT_POLICY)
    entry = world.book.get(MODEL)
    assert entry.state is HealthState.UP and entry.consecutive_failures == 0 and entry.error_count == 10


def test_error_rate_over_the_threshold_degrades_until_the_window_passes(world: World) -> None:
    for index in range(20):
        world.call(ErrorKind.RATE_LIMITED if index in (3, 11) else None)  # 10 % > 5 %, never consecutive
        world.clock.advance(10)
    assert world.state() is HealthState.DEGRADED
    world.clock.advance(601)
    assert world.state() is HealthState.UP


def test_fewer_calls_than_the_minimum_say_nothing_about_the_rate(world: World) -> None:
    world.call(ErrorKind.TRANSIENT)
    world.call()
    assert world.state() is HealthState.UP


def test_one_slow_call_degrades_for_ten_minutes(world: World) -> None:
    world.call(latency_ms=31_000)
    assert world.state() is HealthState.DEGRADED
    world.clock.advance(601)
    assert world.state() is HealthState.UP


def test_open_breaker_is_down_and_half_open_is_degraded(world: World) -> None:
    for _ in range(5):
        world.router.breakers.record_failure(MODEL, ErrorKind.TRANSIENT)
    entry = world.book.get(MODEL)
    assert world.state() is HealthState.DOWN and entry.breaker_state == "open"
    assert entry.breaker_reopen_at == pytest.approx(world.clock.now() + 60)
    world.clock.advance(61)
    assert world.state() is HealthState.DEGRADED and world.book.get(MODEL).breaker_state == "half_open"


def test_cooldown_after_a_refused_key_is_down(world: World) -> None:
    world.router.cooldowns.bench(MODEL, ErrorKind.AUTH)
    world.call(ErrorKind.AUTH)
    entry = world.book.get(MODEL)
    assert entry.state is HealthState.DOWN
    assert entry.cooldown_until == pytest.approx(world.clock.now() + 600)


def test_a_check_that_finds_the_model_retired_routes_around_it_and_names_the_successor(world: World) -> None:
    key = "gemini-3-pro-image"  # no successor in the catalogue: one of the same provider is chosen
    world.book.on_probe(Probe(key, ok=False, checked_at=world.clock.now(), retired=True, detail="404"))
    entry = world.book.get(key)
    assert (entry.state, entry.available, entry.successor) == (HealthState.RETIRED, False, "gemini-3.1-flash-image")
    availability = world.registry.availability(key)
    assert not availability.usable and availability.state is HealthState.RETIRED
    assert "use gemini-3.1-flash-image instead" in (availability.reason or "")
    chain = [spec.key for spec in world.router.chain(key, Modality.IMAGE)]
    assert key not in chain and chain[0] == MODEL
    assert key not in [spec.key for spec in world.registry.usable(Modality.IMAGE)]

    world.book.on_probe(Probe(key, ok=True, checked_at=world.clock.now()))  # the provider lists it again
    assert world.book.get(key).state is HealthState.UP and world.registry.availability(key).usable


def test_a_call_failing_with_model_retired_marks_it_retired(world: World) -> None:
    world.call(ErrorKind.MODEL_RETIRED)
    assert world.state() is HealthState.RETIRED
    assert not world.registry.availability(MODEL).usable


def test_a_refused_key_at_check_time_is_unconfigured_and_unusable(world: World) -> None:
    world.book.on_probe(Probe(MODEL, ok=False, checked_at=world.clock.now(), error_kind=ErrorKind.AUTH, detail="401"))
    assert world.state() is HealthState.UNCONFIGURED
    availability = world.registry.availability(MODEL)
    assert not availability.usable and availability.reason == "the provider refused its API key"


def test_a_failed_check_is_down_until_a_real_call_succeeds(world: World) -> None:
    world.book.on_probe(
        Probe(MODEL, ok=False, checked_at=world.clock.now(), error_kind=ErrorKind.TRANSIENT, detail="HTTP 503")
    )
    entry = world.book.get(MODEL)
    assert (entry.state, entry.last_error, entry.last_check) == (HealthState.DOWN, "HTTP 503", world.clock.now())
    assert world.registry.availability(MODEL).usable  # down by a check is not routed around: the breaker decides
    world.call()
    assert world.state() is HealthState.UP


def test_changed_entries_are_handed_out_once(world: World) -> None:
    world.book.take_dirty()
    world.call()
    assert [entry.key for entry in world.book.take_dirty()] == [MODEL]
    assert world.book.take_dirty() == []
    world.book.mark_dirty([MODEL])
    assert [entry.key for entry in world.book.take_dirty()] == [MODEL]
