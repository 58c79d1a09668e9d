"""``GET /health`` (JSON) and ``GET /metrics`` (Prometheus text format) over aiohttp.

Both read one fresh ``StatusReport`` per request from ``report_source``. ``/health`` answers 200 when
``report.can_serve`` and 503 when not, or when the report itself cannot be made (a short JSON error,
never a traceback). ``/metrics`` exposes the report through a custom collector on a per-server
``CollectorRegistry``, so any number of servers (tests) can run in one process.

Every process serves both (gateway, workers, ``all``), so each names itself: ``/health`` says which process
it is (role, shards, id, host), and every metric carries a ``role`` label (all, gateway, worker) and a
``shard`` label: the gateway shards the process holds, as /status shows them ("0-1 of 2"), or ``none`` for a
process that holds no shard (a worker, or a gateway not connected yet). ``none`` rather than an empty value,
which Prometheus would store as no label at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from bot.domain import ProcessBeat
from bot.health.model import HealthState, ModelStatus, StatusReport
from bot.settings import Settings

log = logging.getLogger(__name__)

ReportSource = Callable[[], Awaitable[StatusReport]]
ProcessSource = Callable[[], ProcessBeat]  # the serving process as of now (Runtime.this_process)

REPORT_TIMEOUT_S = 10.0
QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms"))
_MODEL_LABELS = ("model", "provider", "modality")
NO_SHARD = "none"  # the shard label of a process that holds no gateway shard


class HealthServer:
    """Serves /health and /metrics on ``host:port`` (port 0 binds a free port; see ``port`` after start)."""

    def __init__(
        self,
        host: str,
        port: int,
        report_source: ReportSource,
        process: ProcessSource,
        *,
        extra_collectors: Iterable[Collector] = (),
        report_timeout_s: float = REPORT_TIMEOUT_S,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._report_source = report_source
        self._process = process
        self._report_timeout_s = report_timeout_s
        self._report_collector = StatusReportCollector()
        self._labelled = ProcessLabels([self._report_collector, *extra_collectors])
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self._labelled)
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the health server is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        log.info("health endpoints on http://%s:%d/health and /metrics", self.host, self._port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _report(self) -> StatusReport | None:
        try:
            async with asyncio.timeout(self._report_timeout_s):
                return await self._report_source()
        except Exception:
            log.exception("the health report could not be made")
            return None

    async def _health(self, request: web.Request) -> web.Response:
        report = await self._report()
        if report is None:
            return web.json_response(
                {"status": "unavailable", "error": "the health report could not be made"}, status=503
            )
        return web.json_response(health_document(report, self._process()), status=200 if report.can_serve else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        report = await self._report()
        if report is None:
            return web.Response(status=503, text="the health report could not be made\n")
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        # No await between handing over the report and encoding it, so concurrent scrapes cannot mix reports.
        self._report_collector.report = report
        self._labelled.labels = process_labels(self._process())
        body = encoder(self.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})


def build_health_server(
    settings: Settings,
    report_source: ReportSource,
    process: ProcessSource,
    *,
    extra_collectors: Iterable[Collector] = (),
) -> HealthServer | None:
    """The server the settings ask for, or None when ``HEALTH_HTTP_PORT`` is 0 (off)."""
    if settings.health_http_port == 0:
        return None
    return HealthServer(
        settings.health_http_host,
        settings.health_http_port,
        report_source,
        process,
        extra_collectors=extra_collectors,
    )


def health_document(report: StatusReport, process: ProcessBeat) -> dict[str, Any]:
    """The /health JSON body of the report, served by ``process``."""
    by_kind = {
        kind: {"queued": depth.queued, "running": depth.running, "oldest_ready_age_s": depth.oldest_ready_age_s}
        for kind, depth in report.queue_by_kind.items()
    }
    return {
        "status": "ok" if report.can_serve else "unavailable",
        "generated_at": report.generated_at,
        "process": {
            "role": process.role,
            "shards": process.shards,
            "id": process.id,
            "host": process.host,
            "pid": process.pid,
            "worker_slots": process.worker_slots,
        },
        "models": {model.key: _model_document(model) for model in report.models},
        "queue": {"depth": report.queue_depth, "oldest_age_s": report.oldest_queued_age_s, "by_kind": by_kind},
        "database": {"ok": report.database_ok},
        "discord": {"connected": report.discord_connected},
        "workers": {"running": report.workers_running},
    }


def process_labels(process: ProcessBeat) -> dict[str, str]:
    """The labels every metric of ``process`` carries: its role, and its shards or ``none`` (module docstring)."""
    return {"role": process.role, "shard": process.shards or NO_SHARD}


def _model_document(model: ModelStatus) -> dict[str, Any]:
    recent = model.windows.get("10m")
    return {
        "state": model.state.value,
        "available": model.available,
        "provider": model.provider,
        "modality": model.modality,
        "success_rate_10m": recent.success_rate if recent else None,
        "last_error": model.last_error,
        "cooldown_left_s": model.cooldown_left_s,
        "breaker": model.breaker,
        "successor": model.successor,
    }


class ProcessLabels(Collector):
    """The metrics of ``collectors``, each sample labelled with ``labels``: the process serving them."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self.collectors = list(collectors)
        self.labels: dict[str, str] = {}

    def collect(self) -> Iterator[Metric]:
        labels = self.labels
        for collector in self.collectors:
            for metric in collector.collect():
                labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                labelled.samples = [sample._replace(labels={**sample.labels, **labels}) for sample in metric.samples]
                yield labelled


