"""The router's choices for each error class, capability-aware fallback, and breaker transitions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.clock import FakeClock
from bot.domain import Modality, RoutingConfig
from bot.errors import ErrorKind, ModelUnavailableError, ProviderError
from bot.routing.breaker import Breakers, BreakerState
from bot.routing.registry import ModelSpec, Registry
from bot.routing.router import ModelRouter
from bot.settings import load_settings

ALL_KEYS = {"OPENAI_API_KEY", "GEMINI_API_KEY", "XAI_API_KEY"}


def make_router(
    clock: FakeClock, *, fallbacks: list[str] | None = None, max_retries: int = 3, keys: set[str] = ALL_KEYS
) -> ModelRouter:
    settings = load_settings()
    registry = Registry.load(settings, clock=clock)
    registry = Registry(registry.specs(), registry.aliases, key_present=lambda env: env in keys, clock=clock)
    routing = dict(settings.routing)
    routing[Modality.IMAGE] = RoutingConfig(
        primary_model="gpt-image-1.5",
        fallbacks=fallbacks if fallbacks is not None else ["gemini-3.1-flash-image", "grok-imagine-image"],
        max_retries=max_retries,
        retry_delay_ms=100,
    )
    return ModelRouter(registry, routing, clock, breakers=Breakers(clock, failure_threshold=3, reset_timeout_s=60))


def scripted(outcomes: dict[str, list[ProviderError | str]]) -> tuple[Callable, list[str]]:
    """An invoke function that answers per model from a script; records the models called."""
    calls: list[str] = []

    async def invoke(spec: ModelSpec) -> str:
        calls.append(spec.key)
        script = outcomes.get(spec.key, ["ok"])
        outcome = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(outcome, ProviderError):
            raise outcome
        return f"{spec.key}:{outcome}"

    return invoke, calls


def err(kind: ErrorKind, retry_after: float | None = None) -> ProviderError:
    return ProviderError(kind, f"{kind.value} from the fake", retry_after=retry_after)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_primary_succeeds_first_time(clock: FakeClock) -> None:
    router = make_router(clock)
    invoke, calls = scripted({})
    routed = await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert (routed.model_used, routed.fallback, routed.attempts, routed.warnings) == ("gpt-image-1.5", False, 1, [])
    assert calls == ["gpt-image-1.5"]


async def test_alias_is_routed_to_todays_model(clock: FakeClock) -> None:
    routed = await make_router(clock).call("gpt-image-1", Modality.IMAGE, scripted({})[0])
    assert routed.model_requested == routed.model_used == "gpt-image-1.5"


async def test_transient_errors_are_retried_on_the_same_model_with_backoff(clock: FakeClock) -> None:
    router = make_router(clock)
    invoke, calls = scripted({"gpt-image-1.5": [err(ErrorKind.TRANSIENT), err(ErrorKind.TRANSIENT), "ok"]})
    start = clock.now()
    routed = await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gpt-image-1.5"] * 3 and routed.model_used == "gpt-image-1.5" and routed.attempts == 3
    assert clock.now() - start >= 0.1 + 0.2  # exponential: 100 ms, then 200 ms, plus jitter


async def test_retry_after_is_honoured(clock: FakeClock) -> None:
    router = make_router(clock)
    invoke, _ = scripted({"gpt-image-1.5": [err(ErrorKind.RATE_LIMITED, retry_after=7), "ok"]})
    start = clock.now()
    await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert clock.now() - start == pytest.approx(7)


async def test_exhausted_retries_fall_back_with_a_plain_warning(clock: FakeClock) -> None:
    router = make_router(clock)
    invoke, calls = scripted({"gpt-image-1.5": [err(ErrorKind.RATE_LIMITED, retry_after=1)]})
    routed = await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gpt-image-1.5"] * 3 + ["gemini-3.1-flash-image"]
    assert routed.fallback and routed.model_used == "gemini-3.1-flash-image"
    assert routed.warnings == ["gpt-image-1.5 was rate-limited; drawn with gemini-3.1-flash-image instead"]


async def test_content_policy_is_never_retried_nor_fallen_back(clock: FakeClock) -> None:
    router = make_router(clock)
    invoke, calls = scripted({"gpt-image-1.5": [err(ErrorKind.CONTENT_POLICY)]})
    with pytest.raises(ProviderError) as caught:
        await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gpt-image-1.5"]
    assert "rephras" in caught.value.plain()


@pytest.mark.parametrize("kind", [ErrorKind.AUTH, ErrorKind.QUOTA_EXHAUSTED, ErrorKind.MODEL_RETIRED])
async def test_disabling_errors_bench_the_model_and_go_straight_to_fallback(clock: FakeClock, kind: ErrorKind) -> None:
    router = make_router(clock)
    invoke, calls = scripted({"gpt-image-1.5": [err(kind)]})
    routed = await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gpt-image-1.5", "gemini-3.1-flash-image"] and routed.fallback
    availability = router.registry.availability("gpt-image-1.5")
    assert not availability.usable and "cooling down" in (availability.reason or "")
    calls.clear()
    await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gemini-3.1-flash-image"]  # benched: not even tried
    clock.advance(86_401)
    assert router.registry.availability("gpt-image-1.5").usable


async def test_local_model_is_the_last_resort(clock: FakeClock) -> None:
    router = make_router(clock, fallbacks=[])
    invoke, calls = scripted({"gpt-image-1.5": [err(ErrorKind.BAD_REQUEST)]})
    routed = await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gpt-image-1.5", "local-sketch"]
    assert routed.warnings == ["gpt-image-1.5 rejected the request; drawn with local-sketch instead"]


async def test_reference_stories_never_fall_back_to_models_without_references(clock: FakeClock) -> None:
    router = make_router(clock)
    no_refs = router.registry.get("gemini-3.1-flash-image").model_copy(update={"supports_references": False})
    specs = [no_refs if s.key == no_refs.key else s for s in router.registry.specs()]
    router.registry = Registry(specs, router.registry.aliases, key_present=lambda env: True, clock=clock)
    router.registry.set_cooldown_hook(router.cooldowns.remaining)
    chain = [spec.key for spec in router.chain("gpt-image-1.5", Modality.IMAGE, needs_references=True)]
    assert "gemini-3.1-flash-image" not in chain and chain[0] == "gpt-image-1.5"
    invoke, calls = scripted({"gpt-image-1.5": [err(ErrorKind.AUTH)]})
    await router.call("gpt-image-1.5", Modality.IMAGE, invoke, needs_references=True)
    assert calls == ["gpt-image-1.5", "grok-imagine-image"]


async def test_unconfigured_models_are_skipped(clock: FakeClock) -> None:
    router = make_router(clock, keys={"XAI_API_KEY"})
    chain = [spec.key for spec in router.chain("gpt-image-1.5", Modality.IMAGE)]
    assert chain == ["grok-imagine-image", "local-sketch"]


async def test_a_long_retry_after_defers_when_no_fallback_can_help(clock: FakeClock) -> None:
    router = make_router(clock, fallbacks=[], max_retries=3)
    router.chain = lambda *a, **k: [router.registry.get("gpt-image-1.5")]  # no local last resort here
    invoke, calls = scripted({"gpt-image-1.5": [err(ErrorKind.RATE_LIMITED, retry_after=120)]})
    with pytest.raises(ModelUnavailableError) as caught:
        await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gpt-image-1.5"]  # a 2-minute wait is not slept through
    assert caught.value.retry_after == 120


async def test_breaker_opens_then_half_opens_with_one_probe(clock: FakeClock) -> None:
    breakers = Breakers(clock, failure_threshold=3, reset_timeout_s=60)
    for _ in range(3):
        assert breakers.allow("m")
        breakers.record_failure("m", ErrorKind.TRANSIENT)
    assert breakers.state("m") is BreakerState.OPEN and not breakers.allow("m")
    clock.advance(59)
    assert not breakers.allow("m") and breakers.reopen_in("m") == pytest.approx(1)
    clock.advance(1)
    assert breakers.state("m") is BreakerState.HALF_OPEN
    assert breakers.allow("m") and not breakers.allow("m")  # exactly one probe
    breakers.record_failure("m", ErrorKind.TRANSIENT)
    assert breakers.state("m") is BreakerState.OPEN
    clock.advance(60)
    assert breakers.allow("m")
    breakers.record_success("m")
    assert breakers.state("m") is BreakerState.CLOSED and breakers.allow("m") and breakers.allow("m")


async def test_content_policy_and_bad_requests_do_not_trip_the_breaker(clock: FakeClock) -> None:
    breakers = Breakers(clock, failure_threshold=2)
    for kind in (ErrorKind.CONTENT_POLICY, ErrorKind.BAD_REQUEST, ErrorKind.CONTENT_POLICY):
        breakers.record_failure("m", kind)
    assert breakers.state("m") is BreakerState.CLOSED


async def test_open_breaker_routes_to_fallback_then_defers_when_alone(clock: FakeClock) -> None:
    router = make_router(clock)
    invoke, calls = scripted({"gpt-image-1.5": [err(ErrorKind.TRANSIENT)]})
    await router.call("gpt-image-1.5", Modality.IMAGE, invoke)  # three failures open the breaker
    assert router.breakers.state("gpt-image-1.5") is BreakerState.OPEN
    calls.clear()
    routed = await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert calls == ["gemini-3.1-flash-image"]
    assert "paused after repeated failures" in routed.warnings[0]

    router.chain = lambda *a, **k: [router.registry.get("gpt-image-1.5")]
    with pytest.raises(ModelUnavailableError) as caught:
        await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert caught.value.retry_after == pytest.approx(60)


async def test_every_call_is_reported_to_listeners(clock: FakeClock) -> None:
    router = make_router(clock)
    records = []
    router.listeners.append(records.append)
    invoke, _ = scripted({"gpt-image-1.5": [err(ErrorKind.AUTH)]})
    await router.call("gpt-image-1.5", Modality.IMAGE, invoke)
    assert [(r.model_key, r.error_kind, r.fallback) for r in records] == [
        ("gpt-image-1.5", ErrorKind.AUTH, False),
        ("gemini-3.1-flash-image", None, True),
    ]
