"""WorkerPool: claims ready jobs within its worker, provider and user limits, and runs them until stopped.

This module holds the pool's main loop: filling free worker slots, waiting for room, idling until
the next delayed job is due, and handing in-flight jobs back when the pool is cancelled. Running
and settling one job is in ``bot.jobs.execution``; leases and queue maintenance in
``bot.jobs.maintenance``; the slots the jobs hold in ``bot.jobs.bookkeeping``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping

from bot.clock import Clock, SystemClock
from bot.domain import GenerationJob, JobKind, JobStatus
from bot.errors import BadJobRow, StorageError
from bot.jobs.bookkeeping import SlotLedger, WorkerStats, job_tag
from bot.jobs.contract import GiveUpHook, Handler, run_to_completion
from bot.jobs.execution import JobExecution
from bot.jobs.maintenance import LIVE_LEDGERS, LIVE_OWNERS, make_owner
from bot.jobs.queue import JobQueue

log = logging.getLogger(__name__)

STORAGE_RETRY_PAUSE_S = 0.25  # after a failed claim (e.g. the database locked longer than busy_timeout)


class WorkerPool(JobExecution):
    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[JobKind, Handler],
        *,
        concurrency: int = 4,
        provider_limit: int = 2,
        user_limit: int = 2,
        clock: Clock | None = None,
        lease_s: float | None = None,
        owner: str | None = None,
        on_give_up: GiveUpHook | None = None,
        backoff_base_s: float = 2.0,
        backoff_cap_s: float = 300.0,
        idle_poll_s: float = 0.5,
        maintenance_every_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if min(concurrency, provider_limit, user_limit) < 1:
            raise ValueError("concurrency, provider_limit and user_limit must be at least 1")
        self.queue = queue
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.provider_limit = provider_limit
        self.user_limit = user_limit
        self.clock = clock or queue.clock
        self.lease_s = lease_s or queue.lease_s
        self.owner = owner or make_owner()
        self.on_give_up = on_give_up
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.idle_poll_s = idle_poll_s
        self.maintenance_every_s = maintenance_every_s or self.lease_s / 2
        self.stats = WorkerStats()
        self._rng = rng or random.Random()
        self._slots = SlotLedger()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._lost: set[str] = set()
        self._handling: set[str] = set()  # jobs whose handler is still running (may be cancelled)
        self._shutting_down = False
        self._next_maintenance = 0.0
        self.running = False  # inside run_until_empty / run_forever: /health and /story new read it

    async def run_until_empty(self) -> WorkerStats:
        """Burst mode: run until no job is queued or running, waiting out delayed jobs."""
        return await self._run(stop=None)

    async def run_forever(self, stop: asyncio.Event) -> WorkerStats:
        """Run until ``stop`` is set, then let in-flight jobs finish. Cancel to hand them back."""
        return await self._run(stop=stop)

    async def _run(self, stop: asyncio.Event | None) -> WorkerStats:
        LIVE_OWNERS.add(self.owner)
        LIVE_LEDGERS.add(self._slots)
        self._shutting_down = False
        self.running = True
        tasks: set[asyncio.Task[None]] = set()
        try:
            await self._maintain_quietly()
            while stop is None or not stop.is_set():
                if self.clock.monotonic() >= self._next_maintenance:
                    await self._maintain_quietly()
                await self._fill(tasks)
                if tasks:
                    done = await self._wait_for_room(tasks)
                    tasks -= done
                    for task in done:
                        if not task.cancelled() and task.exception() is not None:
                            log.error("job task %s crashed", task.get_name(), exc_info=task.exception())
                            self._forget(task)
                    continue
                lost = self.queue.db.file_problem()
                if stop is None and lost is not None:
                    raise StorageError(lost)  # burst mode: nothing more can be done with this file
                if stop is None and await self._drained():
                    break
                await self._idle(stop)
            if tasks:
                await asyncio.gather(*tasks)
        except BaseException:
            await self._hand_back_all(tasks)
            raise
        finally:
            self.running = False
            LIVE_OWNERS.discard(self.owner)
            LIVE_LEDGERS.discard(self._slots)
        return self.stats

    def _forget(self, task: asyncio.Task[None]) -> None:
        """A job task that crashed past its own handling: free its slots; its lease expires and it runs again."""
        for job_id, tracked in list(self._tasks.items()):
            if tracked is task and (job := self._slots.in_flight.get(job_id)) is not None:
                self._untrack(job)

    async def _wait_for_room(self, tasks: set[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
        """Wait until a job ends, a running job frees its provider slot, or idle_poll_s passes; the ended jobs."""
        freed = asyncio.ensure_future(self._slots.room.wait())
        try:
            done, _ = await asyncio.wait({*tasks, freed}, timeout=self.idle_poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
        return {task for task in tasks if task in done}

    async def _fill(self, tasks: set[asyncio.Task[None]]) -> None:
        self._slots.room.clear()  # before claiming: a slot freed from here on wakes the next wait
        while len(tasks) < self.concurrency:
            if self.queue.db.file_problem() is not None:
                return  # the file at DATABASE_PATH is not the one we hold open: claim nothing more
            try:
                job = await run_to_completion(self._claim_and_track())
            except BadJobRow as bad:
                await run_to_completion(self._bury_unreadable(bad))
                continue
            except StorageError as exc:
                log.warning("could not claim a job, will try again: %s", exc)
                await asyncio.sleep(STORAGE_RETRY_PAUSE_S)  # real time: another process holds the lock
                return
            if job is None:
                return
            log.info("%s: claimed", job_tag(job))
            task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
            self._tasks[job.id] = task
            tasks.add(task)

    async def _claim_and_track(self) -> GenerationJob | None:
        job = await self.queue.claim(
            self.owner,
            exclude_providers=self._slots.full_providers(self.provider_limit),
            exclude_users=self._slots.full_users(self.user_limit),
            lease_s=self.lease_s,
        )
        if job is not None:
            self._slots.track(job)  # tracked before anyone can cancel us, so a shutdown hands it back
        return job

    async def _drained(self) -> bool:
        """No job this process could take is queued or running (deliveries left for another publisher aside)."""
        counts = await self.queue.pending()
        return counts[JobStatus.QUEUED] == 0 and counts[JobStatus.RUNNING] == 0

    async def _idle(self, stop: asyncio.Event | None) -> None:
        """Sleep until the next delayed job is due; check often while others hold running jobs."""
        next_due = await self.queue.next_run_after()
        delay = self.idle_poll_s if next_due is None else next_due - self.clock.now()
        if delay > self.idle_poll_s and await self._rebased():
            return  # that due time was a clock's step, not a delay: look again
        if delay <= 0:
            await asyncio.sleep(0)
            return
        counts = await self.queue.pending()
        if isinstance(self.clock, SystemClock) or counts[JobStatus.RUNNING]:
            delay = min(delay, self.idle_poll_s)
        if stop is None:
            await self.clock.sleep(delay)
            return
        sleeper = asyncio.create_task(self.clock.sleep(delay))
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)

    async def _rebased(self) -> bool:
        """Re-base due times a clock ahead of ours wrote, before sleeping until one of them (job_recovery.rebase)."""
        try:
            return await run_to_completion(self.queue.rebase()) > 0
        except StorageError as exc:
            log.warning("could not check the queue's due times, will try again: %s", exc)
            return False

    async def _hand_back_all(self, tasks: set[asyncio.Task[None]]) -> None:
        """On cancellation: stop handlers and put their jobs back without spending an attempt."""
        self._shutting_down = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in list(self._slots.in_flight.values()):
            try:
                handed_back = self.queue.reschedule(job.id, self.owner, delay_s=0, spend_attempt=False)
                if await run_to_completion(handed_back):
                    self.stats.handed_back += 1
                    log.info("%s: handed back to the queue (worker stopping)", job_tag(job))
            except StorageError as exc:
                log.warning("%s: could not hand back (%s); its lease will expire", job_tag(job), exc)
            self._untrack(job)
