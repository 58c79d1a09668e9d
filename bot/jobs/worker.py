"""WorkerPool: claims ready jobs, runs their handlers under a lease, and settles them durably.

Settling (success with its ``on_commit``, failure or death with ``on_give_up``) is one
transaction guarded by the lease: if the lease was lost the transaction rolls back. The
heartbeat runs on real time (``asyncio.sleep``) while lease expiry is computed from the injected
clock: leases guard against real time passing, and a fake clock must not make the heartbeat spin.

A job holds a slot of its provider from its claim until it ends, or until its handler calls
``ctx.provider_done()``: then the slot goes to the next job of that provider while this one
stores its results (it still holds its worker slot and its user's slot until it is settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections import Counter
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass

from bot.clock import Clock, SystemClock
from bot.domain import GenerationJob, JobKind, JobStatus
from bot.errors import ProviderError, StorageError, StorybotError
from bot.jobs.contract import (
    GiveUpHook,
    Handler,
    JobContext,
    JobOutcome,
    LeaseLost,
    PermanentFailure,
    Reschedule,
    run_to_completion,
)
from bot.jobs.queue import JobQueue
from storage import jobs as job_rows
from storage.db import Conn

log = logging.getLogger(__name__)

# Owners of the pools running in this process: release_orphans must not take their jobs even
# though they share our pid (in a container the pid of a restarted bot is often the same).
_LIVE_OWNERS: set[str] = set()

STORAGE_RETRY_PAUSE_S = 0.25  # after a failed claim (e.g. the database locked longer than busy_timeout)


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _other_process_alive(pid: int) -> bool:
    # Our own pid with an owner that is not one of our live pools is a previous incarnation.
    return pid != os.getpid() and pid_alive(pid)


def _tag(job: GenerationJob) -> str:
    return f"job {job.id} kind={job.kind.value} attempt={job.attempts}/{job.max_attempts}"


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        text = exc.plain()
    elif isinstance(exc, StorybotError | PermanentFailure):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:500]


class _HookFailed(Exception):
    """on_commit raised; the transaction was rolled back and the cause is the hook's error."""


@dataclass
class WorkerStats:
    succeeded: int = 0
    failed: int = 0
    dead: int = 0
    retried: int = 0
    rescheduled: int = 0
    lease_lost: int = 0
    handed_back: int = 0  # in-flight jobs put back in the queue when the pool was stopped


