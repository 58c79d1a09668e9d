"""/health and /metrics served by HealthServer on a free port, fetched with aiohttp's client: fixed reports, and
the real report of a worker's or a gateway's Runtime on either engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bot.clock import FakeClock
from bot.domain import JobKind, JobStatus, ProcessBeat
from bot.health.http import HealthServer, build_health_server
from bot.health.model import HealthState, ModelStatus, StatusReport, WindowStats
from bot.runtime import Runtime
from bot.settings import load_settings

NOW = 1_800_000_000.0
ServerFactory = Callable[..., Awaitable[HealthServer]]
WORKER = ProcessBeat("box-b:4242:a1b2c3", "worker", "box-b", 4242, None, 4, NOW - 600, NOW - 1)
GATEWAY = ProcessBeat("box-a:4141:d4e5f6", "gateway", "box-a", 4141, "0-1 of 2", 0, NOW - 900, NOW - 2)
WORKER_LABELS = {"role": "worker", "shard": "none"}


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

    async def build(
        source: StatusReport | Callable[[], Awaitable[StatusReport]],
        process: ProcessBeat | Callable[[], ProcessBeat] = WORKER,
        **options: Any,
    ) -> HealthServer:
        async def fixed() -> StatusReport:
            assert isinstance(source, StatusReport)
            return source

        report_source = fixed if isinstance(source, StatusReport) else source
        process_source = process if callable(process) else lambda: process
        server = HealthServer("127.0.0.1", 0, report_source, process_source, **options)
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


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(samples: Samples, name: str, process: dict[str, str] = WORKER_LABELS, /, **labels: str) -> float | None:
    """The sample of ``name`` with ``labels``, served by the process with ``process`` labels (role, shard)."""
    return samples.get((name, tuple(sorted({**labels, **process}.items()))))


# --- /health ---------------------------------------------------------------------------------------


async def test_health_is_200_with_every_part_of_the_report(make_server: ServerFactory) -> None:
    server = await make_server(HEALTHY)

    status, body = await _health(server)

    assert status == 200
    assert body["status"] == "ok"
    assert body["generated_at"] == NOW
    assert body["process"] == {
        "role": "worker", "shards": None, "id": "box-b:4242:a1b2c3", "host": "box-b", "pid": 4242, "worker_slots": 4,
    }  # fmt: skip
    assert body["queue"] == {"depth": 3, "oldest_age_s": 42.5, "by_kind": {}}
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
    assert set(body) == {"status", "generated_at", "process", "models", "queue", "database", "discord", "workers"}
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
        return _sample(samples, name, **labels)

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
    assert _sample(samples, "storybot_queue_depth") == 9
    assert _sample(samples, "storybot_can_serve") == 0
    assert "storybot_discord_connected" not in names
    image = {"model": "gpt-image-1.5", "provider": "openai", "modality": "image"}
    assert _sample(samples, "storybot_model_state", **image, state="down") == 1


class _Uptime(Collector):
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("storybot_uptime_seconds", "Seconds since start", value=12.0)


async def test_servers_keep_their_own_registries_and_extra_collectors(make_server: ServerFactory) -> None:
    first = await make_server(HEALTHY, extra_collectors=[_Uptime()])
    second = await make_server(replace(HEALTHY, queue_depth=7))

    _, _, first_text = await _get(first, "/metrics")
    _, _, second_text = await _get(second, "/metrics")

    assert _sample(_samples(first_text), "storybot_uptime_seconds") == 12.0  # labelled with the process too
    assert "storybot_uptime_seconds" not in {name for name, _ in _samples(second_text)}
    assert _sample(_samples(first_text), "storybot_queue_depth") == 3
    assert _sample(_samples(second_text), "storybot_queue_depth") == 7


@pytest.mark.parametrize(("process", "shard"), [(WORKER, "none"), (GATEWAY, "0-1 of 2")], ids=["worker", "gateway"])
async def test_health_and_every_metric_name_the_serving_process(
    make_server: ServerFactory, process: ProcessBeat, shard: str
) -> None:
    server = await make_server(HEALTHY, process, extra_collectors=[_Uptime()])

    _, body = await _health(server)
    _, _, text = await _get(server, "/metrics")

    assert body["process"] == {
        "role": process.role, "shards": process.shards, "id": process.id, "host": process.host, "pid": process.pid,
        "worker_slots": process.worker_slots,
    }  # fmt: skip
    samples = list(_samples(text))
    assert len(samples) > 50
    assert {(dict(labels)["role"], dict(labels)["shard"]) for _, labels in samples} == {(process.role, shard)}


async def test_a_gateway_names_its_shards_once_it_holds_them(make_server: ServerFactory) -> None:
    current = [replace(GATEWAY, shards=None)]  # started, not connected yet
    server = await make_server(HEALTHY, lambda: current[0])

    async def named() -> tuple[str | None, float | None]:
        _, body = await _health(server)
        _, _, text = await _get(server, "/metrics")
        labels = {"role": "gateway", "shard": body["process"]["shards"] or "none"}
        return body["process"]["shards"], _sample(_samples(text), "storybot_can_serve", labels)

    assert await named() == (None, 1.0)
    current[0] = GATEWAY  # on_ready: shards 0 and 1 of 2
    assert await named() == ("0-1 of 2", 1.0)


@pytest.mark.parametrize(("role", "shards"), [("worker", None), ("gateway", "0-1 of 2")])
async def test_a_runtimes_queue_by_kind_reaches_health_and_metrics(
    database_url: str | None, tmp_path: Path, role: str, shards: str | None
) -> None:
    """Jobs of two kinds on either engine: queued (ready or not) and running per kind, and how long the oldest
    ready one of each kind has been due, in /metrics and /health, labelled with the real Runtime's role and shard."""
    settings = load_settings(database_url=database_url, database_path=tmp_path / "storybot.db",
                             media_dir=tmp_path / "media", health_http_port=0)  # fmt: skip
    clock = FakeClock(NOW)
    async with Runtime(settings, clock=clock, role=role) as runtime:
        runtime.shards = shards
        queue = runtime.queue
        await queue.enqueue(JobKind.WRITE_STORY, {})
        written = await queue.claim("w1")
        assert written is not None and await queue.finish(written.id, "w1", status=JobStatus.SUCCEEDED)  # not counted
        await queue.enqueue(JobKind.DELIVER, {"n": 1})
        assert await queue.claim("w1") is not None  # running
        await queue.enqueue(JobKind.RENDER_IMAGE, {"n": 1})  # due at NOW: the oldest ready image
        clock.advance(20)
        await queue.enqueue(JobKind.RENDER_IMAGE, {"n": 2})
        await queue.enqueue(JobKind.RENDER_IMAGE, {"n": 3}, delay_s=600)  # queued, not ready
        await queue.enqueue(JobKind.DELIVER, {"n": 2})  # due at NOW + 20
        clock.advance(10)
        server = HealthServer("127.0.0.1", 0, runtime.health.report, runtime.this_process)
        await server.start()
        try:
            _, body = await _health(server)
            _, _, text = await _get(server, "/metrics")
        finally:
            await server.stop()

    assert body["process"]["role"] == role and body["process"]["shards"] == shards
    assert body["process"]["id"] == runtime.process_id
    assert body["queue"]["depth"] == 4 and body["queue"]["oldest_age_s"] == 30.0
    assert body["queue"]["by_kind"] == {
        "write_story": {"queued": 0, "running": 0, "oldest_ready_age_s": None},
        "render_image": {"queued": 3, "running": 0, "oldest_ready_age_s": 30.0},
        "render_video": {"queued": 0, "running": 0, "oldest_ready_age_s": None},
        "deliver": {"queued": 1, "running": 1, "oldest_ready_age_s": 10.0},
    }
    samples = _samples(text)
    process = {"role": role, "shard": shards or "none"}

    def value(name: str, **labels: str) -> float | None:
        return _sample(samples, name, process, **labels)

    assert value("storybot_queue_jobs", kind="render_image", status="queued") == 3
    assert value("storybot_queue_jobs", kind="render_image", status="running") == 0
    assert value("storybot_queue_jobs", kind="deliver", status="queued") == 1
    assert value("storybot_queue_jobs", kind="deliver", status="running") == 1
    assert value("storybot_queue_jobs", kind="write_story", status="queued") == 0  # every kind, zeros too
    assert value("storybot_queue_oldest_ready_age_seconds", kind="render_image") == 30.0
    assert value("storybot_queue_oldest_ready_age_seconds", kind="deliver") == 10.0
    assert value("storybot_queue_oldest_ready_age_seconds", kind="render_video") == 0.0
    assert value("storybot_queue_depth") == 4
    assert value("storybot_queue_oldest_age_seconds") == 30.0


# --- lifecycle -----------------------------------------------------------------------------------------


def test_port_zero_in_the_settings_turns_the_server_off() -> None:
    async def source() -> StatusReport:
        return HEALTHY

    assert build_health_server(load_settings(health_http_port=0), source, lambda: WORKER) is None
    settings = load_settings(health_http_host="127.0.0.1", health_http_port=18080)
    server = build_health_server(settings, source, lambda: WORKER)
    assert server is not None and server.host == "127.0.0.1"


async def test_stop_closes_the_port(make_server: ServerFactory) -> None:
    server = await make_server(HEALTHY)
    url = server.url
    assert (await _get(server, "/health"))[0] == 200

    await server.stop()

    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(url + "/health")
