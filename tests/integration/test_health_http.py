"""/health and /metrics served by HealthServer on a free port, fetched with aiohttp's client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bot.health.http import HealthServer, build_health_server
from bot.health.model import HealthState, ModelStatus, StatusReport, WindowStats
from bot.settings import load_settings

NOW = 1_800_000_000.0
ServerFactory = Callable[..., Awaitable[HealthServer]]


def _model(key: str, modality: str, state: HealthState = HealthState.UP, **fields: Any) -> ModelStatus:
    available = state in (HealthState.UP, HealthState.DEGRADED)
    return ModelStatus(
        key=key,
        provider=fields.pop("provider", "openai"),
        modality=modality,
        state=state,
        available=available,
        windows=fields.pop("windows", {}),
        **fields,
    )


BUSY = WindowStats(
    calls=40,
    successes=38,
    fallbacks=4,
    p50_ms=1200.0,
    p95_ms=4000.0,
    p99_ms=9000.0,
    errors_by_kind={"transient": 1, "rate_limited": 1},
)
HEALTHY = StatusReport(
    generated_at=NOW,
    models=[
        _model("gpt-5-mini", "text"),
        _model("gpt-image-1.5", "image", windows={"10m": BUSY, "1h": BUSY, "24h": WindowStats()}),
        _model("grok-imagine-image", "image", HealthState.DEGRADED, provider="xai", last_error="rate-limited"),
        _model("dall-e-3", "image", HealthState.RETIRED, successor="gpt-image-1.5"),
        _model("grok-imagine-video", "video", HealthState.UNCONFIGURED, provider="xai"),
    ],
    queue_depth=3,
    oldest_queued_age_s=42.5,
    database_ok=True,
    discord_connected=True,
)


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    servers: list[HealthServer] = []

    async def build(source: StatusReport | Callable[[], Awaitable[StatusReport]], **options: Any) -> HealthServer:
        async def fixed() -> StatusReport:
            assert isinstance(source, StatusReport)
            return source

        server = HealthServer("127.0.0.1", 0, fixed if isinstance(source, StatusReport) else source, **options)
        await server.start()
        servers.append(server)
        return server

    yield build
    for server in servers:
        await server.stop()


async def _get(server: HealthServer, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(server.url + path) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def _health(server: HealthServer) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(server.url + "/health") as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


# --- /health ---------------------------------------------------------------------------------------


async def test_health_is_200_with_every_part_of_the_report(make_server: ServerFactory) -> None:
    server = await make_server(HEALTHY)

    status, body = await _health(server)

    assert status == 200
    assert body["status"] == "ok"
    assert body["generated_at"] == NOW
    assert body["queue"] == {"depth": 3, "oldest_age_s": 42.5}
    assert body["database"] == {"ok": True}
    assert body["discord"] == {"connected": True}
    assert list(body["models"]) == [model.key for model in HEALTHY.models]
    assert body["models"]["gpt-image-1.5"] == {
        "state": "up",
        "available": True,
        "provider": "openai",
        "modality": "image",
        "success_rate_10m": 0.95,
        "last_error": None,
        "cooldown_left_s": 0.0,
        "breaker": "closed",
        "successor": None,
    }
    assert body["models"]["dall-e-3"]["state"] == "retired"
    assert body["models"]["dall-e-3"]["successor"] == "gpt-image-1.5"
    assert body["models"]["grok-imagine-image"]["last_error"] == "rate-limited"
    assert body["models"]["grok-imagine-video"] == body["models"]["grok-imagine-video"] | {
        "state": "unconfigured",
        "available": False,
        "success_rate_10m": None,
    }


def _image_models_down(report: StatusReport) -> StatusReport:
    models = [
        replace(model, state=HealthState.DOWN, available=False) if model.modality == "image" else model
        for model in report.models
    ]
    return replace(report, models=models)


@pytest.mark.parametrize(
    ("report", "why"),
    [
        (replace(HEALTHY, database_ok=False), "database"),
        (replace(HEALTHY, discord_connected=False), "discord"),
        (_image_models_down(HEALTHY), "images"),
        (replace(HEALTHY, workers_running=False), "workers"),
    ],
)
async def test_health_is_503_when_the_bot_cannot_serve(make_server: ServerFactory, report: StatusReport, why: str):
    server = await make_server(report)

    status, body = await _health(server)

    assert status == 503
    assert body["status"] == "unavailable"
    assert set(body) == {"status", "generated_at", "models", "queue", "database", "discord", "workers"}
    if why == "database":
        assert body["database"] == {"ok": False}
    elif why == "discord":
        assert body["discord"] == {"connected": False}
    elif why == "workers":
        assert body["workers"] == {"running": False}
    else:
        assert {m["state"] for m in body["models"].values() if m["modality"] == "image"} == {"down"}


async def test_health_without_discord_is_200(make_server: ServerFactory) -> None:
    server = await make_server(replace(HEALTHY, discord_connected=None))

    status, body = await _health(server)

    assert (status, body["discord"]) == (200, {"connected": None})


async def test_a_failing_report_is_a_short_503_without_a_traceback(make_server: ServerFactory) -> None:
    async def broken() -> StatusReport:
        raise RuntimeError("database is locked at /secret/path")

    server = await make_server(broken)

    status, body = await _health(server)
    assert (status, body) == (503, {"status": "unavailable", "error": "the health report could not be made"})
    status, _, text = await _get(server, "/metrics")
    assert status == 503
    assert "Traceback" not in text and "secret" not in text


async def test_a_report_that_never_comes_is_503(make_server: ServerFactory) -> None:
    never = asyncio.Event()

    async def stuck() -> StatusReport:
        await never.wait()
        return HEALTHY

    server = await make_server(stuck, report_timeout_s=0.2)

    status, body = await _health(server)

    assert (status, body["status"]) == (503, "unavailable")


async def test_each_request_reads_a_fresh_report(make_server: ServerFactory) -> None:
    reports = iter([HEALTHY, replace(HEALTHY, database_ok=False), HEALTHY])

    async def next_report() -> StatusReport:
        return next(reports)

    server = await make_server(next_report)

    assert [(await _health(server))[0] for _ in range(3)] == [200, 503, 200]


async def test_other_paths_are_404(make_server: ServerFactory) -> None:
    server = await make_server(HEALTHY)

    status, _, _ = await _get(server, "/nope")

    assert status == 404


# --- /metrics ----------------------------------------------------------------------------------------


async def test_metrics_parse_back_with_the_report_values(make_server: ServerFactory) -> None:
    server = await make_server(HEALTHY)

    status, content_type, text = await _get(server, "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain")
    samples = _samples(text)

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    image = {"model": "gpt-image-1.5", "provider": "openai", "modality": "image"}
    assert value("storybot_model_state", **image, state="up") == 1.0
    assert value("storybot_model_state", **image, state="down") == 0.0
    assert value("storybot_model_available", **image) == 1.0
    assert value("storybot_model_state", model="dall-e-3", provider="openai", modality="image", state="retired") == 1
    assert value("storybot_model_available", model="dall-e-3", provider="openai", modality="image") == 0.0
    recent = {"model": "gpt-image-1.5", "window": "10m"}
    assert value("storybot_model_calls", **recent) == 40
    assert value("storybot_model_success_ratio", **recent) == pytest.approx(0.95)
    assert value("storybot_model_fallback_ratio", **recent) == pytest.approx(0.1)
    assert value("storybot_model_latency_seconds", **recent, quantile="0.5") == pytest.approx(1.2)
    assert value("storybot_model_latency_seconds", **recent, quantile="0.95") == pytest.approx(4.0)
    assert value("storybot_model_latency_seconds", **recent, quantile="0.99") == pytest.approx(9.0)
    assert value("storybot_model_errors", **recent, kind="transient") == 1
    assert value("storybot_model_errors", **recent, kind="rate_limited") == 1
    empty = {"model": "gpt-image-1.5", "window": "24h"}
    assert value("storybot_model_calls", **empty) == 0
    assert value("storybot_model_success_ratio", **empty) is None  # no calls: no sample, not a made-up 0
    assert value("storybot_queue_depth") == 3
    assert value("storybot_queue_oldest_age_seconds") == 42.5
    assert value("storybot_database_ok") == 1
    assert value("storybot_discord_connected") == 1
    assert value("storybot_can_serve") == 1
    assert value("storybot_report_generated_timestamp_seconds") == NOW


async def test_metrics_follow_the_latest_report(make_server: ServerFactory) -> None:
    reports = iter([HEALTHY, _image_models_down(replace(HEALTHY, queue_depth=9, discord_connected=None))])

    async def next_report() -> StatusReport:
        return next(reports)

    server = await make_server(next_report)
    await _get(server, "/metrics")

    _, _, text = await _get(server, "/metrics")

    names = {name for name, _ in _samples(text)}
    samples = _samples(text)
    assert samples[("storybot_queue_depth", ())] == 9
    assert samples[("storybot_can_serve", ())] == 0
    assert "storybot_discord_connected" not in names
    key = (("modality", "image"), ("model", "gpt-image-1.5"), ("provider", "openai"), ("state", "down"))
    assert samples[("storybot_model_state", key)] == 1


class _Uptime(Collector):
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("storybot_uptime_seconds", "Seconds since start", value=12.0)


async def test_servers_keep_their_own_registries_and_extra_collectors(make_server: ServerFactory) -> None:
    first = await make_server(HEALTHY, extra_collectors=[_Uptime()])
    second = await make_server(replace(HEALTHY, queue_depth=7))

    _, _, first_text = await _get(first, "/metrics")
    _, _, second_text = await _get(second, "/metrics")

    assert _samples(first_text)[("storybot_uptime_seconds", ())] == 12.0
    assert ("storybot_uptime_seconds", ()) not in _samples(second_text)
    assert _samples(first_text)[("storybot_queue_depth", ())] == 3
    assert _samples(second_text)[("storybot_queue_depth", ())] == 7


# --- lifecycle -----------------------------------------------------------------------------------------


def test_port_zero_in_the_settings_turns_the_server_off() -> None:
    async def source() -> StatusReport:
        return HEALTHY

    assert build_health_server(load_settings(health_http_port=0), source) is None
    server = build_health_server(load_settings(health_http_host="127.0.0.1", health_http_port=18080), source)
    assert server is not None and server.host == "127.0.0.1"


async def test_stop_closes_the_port(make_server: ServerFactory) -> None:
    server = await make_server(HEALTHY)
    url = server.url
    assert (await _get(server, "/health"))[0] == 200

    await server.stop()

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/health")