class WorkerPool:
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
        self._in_flight: dict[str, GenerationJob] = {}  # claimed by us and not yet settled
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._by_provider: Counter[str] = Counter()
        self._provider_freed: set[str] = set()  # in flight, but done with their provider (ctx.provider_done())
        self._room = asyncio.Event()  # set when a provider slot frees before its job ends
        self._by_user: Counter[int] = Counter()
        self._lost: set[str] = set()
        self._handling: set[str] = set()  # jobs whose handler is still running (may be cancelled)
        self._shutting_down = False
        self._next_maintenance = 0.0

    # --- the loop ------------------------------------------------------------------------------

    async def run_until_empty(self) -> WorkerStats:
        """Burst mode: run until no job is queued or running, waiting out delayed jobs."""
        return await self._run(stop=None)

    async def run_forever(self, stop: asyncio.Event) -> WorkerStats:
        """Run until ``stop`` is set, then let in-flight jobs finish. Cancel to hand them back."""
        return await self._run(stop=stop)

    async def _run(self, stop: asyncio.Event | None) -> WorkerStats:
        _LIVE_OWNERS.add(self.owner)
        self._shutting_down = False
        tasks: set[asyncio.Task[None]] = set()
        try:
            await self._maintain_quietly()
            while stop is None or not stop.is_set():
                if self.clock.now() >= self._next_maintenance:
                    await self._maintain_quietly()
                await self._fill(tasks)
                if tasks:
                    done = await self._wait_for_room(tasks)
                    tasks -= done
                    for task in done:
                        if not task.cancelled() and task.exception() is not None:
                            log.error("job task %s crashed", task.get_name(), exc_info=task.exception())
                    continue
                if stop is None and await self._drained():
                    break
                await self._idle(stop)
            if tasks:
                await asyncio.gather(*tasks)
        except BaseException:
            await self._hand_back_all(tasks)
            raise
        finally:
            _LIVE_OWNERS.discard(self.owner)
        return self.stats

    async def _wait_for_room(self, tasks: set[asyncio.Task[None]]) -> set[asyncio.Task[None]]:
        """Wait until a job ends, a running job frees its provider slot, or idle_poll_s passes; the ended jobs."""
        freed = asyncio.ensure_future(self._room.wait())
        try:
            done, _ = await asyncio.wait({*tasks, freed}, timeout=self.idle_poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            freed.cancel()
        return {task for task in tasks if task in done}

    async def _fill(self, tasks: set[asyncio.Task[None]]) -> None:
        self._room.clear()  # before claiming: a slot freed from here on wakes the next wait
        while len(tasks) < self.concurrency:
            try:
                job = await run_to_completion(self._claim_and_track())
            except StorageError as exc:
                log.warning("could not claim a job, will try again: %s", exc)
                await asyncio.sleep(STORAGE_RETRY_PAUSE_S)  # real time: another process holds the lock
                return
            if job is None:
                return
            log.info("%s: claimed", _tag(job))
            task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
            self._tasks[job.id] = task
            tasks.add(task)

    async def _claim_and_track(self) -> GenerationJob | None:
        job = await self.queue.claim(
            self.owner,
            exclude_providers=[p for p, n in self._by_provider.items() if n >= self.provider_limit],
            exclude_users=[u for u, n in self._by_user.items() if n >= self.user_limit],
            lease_s=self.lease_s,
        )
        if job is not None:
            self._track(job)  # tracked before anyone can cancel us, so a shutdown hands it back
        return job

    async def _drained(self) -> bool:
        counts = await self.queue.counts()
        return counts[JobStatus.QUEUED] == 0 and counts[JobStatus.RUNNING] == 0

    async def _idle(self, stop: asyncio.Event | None) -> None:
        """Sleep until the next delayed job is due; check often while others hold running jobs."""
        next_due = await self.queue.next_run_after()
        delay = self.idle_poll_s if next_due is None else next_due - self.clock.now()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        counts = await self.queue.counts()
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

    async def _hand_back_all(self, tasks: set[asyncio.Task[None]]) -> None:
        """On cancellation: stop handlers and put their jobs back without spending an attempt."""
        self._shutting_down = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for job in list(self._in_flight.values()):
            try:
                handed_back = self.queue.reschedule(job.id, self.owner, delay_s=0, spend_attempt=False)
                if await run_to_completion(handed_back):
                    self.stats.handed_back += 1
                    log.info("%s: handed back to the queue (worker stopping)", _tag(job))
            except StorageError as exc:
                log.warning("%s: could not hand back (%s); its lease will expire", _tag(job), exc)
            self._untrack(job)

    # --- bookkeeping ---------------------------------------------------------------------------

    def _track(self, job: GenerationJob) -> None:
        self._in_flight[job.id] = job
        if job.provider:
            self._by_provider[job.provider] += 1
        if job.user_id is not None:
            self._by_user[job.user_id] += 1

    def _untrack(self, job: GenerationJob) -> None:
        self._tasks.pop(job.id, None)
        if job.id not in self._in_flight:
            return
        self._free_provider(job)
        del self._in_flight[job.id]
        self._provider_freed.discard(job.id)
        if job.user_id is not None:
            self._by_user[job.user_id] -= 1
            if self._by_user[job.user_id] <= 0:
                del self._by_user[job.user_id]
        self._lost.discard(job.id)

    def _free_provider(self, job: GenerationJob) -> None:
        """Give back the job's provider slot, once (at provider_done() or when the job is untracked)."""
        if not job.provider or job.id in self._provider_freed or job.id not in self._in_flight:
            return
        self._provider_freed.add(job.id)
        self._by_provider[job.provider] -= 1
        if self._by_provider[job.provider] <= 0:
            del self._by_provider[job.provider]

    def _provider_done(self, job: GenerationJob) -> None:
        self._free_provider(job)
        self._room.set()

    # --- leases and recovery -------------------------------------------------------------------

    async def _extend_lease(self, job: GenerationJob) -> None:
        if await run_to_completion(self.queue.heartbeat(job.id, self.owner, lease_s=self.lease_s)):
            return
        log.warning("%s: lease lost (reaped, cancelled or taken); stopping its handler", _tag(job))
        self._lost.add(job.id)
        task = self._tasks.get(job.id)
        if task is not None and job.id in self._handling:
            task.cancel()

    async def _keep_lease(self, job: GenerationJob) -> None:
        while job.id not in self._lost:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self._extend_lease(job)
            except StorageError as exc:
                log.warning("%s: heartbeat failed: %s", _tag(job), exc)

    async def _maintain(self) -> None:
        await run_to_completion(self._reap_and_release())
        self._next_maintenance = self.clock.now() + self.maintenance_every_s

    async def _reap_and_release(self) -> None:
        # Our own running jobs first, so our reaper never takes a job we are still running.
        for job in list(self._in_flight.values()):
            await self._extend_lease(job)
        async with self.queue.db.transaction() as conn:
            dead = await self.queue.reap(conn=conn)
            dead += await self.queue.release_orphans(
                socket.gethostname(), _other_process_alive, keep_owners=frozenset(_LIVE_OWNERS), conn=conn
            )
            for job in dead:
                self.stats.dead += 1
                log.error("%s: dead (%s)", _tag(job), job.last_error)
                await self._call_give_up(job, job.last_error or "dead", conn)

    async def _maintain_quietly(self) -> None:
        try:
            await self._maintain()
        except StorageError as exc:
            log.warning("queue maintenance failed, will try again: %s", exc)
            self._next_maintenance = self.clock.now() + min(self.maintenance_every_s, self.idle_poll_s)

    async def _call_give_up(self, job: GenerationJob, error_text: str, conn: Conn) -> None:
        if self.on_give_up is None:
            return
        try:
            async with job_rows.savepoint(conn):
                await self.on_give_up(job, error_text, conn)
        except Exception:
            # The job stays failed/dead (a broken hook must not make it loop forever).
            log.exception("%s: on_give_up failed; its writes were rolled back", _tag(job))

    # --- running one job -----------------------------------------------------------------------

    async def _execute(self, job: GenerationJob) -> None:
        try:
            outcome = await self._call_handler(job)
        except asyncio.CancelledError:
            if job.id not in self._lost or self._shutting_down:
                raise  # shutdown: _hand_back_all puts the job back
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # we cancelled our own handler because its lease was lost
            self.stats.lease_lost += 1
        except LeaseLost as exc:
            log.warning("%s: %s", _tag(job), exc)
            self.stats.lease_lost += 1
        except Reschedule as signal:
            await self._settle(job, self._reschedule(job, signal))
        except PermanentFailure as exc:
            await self._settle(job, self._give_up(job, JobStatus.FAILED, describe_error(exc)))
        except Exception as exc:
            await self._settle(job, self._retry_or_bury(job, exc))
        else:
            await self._settle(job, self._succeed(job, outcome or JobOutcome()))
        if not self._shutting_down:
            self._untrack(job)

    async def _call_handler(self, job: GenerationJob) -> JobOutcome | None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            raise PermanentFailure(f"this worker has no handler for {job.kind.value} jobs")
        ctx = JobContext(
            job=job, queue=self.queue, clock=self.clock, owner=self.owner,
            release_provider=lambda: self._provider_done(job),
        )  # fmt: skip
        keeper = asyncio.create_task(self._keep_lease(job))
        self._handling.add(job.id)
        try:
            return await handler(job, ctx)
        finally:
            self._handling.discard(job.id)
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _settle(self, job: GenerationJob, step: Awaitable[None]) -> None:
        try:
            await run_to_completion(step)
        except LeaseLost:
            log.warning("%s: lease lost before it could be settled; leaving it to its new owner", _tag(job))
            self.stats.lease_lost += 1
        except Exception:
            log.exception("%s: could not be settled; its lease will expire and it will run again", _tag(job))

    async def _succeed(self, job: GenerationJob, outcome: JobOutcome) -> None:
        try:
            async with self.queue.db.transaction() as conn:
                finished = await self.queue.finish(
                    job.id, self.owner, status=JobStatus.SUCCEEDED, result=outcome.result,
                    warnings=outcome.warnings or None, fallback=outcome.fallback or None, conn=conn,
                )  # fmt: skip
                if not finished:
                    raise LeaseLost(f"job {job.id} lost its lease")
                if outcome.on_commit is not None:
                    try:
                        await outcome.on_commit(conn)
                    except Exception as exc:
                        raise _HookFailed from exc
        except _HookFailed as failed:
            cause = failed.__cause__ or failed
            log.warning("%s: on_commit failed, nothing it wrote was kept", _tag(job), exc_info=cause)
            await self._retry_or_bury(job, cause)
            return
        self.stats.succeeded += 1
        log.info("%s: succeeded%s", _tag(job), " (with fallback)" if outcome.fallback else "")

    async def _give_up(self, job: GenerationJob, status: JobStatus, error_text: str) -> None:
        async with self.queue.db.transaction() as conn:
            if not await self.queue.finish(job.id, self.owner, status=status, error=error_text, conn=conn):
                raise LeaseLost(f"job {job.id} lost its lease")
            settled = job.model_copy(update={"status": status, "last_error": error_text})
            await self._call_give_up(settled, error_text, conn)
        if status is JobStatus.DEAD:
            self.stats.dead += 1
        else:
            self.stats.failed += 1
        log.error("%s: %s: %s", _tag(job), status.value, error_text)

    async def _retry_or_bury(self, job: GenerationJob, exc: BaseException) -> None:
        error_text = describe_error(exc)
        if job.attempts >= job.max_attempts:
            await self._give_up(job, JobStatus.DEAD, error_text)
            return
        delay = self.backoff_s(job.attempts)
        if not await self.queue.reschedule(job.id, self.owner, delay_s=delay, error=error_text, spend_attempt=True):
            raise LeaseLost(f"job {job.id} lost its lease")
        self.stats.retried += 1
        unexpected = None if isinstance(exc, StorybotError) else exc
        log.warning("%s: failed (%s); retry in %.1fs", _tag(job), error_text, delay, exc_info=unexpected)

    async def _reschedule(self, job: GenerationJob, signal: Reschedule) -> None:
        if signal.spend_attempt and job.attempts >= job.max_attempts:
            await self._give_up(job, JobStatus.DEAD, signal.reason or "out of attempts")
            return
        rescheduled = await self.queue.reschedule(
            job.id, self.owner, delay_s=signal.delay_s, error=signal.reason or None, spend_attempt=signal.spend_attempt
        )
        if not rescheduled:
            raise LeaseLost(f"job {job.id} lost its lease")
        self.stats.rescheduled += 1
        log.info("%s: rescheduled in %.1fs (%s)", _tag(job), signal.delay_s, signal.reason or "no reason given")

    def backoff_s(self, attempts: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)
