"""HealthMonitor: ties the book, the recorder, the checks, the aggregation and the alerts together.

One ``tick`` checks availability when due (every HEALTH_CHECK_INTERVAL_S, each model's result cached
for HEALTH_CACHE_S, with the provider's model listing, never a generation), aggregates and prunes the
metrics when due (every METRICS_AGGREGATE_S), writes what changed, and evaluates the alerts. ``run``
ticks until stopped; tests call ``tick`` with a FakeClock instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from bot.clock import Clock
from bot.errors import PLAIN_WORDS, ErrorKind, ProviderError, StorageError
from bot.health import metrics
from bot.health.alerts import AlertManager, LoggingNotifier, Notifier, primary_models
from bot.health.book import HealthBook
from bot.health.holds import SharedHolds
from bot.health.model import HealthState, Probe, StatusReport
from bot.health.probes import Prober, probe_many
from bot.health.recorder import CallRecorder
from bot.health.report import build_report
from bot.health.rules import RECENT_S, Thresholds
from bot.jobs import JobQueue
from bot.routing.registry import ModelSpec, Registry
from bot.routing.router import ModelRouter
from bot.settings import Settings
from storage import health as health_rows
from storage.db import Database

HOLDS_SYNC_S = 2.0  # how soon one process's open breaker or cooldown reaches the others

log = logging.getLogger(__name__)


class HealthMonitor:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        registry: Registry,
        router: ModelRouter,
        queue: JobQueue,
        clock: Clock,
        prober: Prober | None = None,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self.settings = settings
        self.db = db
        self.registry = registry
        self.router = router
        self.queue = queue
        self.clock = clock
        self.prober = prober
        self.thresholds = Thresholds.from_settings(settings)
        self.book = HealthBook(registry, clock, self.thresholds, breakers=router.breakers, cooldowns=router.cooldowns)
        self.recorder = CallRecorder(db, self.book, clock)
        self.holds = SharedHolds(db, router.breakers, router.cooldowns, clock)
        self.alerts = AlertManager(db, [LoggingNotifier(), *notifiers], self.thresholds)
        self.discord_connected: Callable[[], bool | None] = lambda: None
        self.workers_running: Callable[[], bool | None] = lambda: None
        self.probes_sent = 0
        self._next_check = 0.0
        self._next_aggregate = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        router.listeners.append(self.recorder)
        registry.set_health_hook(self.book.verdict)

    async def load(self) -> None:
        """What the last run knew: health rows and the last 10 minutes of calls."""
        now = self.clock.now()
        entries = await health_rows.load_health(self.db)
        self.book.load(entries, await health_rows.calls_since(self.db, now - RECENT_S))

    # checks ----------------------------------------------------------------------------------------------------

    def probe_targets(self) -> list[ModelSpec]:
        """Models worth a check: configured, not local, not retired in the catalogue, and in a modality whose
        routing keeps MODEL_AVAILABILITY_CHECK on."""
        targets = []
        for spec in self.registry.specs():
            config = self.settings.routing.get(spec.modality)
            if spec.provider == "local" or (config is not None and not config.model_availability_check):
                continue
            state = self.registry.availability(spec.key, consult_health=False).state
            if state not in (HealthState.UNCONFIGURED, HealthState.RETIRED):
                targets.append(spec)
        return targets

    def _fresh(self, key: str, now: float) -> bool:
        """A check (or a successful real call) within HEALTH_CACHE_S makes another check pointless."""
        entry = self.book.get(key)
        cache = self.settings.health_cache_s
        return any(at is not None and now - at < cache for at in (entry.last_check, entry.last_success))

    async def check(self) -> int:
        """Check every target whose cached result has expired; returns how many checks were sent."""
        if self.prober is None:
            return 0
        now = self.clock.now()
        due = [spec for spec in self.probe_targets() if not self._fresh(spec.key, now)]
        for probe in await probe_many(self._probe, due, now):
            self.book.on_probe(probe)
        self.probes_sent += len(due)
        return len(due)

    async def _probe(self, spec: ModelSpec, now: float) -> Probe:
        assert self.prober is not None
        try:
            return await self.prober(spec, now)
        except ProviderError as exc:
            detail = PLAIN_WORDS[exc.kind].format(model=spec.key)
            return Probe(spec.key, ok=False, checked_at=now, retired=exc.kind is ErrorKind.MODEL_RETIRED,
                         error_kind=exc.kind, detail=detail)  # fmt: skip
        except Exception as exc:  # a broken check must not stop the loop
            log.exception("the availability check of %s failed", spec.key)
            detail = f"the availability check of {spec.key} failed ({type(exc).__name__})"
            return Probe(spec.key, ok=False, checked_at=now, error_kind=ErrorKind.TRANSIENT, detail=detail)

    # the loop --------------------------------------------------------------------------------------------------

    async def report(self, *, live: bool = True) -> StatusReport:
        """A fresh StatusReport. ``live``: re-derive the states from this process's breakers and cooldowns
        first; ``storybot status`` (another process) passes False to show what the running bot stored."""
        if live:
            self.book.refresh_all(spec.key for spec in self.registry.specs())
            await self.recorder.flush()  # the windows count every call made so far
        now = self.clock.now()
        return await build_report(
            db=self.db,
            registry=self.registry,
            book=self.book,
            queue=self.queue,
            routing=self.settings.routing,
            now=now,
            discord_connected=self.discord_connected(),
            workers_running=self.workers_running(),
        )

    async def tick(self) -> StatusReport:
        now = self.clock.now()
        if now >= self._next_check:
            self._next_check = now + self.settings.health_check_interval_s
            await self.check()
        if now >= self._next_aggregate:
            self._next_aggregate = now + self.settings.metrics_aggregate_s
            await self.aggregate()
        report = await self.report()
        await self.alerts.evaluate(report, primary_models(self.registry, self.settings.routing))
        return report

    async def aggregate(self) -> None:
        folded = await metrics.aggregate(self.db)
        pruned = await metrics.prune(self.db, self.clock.now(), self.settings.metrics_retention_days)
        if folded or pruned:
            log.debug("metrics: %d calls aggregated, %d old calls pruned", folded, pruned)

    async def run(self) -> None:
        """Tick until ``stop()``; a failing tick is logged and the next one runs on time."""
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("the health check loop failed; trying again at the next interval")
            wait = max(min(self._next_check, self._next_aggregate) - self.clock.now(), 1.0)
            # Real time, not clock.sleep: a FakeClock's instant sleep would spin this loop.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)

    async def share_holds(self, every_s: float = HOLDS_SYNC_S) -> None:
        """Publish and adopt open breakers and cooldowns (bot/health/holds.py) every ``every_s``, until cancelled."""
        while True:
            try:
                await self.holds.sync()
            except StorageError as exc:
                log.warning("could not share model holds with other processes (%s); will try again", exc)
            await asyncio.sleep(every_s)  # real time, as in run()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stop.clear()
            self._task = asyncio.create_task(self.run(), name="storybot-health")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def aclose(self) -> None:
        await self.stop()
        await self.recorder.aclose()