class StatusReportCollector(Collector):
    """Gauges over the latest StatusReport; a value that is unknown (no calls in a window) is left out."""

    def __init__(self) -> None:
        self.report: StatusReport | None = None

    def collect(self) -> Iterator[Metric]:
        report = self.report
        if report is None:
            return
        yield from _model_metrics(report.models)
        yield from _service_metrics(report)


def _model_metrics(models: list[ModelStatus]) -> Iterator[Metric]:
    state = GaugeMetricFamily(
        "storybot_model_state",
        "1 for the model's current health state, 0 for the others",
        labels=[*_MODEL_LABELS, "state"],
    )
    available = GaugeMetricFamily(
        "storybot_model_available", "1 when the router may use the model", labels=_MODEL_LABELS
    )
    cooldown = GaugeMetricFamily(
        "storybot_model_cooldown_seconds", "Seconds the model still cools down", labels=["model"]
    )
    window_labels = ["model", "window"]
    calls = GaugeMetricFamily("storybot_model_calls", "Calls in the window", labels=window_labels)
    success = GaugeMetricFamily("storybot_model_success_ratio", "Share of calls that succeeded", labels=window_labels)
    fallback = GaugeMetricFamily(
        "storybot_model_fallback_ratio", "Share of calls made as a fallback", labels=window_labels
    )
    latency = GaugeMetricFamily(
        "storybot_model_latency_seconds", "Call latency percentiles in the window", labels=[*window_labels, "quantile"]
    )
    errors = GaugeMetricFamily(
        "storybot_model_errors", "Failed calls in the window by error kind", labels=[*window_labels, "kind"]
    )
    for model in models:
        identity = [model.key, model.provider, model.modality]
        for candidate in HealthState:
            state.add_metric([*identity, candidate.value], 1.0 if model.state is candidate else 0.0)
        available.add_metric(identity, 1.0 if model.available else 0.0)
        cooldown.add_metric([model.key], model.cooldown_left_s)
        for window, stats in model.windows.items():
            labels = [model.key, window]
            calls.add_metric(labels, stats.calls)
            _add_known(success, labels, stats.success_rate)
            _add_known(fallback, labels, stats.fallback_rate)
            for quantile, attribute in QUANTILES:
                value = getattr(stats, attribute)
                _add_known(latency, [*labels, quantile], value / 1000 if value is not None else None)
            for kind, count in sorted(stats.errors_by_kind.items()):
                errors.add_metric([*labels, kind], count)
    yield from (state, available, cooldown, calls, success, fallback, latency, errors)


def _service_metrics(report: StatusReport) -> Iterator[Metric]:
    yield GaugeMetricFamily("storybot_queue_depth", "Jobs waiting in the queue", value=report.queue_depth)
    yield GaugeMetricFamily(
        "storybot_queue_oldest_age_seconds",
        "Age of the oldest queued job (0 when none is queued)",
        value=report.oldest_queued_age_s or 0.0,
    )
    jobs = GaugeMetricFamily(
        "storybot_queue_jobs", "Jobs queued (ready or not) and running, by kind", labels=["kind", "status"]
    )
    oldest = GaugeMetricFamily(
        "storybot_queue_oldest_ready_age_seconds",
        "How long the oldest ready queued job of the kind has been due (0 when none is ready)",
        labels=["kind"],
    )
    for kind, depth in sorted(report.queue_by_kind.items()):
        jobs.add_metric([kind, "queued"], depth.queued)
        jobs.add_metric([kind, "running"], depth.running)
        oldest.add_metric([kind], depth.oldest_ready_age_s or 0.0)
    yield from (jobs, oldest)
    yield GaugeMetricFamily("storybot_database_ok", "1 when the database answers", value=float(report.database_ok))
    if report.discord_connected is not None:
        yield GaugeMetricFamily(
            "storybot_discord_connected",
            "1 when the Discord gateway is connected",
            value=float(report.discord_connected),
        )
    yield GaugeMetricFamily("storybot_can_serve", "1 when /health answers 200", value=float(report.can_serve))
    yield GaugeMetricFamily(
        "storybot_report_generated_timestamp_seconds", "When the report was made", value=report.generated_at
    )


def _add_known(family: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None:
        family.add_metric(labels, value)
