"""Wires the pieces together: database, queue, registry, router, providers, media, pipeline, workers.

The CLI and the Discord app both build one Runtime; tests build it with their own settings,
clock and publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import signal
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.clock import Clock, ServerClock, SystemClock
from bot.domain import ProcessBeat
from bot.errors import StorageError
from bot.health.monitor import HealthMonitor
from bot.health.probes import probe
from bot.jobs import JobQueue, Worker, WorkerStats, WorkerSupervisor
from bot.jobs.worker import pid_alive
from bot.media.store import MediaStore
from bot.pipeline.flow import PipelineDeps
from bot.pipeline.handlers import bound_handlers, give_up_recorder
from bot.pipeline.story_jobs import OFFLINE_PUBLISHER, StoryJobs
from bot.providers import ProviderSet
from bot.publish.protocol import Publisher
from bot.publish.storybook import OfflinePublisher
from bot.routing.registry import Registry
from bot.routing.router import ModelRouter
from bot.services.guild_config import GuildSettings
from bot.services.library import Library, sweep_orphaned_media
from bot.services.quotas import Quotas
from bot.services.scene_actions import SceneActions
from bot.services.stories import StoryService
from bot.services.storyboards import Storyboards
from bot.settings import Settings
from storage import processes as process_rows
from storage.engines import database_for

log = logging.getLogger(__name__)

PARTIAL_MAX_AGE_S = 3600.0  # older than any write in progress: a crash left it
STAGED_MAX_AGE_S = 86_400.0
PROCESS_BEAT_S = 5.0
PROCESS_ALIVE_S = 3 * PROCESS_BEAT_S  # a process that missed three beats is taken for gone
PROCESS_FORGOTTEN_S = 86_400.0
GATEWAY = "gateway"
CLOCK_SYNC_S = 600.0  # monotonic clocks drift apart by parts per million: minutes apart costs nothing
CLOCK_DRIFT_WARN_S = 2.0


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        publisher_name: str = OFFLINE_PUBLISHER,
        provider_overrides: dict[str, Any] | None = None,
        out_dir: Path = Path("./out"),
        role: str | None = None,
    ) -> None:
        """``role`` (all, gateway or worker) makes this a serving process: it beats in the processes table
        while open, so /status lists it and a gateway knows a worker will render what it queues. One-shot
        commands (status, list) have none."""
        self.settings = settings
        self.role = role
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.shards: str | None = None  # set by a gateway once connected ("0-1 of 2")
        self.worker_slots = 0  # jobs at once, once this process builds a worker
        self.peers: list[ProcessBeat] = []  # every live process on the database, as of the last beat
        self._started_at = 0.0
        self.db = database_for(settings.database_url_value(), settings.database_path)
        # With PostgreSQL, processes on several hosts store and compare times: they all read the server's clock.
        self._server_clock = ServerClock(self.db.server_time) if self.db.engine == "postgresql" else None
        self.clock: Clock = clock or self._server_clock or SystemClock()
        self._background: list[asyncio.Task[None]] = []  # the clock's sync and the health holds' sharing
        self.registry = Registry.load(settings)
        self.registry.validate_routing(settings.routing)
        self.providers = ProviderSet(settings, self.registry, provider_overrides)
        self.media = MediaStore.from_settings(settings)  # MEDIA_DIR, and with MEDIA_URL object storage too
        self.publisher_name = publisher_name
        self.out_dir = out_dir
        # This process takes only the deliveries its own publisher can make (storage.jobs.publisher_filter).
        self.queue = JobQueue(
            self.db,
            self.clock,
            lease_s=settings.job_lease_s,
            max_attempts=settings.job_max_attempts,
            publishers={publisher_name},
        )
        self.router = ModelRouter(self.registry, settings.routing, self.clock)
        # Records every provider call (router.listeners) and marks retired models unusable (registry hook).
        self.health = HealthMonitor(
            settings=settings,
            db=self.db,
            registry=self.registry,
            router=self.router,
            queue=self.queue,
            clock=self.clock,
            prober=functools.partial(probe, self.providers),
        )
        self.quotas = Quotas(self.db, settings, self.clock)
        self.stories = StoryService(
            self.db, self.queue, self.registry, self.media, settings, self.clock, quotas=self.quotas
        )
        self.jobs = StoryJobs(self.queue, self.registry)
        self.scene_actions = SceneActions(self.db, self.jobs, self.clock, self.quotas)
        self.guild_settings = GuildSettings(self.db, self.registry, settings.routing, self.clock)
        self.library = Library(self.db, self.queue, self.media)
        self.storyboards = Storyboards(self.db, self.queue, settings, self.clock)
        self.supervisor: WorkerSupervisor | None = None

    async def open(self, *, create: bool = True) -> Runtime:
        """Open the database (``create=False``: refuse a missing one), load the health book, sweep leftovers."""
        await self.db.open(create=create)
        try:
            if self._server_clock is not None and self.clock is self._server_clock:
                await self._sync_clock()
                self._background.append(asyncio.create_task(self._keep_clock_synced(), name="storybot-clock-sync"))
            await self.health.load()
            # Breakers and cooldowns of the other processes on this database (storybot work, other hosts).
            self._background.append(asyncio.create_task(self.health.share_holds(), name="storybot-holds"))
            if self.role is not None:
                self._started_at = self.clock.now()
                await self.beat()
                self._background.append(asyncio.create_task(self._keep_beating(), name="storybot-beat"))
            await self.sweep_leftovers()
            await sweep_orphaned_media(self.db, self.media, older_than_s=PARTIAL_MAX_AGE_S, now=self.clock.now())
        except BaseException:
            await self._stop_background()
            await self.db.close()  # an open connection's thread would keep the process alive
            raise
        return self

    async def _sync_clock(self) -> None:
        assert self._server_clock is not None
        drift = await self._server_clock.sync()
        if abs(drift) >= CLOCK_DRIFT_WARN_S:
            log.warning("this host's clock is %.1f s %s the database server's; storybot uses the server's",
                        abs(drift), "ahead of" if drift > 0 else "behind")  # fmt: skip

    async def _keep_clock_synced(self) -> None:
        """Monotonic time runs at its own rate on each host: read the server's clock again now and then."""
        while True:
            await asyncio.sleep(CLOCK_SYNC_S)
            try:
                await self._sync_clock()
            except StorageError as exc:
                log.warning("could not read the database server's clock (%s); will try again", exc)

    def this_process(self) -> ProcessBeat:
        """This serving process as of now: what it beats in the processes table and /health, /metrics name."""
        assert self.role is not None
        return ProcessBeat(self.process_id, self.role, socket.gethostname(), os.getpid(), self.shards,
                           self.worker_slots, self._started_at, self.clock.now())  # fmt: skip

    async def beat(self) -> None:
        """Say this process is alive, and learn which others are (``peers``)."""
        me = self.this_process()
        await process_rows.beat(self.db, me, forget_before=me.beat_at - PROCESS_FORGOTTEN_S)
        self.peers = await process_rows.alive(self.db, me.beat_at - PROCESS_ALIVE_S)

    async def live_processes(self) -> list[ProcessBeat] | None:
        """The processes beating on the database now, read afresh (/status, ``storybot status``); this one's
        row (when it serves) with the shards and slots it has now, which its next beat would store. A serving
        process takes them as its ``peers`` too, so what it shows and whether it takes a story agree. None when
        the database does not answer (the status report says so)."""
        try:
            rows = await process_rows.alive(self.db, self.clock.now() - PROCESS_ALIVE_S)
        except (StorageError, sqlite3.Error) as exc:
            log.warning("could not read the live processes: %s", exc)
            return None
        live = [
            dataclasses.replace(row, shards=self.shards, worker_slots=self.worker_slots)
            if row.id == self.process_id
            else row
            for row in rows
        ]
        if self.role is not None:
            self.peers = live
        return live

    async def _keep_beating(self) -> None:
        while True:
            await asyncio.sleep(PROCESS_BEAT_S)  # real time: a FakeClock's instant sleep would spin
            try:
                await self.beat()
            except StorageError as exc:
                log.warning("could not record this process's heartbeat (%s); will try again", exc)

    async def _stop_background(self) -> None:
        tasks, self._background = self._background, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def sweep_leftovers(self) -> None:
        """Remove half-written files of killed runs and local clips nobody will download any more.

        Call it when this process writes no media (at start, after a burst run): a ``.part`` file of
        this process would be at most in progress, but it has none then.
        """
        await asyncio.to_thread(self._sweep_leftovers)

    def _sweep_leftovers(self) -> None:
        now = self.clock.now()
        partials = self.media.sweep_partials(PARTIAL_MAX_AGE_S, now, alive=pid_alive)
        staged = self.providers.adapter("local").sweep(STAGED_MAX_AGE_S, now)
        if partials or staged:
            log.info("swept %d partial files and %d stale local clips", partials, staged)

    async def close(self) -> None:
        try:
            await self._stop_background()
            if self.role is not None and self.db.is_open:
                with contextlib.suppress(StorageError):
                    await process_rows.forget(self.db, self.process_id)
            await self.health.aclose()  # stops the check loop if it runs, then stores the last call records
        finally:
            await self.providers.aclose()
            await self.db.close()

    async def __aenter__(self) -> Runtime:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def pipeline(self, publisher: Publisher) -> PipelineDeps:
        """What the job handlers of a worker delivering with ``publisher`` get."""
        if publisher.name != self.publisher_name:
            raise ValueError(
                f"this runtime's queue hands out {self.publisher_name!r} deliveries, not {publisher.name!r}"
            )
        return PipelineDeps(
            db=self.db, jobs=self.jobs, registry=self.registry, router=self.router, providers=self.providers,
            media=self.media, settings=self.settings, clock=self.clock, publisher=publisher,
        )  # fmt: skip

    def worker(self, publisher: Publisher | None = None, **overrides: Any) -> Worker:
        """A worker whose deliveries go to ``publisher`` (by default the storybook in ``out_dir``)."""
        deps = self.pipeline(publisher or OfflinePublisher(self.out_dir))
        options: dict[str, Any] = {
            "concurrency": self.settings.worker_concurrency,
            "provider_limit": self.settings.provider_concurrency,
            "user_limit": self.settings.user_concurrency,
            "clock": self.clock,
            "lease_s": self.settings.job_lease_s,
            "on_give_up": give_up_recorder(deps),
        }
        options.update(overrides)
        self.worker_slots = int(options["concurrency"])
        return Worker(self.queue, bound_handlers(deps), **options)

    async def run_until_empty(self, publisher: Publisher | None = None, **overrides: Any) -> WorkerStats:
        return await self.worker(publisher, **overrides).run_until_empty()

    def supervise(self, pool: Worker, **options: float) -> WorkerSupervisor:
        """The supervisor that keeps ``pool`` running for a long-lived process (the bot)."""
        self.supervisor = WorkerSupervisor(pool, **options)
        return self.supervisor

    def accepting_stories(self) -> bool:
        """Whether a new story would be made: a worker will render it, and the database file is still ours.

        A gateway renders nothing: it needs a live worker process (the last heartbeats). Otherwise False while
        this process's supervised pool is down (crashed, waiting to restart) or not started, or once the file
        at DATABASE_PATH was deleted or replaced under us.
        """
        if self.db.file_problem() is not None:
            return False
        if self.role == GATEWAY:
            return any(peer.worker_slots > 0 for peer in self.peers)
        return self.supervisor is not None and self.supervisor.running


# -- SIGTERM stops the work the way Ctrl-C does -----------------------------------------------------


EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, the shell's code for "ended by SIGTERM"


@dataclass
class StopRequest:
    """Which signal asked us to stop, once one has."""

    signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


@contextlib.contextmanager
def on_sigterm(stop: Callable[[], object]) -> Iterator[StopRequest]:
    """Call ``stop()`` on the first SIGTERM while inside; later ones are ignored (we are already stopping).

    Must run inside the event loop's thread. Where the loop cannot take signal handlers (Windows), the
    default behaviour stays and the request never fires.
    """
    loop = asyncio.get_running_loop()
    request = StopRequest()

    def fire() -> None:
        if request.requested:
            log.info("already stopping; SIGTERM ignored")
            return
        request.signal_name = "SIGTERM"
        stop()

    try:
        loop.add_signal_handler(signal.SIGTERM, fire)
        installed = True
    except (NotImplementedError, RuntimeError):
        installed = False
    try:
        yield request
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)
