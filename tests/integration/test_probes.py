"""Availability probes through the real openai / google-genai / httpx clients against the fake providers."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.errors import ErrorKind
from bot.health.model import Probe
from bot.health.probes import probe, probe_many
from bot.providers import ProviderSet
from bot.routing.catalog import ModelSpec
from bot.routing.registry import Registry
from bot.settings import load_settings
from tests.fakes.providers import FakeProviders, Fault

NOW = FakeClock().now()  # 2027-01-15 UTC
KEYS = {"openai_api_key": "sk-probe", "gemini_api_key": "gm-probe", "xai_api_key": "xai-probe0123456789"}
SetFactory = Callable[..., ProviderSet]

# (model key, the listing route the probe must use, the path it must ask for)
LISTINGS = [
    ("gpt-image-1.5", "openai.models.retrieve", "/v1/models/gpt-image-1.5"),
    ("gpt-5-mini", "openai.models.retrieve", "/v1/models/gpt-5-mini"),
    ("gemini-3.1-flash-image", "google.models.get", "/v1beta/models/gemini-3.1-flash-image"),
    ("gemini-3-flash", "google.models.get", "/v1beta/models/gemini-3-flash"),
    ("grok-imagine-image", "xai.image_models.retrieve", "/xai/v1/image-generation-models/grok-imagine-image"),
    ("grok-imagine-video", "xai.video_models.retrieve", "/xai/v1/video-generation-models/grok-imagine-video"),
    ("grok-4-fast", "xai.models.retrieve", "/xai/v1/models/grok-4-fast"),
]
ONE_PER_PROVIDER = [LISTINGS[0], LISTINGS[2], LISTINGS[4]]


@pytest.fixture
async def make_providers(fake: FakeProviders, tmp_path: Path) -> AsyncIterator[SetFactory]:
    made: list[ProviderSet] = []

    def build(models_toml: str | None = None, **overrides: Any) -> ProviderSet:
        values: dict[str, Any] = {
            **KEYS,
            "openai_base_url": fake.openai_base_url,
            "google_gemini_base_url": fake.gemini_base_url,
            "xai_base_url": fake.xai_base_url,
            "provider_timeout_s": 5.0,
            "media_dir": tmp_path / "media",
        }
        if models_toml is not None:
            (tmp_path / "models.toml").write_text(models_toml)
            values["models_file"] = tmp_path / "models.toml"
        settings = load_settings(**{**values, **overrides})
        providers = ProviderSet(settings, Registry.load(settings))
        made.append(providers)
        return providers

    yield build
    for providers in made:
        await providers.aclose()


@pytest.fixture
def providers(make_providers: SetFactory) -> ProviderSet:
    return make_providers()


def _spec(providers: ProviderSet, key: str) -> ModelSpec:
    return providers.registry.resolve(key)


async def _probe(providers: ProviderSet, key: str, **options: Any) -> Probe:
    return await probe(providers, _spec(providers, key), NOW, **options)


@pytest.mark.parametrize(("key", "route", "path"), LISTINGS)
async def test_a_listed_model_is_ok_after_one_listing_request(
    fake: FakeProviders, providers: ProviderSet, key: str, route: str, path: str
) -> None:
    result = await _probe(providers, key)

    assert result == Probe(key, ok=True, checked_at=NOW, latency_ms=result.latency_ms)
    assert result.latency_ms > 0
    (sent,) = fake.requests  # one GET on the listing, no generation
    assert (sent.route, sent.method, sent.path) == (route, "GET", path)


@pytest.mark.parametrize(("key", "route", "path"), LISTINGS)
async def test_a_404_marks_the_model_retired(
    fake: FakeProviders, providers: ProviderSet, key: str, route: str, path: str
) -> None:
    fake.retire(key)

    result = await _probe(providers, key)

    assert (result.ok, result.retired, result.error_kind) == (False, True, ErrorKind.MODEL_RETIRED)
    assert result.detail == f"{key} has been retired (the provider no longer lists it)"
    assert [call.route for call in fake.requests] == [route]


async def test_a_retired_model_names_its_successor(fake: FakeProviders, make_providers: SetFactory) -> None:
    providers = make_providers('[[models]]\nkey = "gpt-image-1-mini"\nsuccessor = "gpt-image-1.5"\n')
    fake.retire("gpt-image-1-mini")

    result = await _probe(providers, "gpt-image-1-mini")

    assert result.retired
    assert result.detail.endswith("; use gpt-image-1.5 instead")


@pytest.mark.parametrize(
    ("shutdown_date", "day"),
    [("2026-12-01", "2026-12-01"), ("2027-01-15", "2027-01-15"), ("2026-12-01T00:00:00Z", "2026-12-01")],
)
async def test_a_shutdown_date_that_has_passed_means_retired(
    fake: FakeProviders, providers: ProviderSet, shutdown_date: str, day: str
) -> None:
    fake.shutdown_dates["gpt-image-1.5"] = shutdown_date

    result = await _probe(providers, "gpt-image-1.5")

    assert (result.ok, result.retired, result.error_kind) == (False, True, ErrorKind.MODEL_RETIRED)
    assert result.shutdown_date == day
    assert f"shut it down on {day}" in result.detail


@pytest.mark.parametrize(("shutdown_date", "day"), [("2027-06-01", "2027-06-01"), (1_900_000_000, "2030-03-17")])
async def test_a_future_shutdown_date_is_ok_and_reported(
    fake: FakeProviders, providers: ProviderSet, shutdown_date: Any, day: str
) -> None:
    fake.shutdown_dates["gpt-image-1.5"] = shutdown_date

    result = await _probe(providers, "gpt-image-1.5")

    assert (result.ok, result.retired, result.error_kind) == (True, False, None)
    assert result.shutdown_date == day
    assert day in result.detail


async def test_the_shutdown_date_is_judged_against_now(fake: FakeProviders, providers: ProviderSet) -> None:
    fake.shutdown_dates["gpt-image-1.5"] = "2027-06-01"
    spec = _spec(providers, "gpt-image-1.5")

    assert (await probe(providers, spec, NOW)).ok
    later = await probe(providers, spec, NOW + 200 * 86_400)
    assert later.retired and later.checked_at == NOW + 200 * 86_400


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        (Fault.auth(), ErrorKind.AUTH, "rejected the API key (HTTP 4"),  # 401 at OpenAI, 400 at Gemini and xAI
        (Fault.server_error(503), ErrorKind.TRANSIENT, "had a temporary outage (HTTP 503)"),
        (Fault.server_error(500), ErrorKind.TRANSIENT, "had a temporary outage (HTTP 500)"),
        (Fault.rate_limit(retry_after=2), ErrorKind.RATE_LIMITED, "was rate-limited (HTTP 429)"),
    ],
)
@pytest.mark.parametrize(("key", "route", "path"), ONE_PER_PROVIDER)
async def test_failures_are_not_ok_with_their_kind_in_plain_words(
    fake: FakeProviders,
    providers: ProviderSet,
    key: str,
    route: str,
    path: str,
    fault: Fault,
    kind: ErrorKind,
    words: str,
) -> None:
    fake.script(route, [fault])

    result = await _probe(providers, key)

    assert (result.ok, result.retired, result.error_kind) == (False, False, kind)
    assert result.detail.startswith(f"{key} {words}")
    assert all(secret not in result.detail for secret in KEYS.values())
    assert len(fake.calls(route)) == 1


@pytest.mark.parametrize(("key", "route", "path"), ONE_PER_PROVIDER)
async def test_a_wrong_key_is_auth(
    fake: FakeProviders, providers: ProviderSet, key: str, route: str, path: str
) -> None:
    fake.valid_keys = {"some-other-key"}

    result = await _probe(providers, key)

    assert (result.ok, result.error_kind) == (False, ErrorKind.AUTH)
    assert result.detail.startswith(f"{key} rejected the API key (HTTP 4")


@pytest.mark.parametrize(("key", "route", "path"), ONE_PER_PROVIDER)
async def test_a_listing_that_hangs_times_out_as_transient(
    fake: FakeProviders, providers: ProviderSet, key: str, route: str, path: str
) -> None:
    fake.script(route, [Fault.hang()])

    result = await _probe(providers, key, timeout_s=0.3)

    assert (result.ok, result.error_kind) == (False, ErrorKind.TRANSIENT)
    assert result.detail == f"{key} did not answer the availability check within 0.3 s"
    assert result.latency_ms >= 300


async def test_an_unreachable_provider_is_transient(fake: FakeProviders, providers: ProviderSet) -> None:
    await fake.stop()

    results = [await _probe(providers, key) for key, _, _ in ONE_PER_PROVIDER]

    assert [(r.ok, r.error_kind) for r in results] == [(False, ErrorKind.TRANSIENT)] * 3


async def test_local_models_are_ok_without_any_request(fake: FakeProviders, providers: ProviderSet) -> None:
    results = [await _probe(providers, key) for key in ("local-template", "local-sketch", "local-kenburns")]

    assert all(r.ok and r.error_kind is None and r.latency_ms == 0 for r in results)
    assert fake.requests == []


async def test_a_model_without_its_key_is_not_ok_and_sends_nothing(
    fake: FakeProviders, make_providers: SetFactory
) -> None:
    providers = make_providers(xai_api_key=None)

    result = await _probe(providers, "grok-imagine-image")

    assert (result.ok, result.error_kind) == (False, ErrorKind.AUTH)
    assert result.detail == "grok-imagine-image: no key set (set XAI_API_KEY)"
    assert fake.requests == []


async def test_a_catalogue_retirement_needs_no_request(fake: FakeProviders, providers: ProviderSet) -> None:
    result = await _probe(providers, "dall-e-3")

    assert (result.ok, result.retired, result.error_kind) == (False, True, ErrorKind.MODEL_RETIRED)
    assert result.detail == "dall-e-3 has been retired (retired on 2026-05-12); use gpt-image-1.5 instead"
    assert fake.requests == []


async def test_probe_many_keeps_the_order_and_sends_one_request_per_remote_model(
    fake: FakeProviders, providers: ProviderSet
) -> None:
    keys = [key for key, _, _ in LISTINGS] + ["local-sketch"]
    fake.retire("grok-4-fast")
    fake.script("google.models.get", [Fault.server_error(503)])

    results = await probe_many(
        functools.partial(probe, providers), [_spec(providers, key) for key in keys], NOW, concurrency=3
    )

    assert [r.model_key for r in results] == keys
    assert [r.ok for r in results] == [True, True, False, True, True, True, False, True]
    assert len(fake.requests) == len(LISTINGS)
    assert sorted(call.route for call in fake.requests) == sorted(route for _, route, _ in LISTINGS)
