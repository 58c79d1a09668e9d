"""Worker: claims ready jobs within its worker, provider and user limits, runs each under a lease, settles it.

Running. ``run_until_empty`` (burst mode) and ``run_forever`` (until ``stop``) run one loop. Each job the
loop claims starts a *runner*: a task that calls the job's handler, settles the job, takes the successor
claimed in the same transaction and runs it, until none is ready for it. The loop itself claims only when
a slot is free (at start, when a runner ends, when a job gives its provider slot back early), runs queue
maintenance, and idles until the next delayed job is due.

Settling. A settle without hooks (a success without ``on_commit``, a retry, a reschedule) is handed to the
worker's *committer*, which settles every job handed to it meanwhile and claims their successors in one
transaction: one trip to SQLite's thread and one commit for all of them (group commit), each job's runner
going on only once its own settle is committed (storage.jobs.settle_then_claim). A success with
``on_commit`` runs it in the transaction that marks the job succeeded; a job given up runs ``on_give_up``
in the transaction that says so. Every settle is guarded by the lease: if the lease was lost it changes
nothing. Claims are made one batch at a time (``_claiming``) against the slots as they stand.

Slots. A job holds a worker slot, a slot of its provider and a slot of its user from its claim until it
is settled; its handler may give the provider slot back earlier (``ctx.provider_done()``), so the next
job of that provider calls it while this one stores its results.

Outcomes. A handler's return settles the job as succeeded; ``Reschedule`` puts it back for later;
``PermanentFailure`` fails it; any other exception is retried with exponential backoff and jitter until
the job's attempts run out, then it is dead.

Leases and time. One lease keeper per worker beats for every job in flight every ``lease_s / 3`` of real
time (``asyncio.sleep``, monotonic): a fake clock must not make it spin. Other processes judge our leases
by that heartbeat counter moving on their own monotonic clocks (storage.job_recovery.LeaseWatch), never by
our wall clock, so a clock step here or there neither hands our live job to them nor keeps a dead one from
them. Maintenance is paced on the injected clock's ``monotonic()``: it extends our own leases first, then
re-bases due times written by a clock ahead of ours, reaps jobs whose heartbeat stood still for their lease
and releases the jobs of processes that died on this host, in one transaction.

Stopping. Cancelling the run cancels the handlers that are running and hands every job in flight back to
the queue without spending an attempt; a runner past its handler finishes its settle first. A runner is
never cancelled anywhere but inside a handler (shutdown, a lost lease), so its settles need no shield.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial

from bot.clock import Clock, SystemClock
from bot.domain import GenerationJob, JobKind, JobStatus
from bot.errors import BadJobRow, StorageError, StorybotError, plain_words
from bot.jobs.contract import GiveUpHook, Handler, JobContext, JobOutcome, LeaseLost, PermanentFailure, Reschedule
from bot.jobs.queue import JobQueue
from bot.settings import redact
from storage import jobs as job_rows
from storage.db import Conn, run_to_completion
from storage.jobs import Statement, Successors

log = logging.getLogger(__name__)

STORAGE_RETRY_PAUSE_S = 0.25  # after a failed claim (e.g. the database locked longer than busy_timeout)

Claimed = GenerationJob | BadJobRow | None
"""What a claim took: a job, a row that cannot be read (claimed all the same, to be dead-lettered), or none."""


@dataclass
class WorkerStats:
    succeeded: int = 0
    failed: int = 0
    dead: int = 0
    retried: int = 0
    rescheduled: int = 0
    lease_lost: int = 0
    handed_back: int = 0  # in-flight jobs put back in the queue when the worker was stopped


def job_tag(job: GenerationJob) -> str:
    return f"job {job.id} kind={job.kind.value} attempt={job.attempts}/{job.max_attempts}"


def describe_error(exc: BaseException) -> str:
    """The error text a job keeps, and a user may see (a scene's error): plain words, secrets masked.
    The details of an unexpected error are logged where it is caught."""
    text = (str(exc) or "it cannot be done") if isinstance(exc, PermanentFailure) else plain_words(exc)
    return redact(text)[:500]


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
    # Our own pid with an owner that is not one of our live workers is a previous incarnation.
    return pid != os.getpid() and pid_alive(pid)


class _HookFailed(Exception):
    """on_commit raised; the transaction was rolled back and the cause is the hook's error."""


def _future() -> asyncio.Future[tuple[bool, Claimed]]:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Handed:
    """A settle handed to the committer by the runner of ``job``; ``done`` gets (settled, successor)."""

    job: GenerationJob
    settle: Statement
    runner: asyncio.Task[None] | None
    done: asyncio.Future[tuple[bool, Claimed]] = field(default_factory=_future)


class SlotLedger:
    """The jobs a worker has claimed and not yet settled, the provider and user slots they hold, and when
    each last beat. Plain state with no I/O, so the claim limits read in one place."""

    def __init__(self) -> None:
        self.in_flight: dict[str, GenerationJob] = {}  # claimed by us and not yet settled
        self.beaten_at: dict[str, float] = {}  # job id -> time.monotonic() of its claim or last heartbeat
        self._by_provider: Counter[str] = Counter()
        self._provider_freed: set[str] = set()  # in flight, but done with their provider (ctx.provider_done())
        self._by_user: Counter[int] = Counter()
        self.room: asyncio.Future[None] | None = None  # done when a provider slot frees before its job ends

    def holds(self, job: GenerationJob) -> bool:
        """Whether ``job`` (this very claim of it) is in flight."""
        return self.in_flight.get(job.id) is job

    def running(self, leaving: Collection[GenerationJob] = ()) -> tuple[Counter[str], Counter[int]]:
        """The jobs running per provider and per user; with ``leaving``, as if those jobs' slots were free."""
        by_provider, by_user = self._by_provider.copy(), self._by_user.copy()
        for job in leaving:
            if not self.holds(job):
                continue
            if job.provider and job.id not in self._provider_freed:
                by_provider[job.provider] -= 1
            if job.user_id is not None:
                by_user[job.user_id] -= 1
        return by_provider, by_user

    def track(self, job: GenerationJob) -> None:
        self.in_flight[job.id] = job
        self.beaten_at[job.id] = time.monotonic()  # a claim beats
        if job.provider:
            self._by_provider[job.provider] += 1
        if job.user_id is not None:
            self._by_user[job.user_id] += 1

    def untrack(self, job: GenerationJob) -> bool:
        """Give back every slot the job holds; False if it was not tracked (any more)."""
        if not self.holds(job):
            return False
        self.free_provider(job)
        del self.in_flight[job.id]
        self.beaten_at.pop(job.id, None)
        self._provider_freed.discard(job.id)
        if job.user_id is not None:
            self._by_user[job.user_id] -= 1
            if self._by_user[job.user_id] <= 0:
                del self._by_user[job.user_id]
        return True

    def free_provider(self, job: GenerationJob) -> None:
        """Give back the job's provider slot, once (at provider_done() or when the job is untracked)."""
        if not job.provider or job.id in self._provider_freed or not self.holds(job):
            return
        self._provider_freed.add(job.id)
        self._by_provider[job.provider] -= 1
        if self._by_provider[job.provider] <= 0:
            del self._by_provider[job.provider]

    def provider_done(self, job: GenerationJob) -> None:
        self.free_provider(job)
        if self.room is not None and not self.room.done():
            self.room.set_result(None)


# Owners of the workers running in this process: release_orphans must not take their jobs even
# though they share our pid (in a container the pid of a restarted bot is often the same).
LIVE_OWNERS: set[str] = set()
# The slots of the workers running in this process. A job one of them is running is known alive without
# watching its heartbeat (which runs on real time, while a test's fake clock may leap); a job a live
# worker gave up on (its settle failed) is not in them, and is reaped like any other once its lease is over.
LIVE_LEDGERS: set[SlotLedger] = set()


def jobs_running_here() -> frozenset[str]:
    return frozenset(job_id for ledger in LIVE_LEDGERS for job_id in ledger.in_flight)


class Worker:
    """Runs the queue's jobs: a loop that claims, a runner per busy slot, a committer and a lease keeper."""

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
        self.running = False  # inside run_until_empty / run_forever: /health and /story new read it
        self._rng = rng or random.Random()
        self._slots = SlotLedger()
        self._claiming = asyncio.Lock()  # one claim (or batch) at a time, from reading the slots to tracking its jobs
        self._handed: list[_Handed] = []  # settles waiting for the committer
        self._handed_ready = asyncio.Event()
        self._runners: set[asyncio.Task[None]] = set()
        self._runner_of: dict[str, asyncio.Task[None]] = {}  # job id -> the runner that took it
        self._handling: set[str] = set()  # jobs whose handler is running (the only place a runner is cancelled)
        self._lost: set[str] = set()  # jobs whose lease the keeper found lost
        self._stop: asyncio.Event | None = None
        self._shutting_down = False
        self._next_maintenance = 0.0

    # --- the loop -------------------------------------------------------------------------------

    async def run_until_empty(self) -> WorkerStats:
        """Burst mode: run until no job is queued or running, waiting out delayed jobs."""
        return await self._run(stop=None)

    async def run_forever(self, stop: asyncio.Event) -> WorkerStats:
        """Run until ``stop`` is set, then let in-flight jobs finish. Cancel to hand them back."""
        return await self._run(stop=stop)

    async def _run(self, stop: asyncio.Event | None) -> WorkerStats:
        LIVE_OWNERS.add(self.owner)
        LIVE_LEDGERS.add(self._slots)
        self._stop = stop
        self._shutting_down = False
        self._claiming, self._handed, self._handed_ready = asyncio.Lock(), [], asyncio.Event()  # fresh for this run
        self.running = True
        keeper = asyncio.create_task(self._keep_leases(), name=f"lease-keeper-{self.owner}")
        committer = asyncio.create_task(self._commit_handed(), name=f"committer-{self.owner}")
        try:
            await self._maintain_quietly()
            while stop is None or not stop.is_set():
                if self.clock.monotonic() >= self._next_maintenance:
                    await self._maintain_quietly()
                await self._fill()
                if self._runners:
                    await self._wait_for_room()
                    continue
                lost = self.queue.db.file_problem()
                if stop is None and lost is not None:
                    raise StorageError(lost)  # burst mode: nothing more can be done with this file
                if stop is None and await self._drained():
                    break
                await self._idle(stop)
            if self._runners:
                await asyncio.gather(*self._runners)
        except BaseException:
            await self._hand_back_all()
            raise
        finally:
            for helper in (keeper, committer):  # after the runners: the committer settles for them
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            self._runners.clear()
            self.running = False
            LIVE_OWNERS.discard(self.owner)
            LIVE_LEDGERS.discard(self._slots)
        return self.stats

    async def _fill(self) -> None:
        """Claim jobs for the free worker slots, each starting a runner."""
        self._slots.room = asyncio.get_running_loop().create_future()  # a slot freed from here on wakes the wait
        while len(self._slots.in_flight) < self.concurrency:
            if self.queue.db.file_problem() is not None:
                return  # the file at DATABASE_PATH is not the one we hold open: claim nothing more
            try:
                job = await run_to_completion(self._claim())
            except StorageError as exc:
                log.warning("could not claim a job, will try again: %s", exc)
                await asyncio.sleep(STORAGE_RETRY_PAUSE_S)  # real time: another process holds the lock
                return
            if isinstance(job, BadJobRow):
                await run_to_completion(self._bury_unreadable(job))
                continue
            if job is None:
                return
            runner = asyncio.create_task(self._run_jobs(job), name=f"job-runner-{job.id}")
            self._runner_of[job.id] = runner
            self._runners.add(runner)

    async def _wait_for_room(self) -> None:
        """Wait until a runner ends, a running job frees its provider slot, or idle_poll_s passes."""
        waits: set[asyncio.Future[None]] = {*self._runners}
        if self._slots.room is not None:
            waits.add(self._slots.room)
        await asyncio.wait(waits, timeout=self.idle_poll_s, return_when=asyncio.FIRST_COMPLETED)
        ended = {runner for runner in self._runners if runner.done()}
        self._runners -= ended
        for runner in ended:
            if not runner.cancelled() and runner.exception() is not None:
                log.error("job task %s crashed", runner.get_name(), exc_info=runner.exception())
                self._forget(runner)

    def _forget(self, runner: asyncio.Task[None]) -> None:
        """A runner that crashed past its jobs' own handling: free their slots; their leases expire, they run again."""
        for job_id, took in list(self._runner_of.items()):
            if took is runner and (job := self._slots.in_flight.get(job_id)) is not None:
                self._untrack(job)

    async def _drained(self) -> bool:
        """No job this process could take is queued or running (deliveries left for another publisher aside)."""
        counts = await self.queue.pending()
        return counts[JobStatus.QUEUED] == 0 and counts[JobStatus.RUNNING] == 0

    async def _idle(self, stop: asyncio.Event | None) -> None:
        """Sleep until the next delayed job is due; check often while others hold running jobs.

        A job due now that the last claim did not take was either taken by another claimer just before
        (look again at once), or waits for a provider or user slot that another process's running jobs
        hold, since the limits are counted across processes: then wait, as for a delayed job, rather than
        spin on claims that cannot succeed."""
        next_due = await self.queue.next_run_after()
        delay = self.idle_poll_s if next_due is None else next_due - self.clock.now()
        if delay > self.idle_poll_s and await self._rebased():
            return  # that due time was a clock's step, not a delay: look again
        counts = await self.queue.pending()
        if delay <= 0:
            if not counts[JobStatus.RUNNING]:
                await asyncio.sleep(0)
                return
            delay = self.idle_poll_s
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

    async def _hand_back_all(self) -> None:
        """On cancellation: stop handlers and put their jobs back without spending an attempt."""
        self._shutting_down = True
        for job_id in list(self._handling):
            if (runner := self._runner_of.get(job_id)) is not None:
                runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        for job in list(self._slots.in_flight.values()):
            try:
                handed_back = self.queue.reschedule(job.id, self.owner, delay_s=0, spend_attempt=False)
                if await run_to_completion(handed_back):
                    self.stats.handed_back += 1
                    log.info("%s: handed back to the queue (worker stopping)", job_tag(job))
            except StorageError as exc:
                log.warning("%s: could not hand back (%s); its lease will expire", job_tag(job), exc)
            self._untrack(job)

    # --- claims ---------------------------------------------------------------------------------

    def _successors(self, leaving: Collection[GenerationJob], wanted: int) -> Successors | None:
        """Claims of up to ``wanted`` jobs within the slots free once ``leaving`` is settled, or None when none
        is due: the worker is stopping, every slot is taken, or the database file is no longer ours."""
        if self._shutting_down or (self._stop is not None and self._stop.is_set()):
            return None
        free = self.concurrency - len(self._slots.in_flight) + sum(self._slots.holds(job) for job in leaving)
        if min(free, wanted) < 1 or self.queue.db.file_problem() is not None:
            return None
        by_provider, by_user = self._slots.running(leaving)
        return self.queue.successors(
            self.owner, count=min(free, wanted), by_provider=by_provider, provider_limit=self.provider_limit,
            by_user=by_user, user_limit=self.user_limit, lease_s=self.lease_s,
        )  # fmt: skip

    def _took(self, claimed: Claimed, runner: asyncio.Task[None] | None) -> None:
        """Track a job just claimed, before anyone can cancel us: a shutdown then hands it back."""
        if isinstance(claimed, GenerationJob):
            self._slots.track(claimed)
            if runner is not None:
                self._runner_of[claimed.id] = runner
            log.info("%s: claimed", job_tag(claimed))

    async def _claim(self, leaving: GenerationJob | None = None) -> Claimed:
        """One job for a free slot (``leaving``: the slot of a job just settled, which is untracked here)."""
        async with self._claiming:
            successors = self._successors(() if leaving is None else (leaving,), 1)
            try:
                claimed = [] if successors is None else (await self.queue.settle_then_claim((), successors))[1]
            finally:
                if leaving is not None:
                    self._untrack(leaving)
            job = claimed[0] if claimed else None
            self._took(job, asyncio.current_task() if leaving is not None else None)
            return job

    async def _claim_after(self, job: GenerationJob) -> Claimed:
        """``job``'s successor, claimed once its settle is committed; a failure only means none this time."""
        try:
            return await self._claim(leaving=job)
        except Exception as exc:
            log.warning("could not claim a job, will try again: %s", exc)
            return None

    # --- one job --------------------------------------------------------------------------------

    async def _run_jobs(self, job: GenerationJob) -> None:
        """A runner: run ``job``, settle it and run its successor, until it has none."""
        current: GenerationJob | None = job
        while current is not None and not self._shutting_down:  # stopping: what we took is handed back
            current = await self._execute(current)

    async def _execute(self, job: GenerationJob) -> GenerationJob | None:
        """Run the job's handler and settle the job; its successor, if one was claimed."""
        try:
            outcome = await self._call_handler(job)
        except asyncio.CancelledError:
            if job.id not in self._lost or self._shutting_down:
                raise  # shutdown: _hand_back_all puts the job back
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # we cancelled our own handler because its lease was lost
            self.stats.lease_lost += 1
            self._untrack(job)
            return None
        except LeaseLost as exc:
            log.warning("%s: %s", job_tag(job), exc)
            self.stats.lease_lost += 1
            self._untrack(job)
            return None
        except Reschedule as signal:
            return await self._settle(job, self._reschedule(job, signal))
        except PermanentFailure as exc:
            return await self._settle(job, self._give_up(job, JobStatus.FAILED, describe_error(exc)))
        except Exception as exc:
            return await self._settle(job, self._retry_or_bury(job, exc))
        except BaseException as exc:  # not cancellation (above): SystemExit, KeyboardInterrupt, a stray subclass
            # Retrying would raise it again, and letting it out would stop every other job with it.
            error_text = f"{describe_error(exc)} (the handler raised {type(exc).__name__})"
            return await self._settle(job, self._give_up(job, JobStatus.DEAD, error_text, cause=exc))
        return await self._settle(job, self._succeed(job, outcome or JobOutcome()))

    async def _call_handler(self, job: GenerationJob) -> JobOutcome | None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            raise PermanentFailure(f"this worker has no handler for {job.kind.value} jobs")
        ctx = JobContext(
            job=job, queue=self.queue, clock=self.clock, owner=self.owner,
            release_provider=partial(self._slots.provider_done, job),
        )  # fmt: skip
        self._handling.add(job.id)
        try:
            return await handler(job, ctx)
        finally:
            self._handling.discard(job.id)

    async def _settle(self, job: GenerationJob, settling: Awaitable[Claimed]) -> GenerationJob | None:
        """Await ``settling``, which settles ``job`` and claims its successor; the successor, if it can be read."""
        try:
            claimed = await settling
        except LeaseLost:
            log.warning("%s: lease lost before it could be settled; leaving it to its new owner", job_tag(job))
            self.stats.lease_lost += 1
            claimed = None
        except Exception:
            log.exception("%s: could not be settled; its lease will expire and it will run again", job_tag(job))
            claimed = None
        self._untrack(job)  # (already done by whoever claimed its successor)
        if isinstance(claimed, BadJobRow):
            await self._bury_unreadable(claimed)
            return None
        return claimed

    def _untrack(self, job: GenerationJob) -> None:
        if self._slots.untrack(job):
            self._runner_of.pop(job.id, None)
            self._lost.discard(job.id)

    async def _hand_over(self, job: GenerationJob, settle: Statement) -> Claimed:
        """Settle ``job`` by the committer, with the other settles handed over meanwhile; its successor."""
        handed = _Handed(job, settle, asyncio.current_task())
        self._handed.append(handed)
        self._handed_ready.set()
        settled, claimed = await handed.done
        if not settled:
            raise LeaseLost(f"job {job.id} lost its lease")
        return claimed

    async def _commit_handed(self) -> None:
        """The committer: settle what the runners handed over, in batches of whatever is waiting."""
        try:
            while True:
                await self._handed_ready.wait()
                self._handed_ready.clear()
                while self._handed:
                    batch, self._handed = self._handed, []
                    await self._commit_batch(batch)
        finally:
            for handed in self._handed:  # the run is over: nobody is left to commit them
                handed.done.cancel()

    async def _commit_batch(self, batch: list[_Handed]) -> None:
        leaving = [handed.job for handed in batch]
        async with self._claiming:
            try:
                settled, claimed = await self.queue.settle_then_claim(
                    [handed.settle for handed in batch], self._successors(leaving, len(batch))
                )
            except Exception as exc:
                for handed in batch:  # each runner raises its own error: one shared object would mix tracebacks
                    failed = StorageError(f"{type(exc).__name__}: {exc}")
                    failed.__cause__ = exc
                    handed.done.set_exception(failed)
                return
            finally:
                for job in leaving:
                    self._untrack(job)
            successors = iter(claimed)
            for handed, ok in zip(batch, settled, strict=True):
                successor = next(successors, None) if ok else None
                self._took(successor, handed.runner)
                handed.done.set_result((ok, successor))

    async def _succeed(self, job: GenerationJob, outcome: JobOutcome) -> Claimed:
        warnings, fallback = outcome.warnings or None, outcome.fallback or None
        if outcome.on_commit is None:
            finishing = self.queue.finishing(
                job.id, self.owner, status=JobStatus.SUCCEEDED, result=outcome.result, warnings=warnings,
                fallback=fallback,
            )  # fmt: skip
            claimed = await self._hand_over(job, finishing)
            self._succeeded(job, outcome)
            return claimed
        try:
            async with self.queue.db.transaction() as conn:
                finished = await self.queue.finish(
                    job.id, self.owner, status=JobStatus.SUCCEEDED, result=outcome.result, warnings=warnings,
                    fallback=fallback, conn=conn,
                )  # fmt: skip
                if not finished:
                    raise LeaseLost(f"job {job.id} lost its lease")
                try:
                    await outcome.on_commit(conn)
                except Exception as exc:
                    raise _HookFailed from exc
        except _HookFailed as failed:
            cause = failed.__cause__ or failed
            log.warning("%s: on_commit failed, nothing it wrote was kept", job_tag(job), exc_info=cause)
            return await self._retry_or_bury(job, cause)
        self._succeeded(job, outcome)
        return await self._claim_after(job)

    def _succeeded(self, job: GenerationJob, outcome: JobOutcome) -> None:
        self.stats.succeeded += 1
        log.info("%s: succeeded%s", job_tag(job), " (with fallback)" if outcome.fallback else "")

    async def _give_up(
        self, job: GenerationJob, status: JobStatus, error_text: str, *, cause: BaseException | None = None
    ) -> Claimed:
        async with self.queue.db.transaction() as conn:
            if not await self.queue.finish(job.id, self.owner, status=status, error=error_text, conn=conn):
                raise LeaseLost(f"job {job.id} lost its lease")
            settled = job.model_copy(update={"status": status, "last_error": error_text})
            await self._call_give_up(settled, error_text, conn)
        if status is JobStatus.DEAD:
            self.stats.dead += 1
        else:
            self.stats.failed += 1
        log.error("%s: %s: %s", job_tag(job), status.value, error_text, exc_info=cause)
        return await self._claim_after(job)

    async def _retry_or_bury(self, job: GenerationJob, exc: BaseException) -> Claimed:
        error_text = describe_error(exc)
        if job.attempts >= job.max_attempts:
            return await self._give_up(job, JobStatus.DEAD, error_text)
        delay = self.backoff_s(job.attempts)
        rescheduling = self.queue.rescheduling(job.id, self.owner, delay_s=delay, error=error_text, spend_attempt=True)
        claimed = await self._hand_over(job, rescheduling)
        self.stats.retried += 1
        unexpected = None if isinstance(exc, StorybotError) else exc
        log.warning("%s: failed (%s); retry in %.1fs", job_tag(job), error_text, delay, exc_info=unexpected)
        return claimed

    async def _reschedule(self, job: GenerationJob, signal: Reschedule) -> Claimed:
        if signal.spend_attempt and job.attempts >= job.max_attempts:
            return await self._give_up(job, JobStatus.DEAD, signal.reason or "out of attempts")
        rescheduling = self.queue.rescheduling(
            job.id, self.owner, delay_s=signal.delay_s, error=signal.reason or None, spend_attempt=signal.spend_attempt
        )
        claimed = await self._hand_over(job, rescheduling)
        self.stats.rescheduled += 1
        log.info("%s: rescheduled in %.1fs (%s)", job_tag(job), signal.delay_s, signal.reason or "no reason given")
        return claimed

    async def _bury_unreadable(self, bad: BadJobRow) -> None:
        """Dead-letter a claimed row that cannot be read, with its reason; the queue goes on without it."""
        error_text = f"its row cannot be read: {bad.reason}"
        try:
            async with self.queue.db.transaction() as conn:
                if not await self.queue.finish(bad.job_id, self.owner, status=JobStatus.DEAD, error=error_text,
                                               conn=conn):  # fmt: skip
                    return
                if bad.salvaged is not None:
                    settled = bad.salvaged.model_copy(update={"status": JobStatus.DEAD, "last_error": error_text})
                    await self._call_give_up(settled, error_text, conn)
        except StorageError as exc:
            log.warning("job %s: could not be dead-lettered (%s); its lease will expire and it is tried again",
                        bad.job_id, exc)  # fmt: skip
            return
        self.stats.dead += 1
        log.error("job %s: dead: %s", bad.job_id, error_text)

    async def _call_give_up(self, job: GenerationJob, error_text: str, conn: Conn) -> None:
        if self.on_give_up is None:
            return
        try:
            async with job_rows.savepoint(conn):
                await self.on_give_up(job, error_text, conn)
        except Exception:
            # The job stays failed/dead (a broken hook must not make it loop forever).
            log.exception("%s: on_give_up failed; its writes were rolled back", job_tag(job))

    def backoff_s(self, attempts: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    # --- leases and maintenance -----------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """Beat for every job in flight at least every lease_s / 3 of real time."""
        every = self.lease_s / 3
        beaten_at = self._slots.beaten_at
        while True:
            now = time.monotonic()
            for job in [job for job in self._slots.in_flight.values() if now - beaten_at[job.id] >= every]:
                if job.id in self._lost:
                    beaten_at[job.id] = now  # nothing to keep: its runner is letting it go
                    continue
                try:
                    await self._extend_lease(job)
                except StorageError as exc:
                    log.warning("%s: heartbeat failed: %s", job_tag(job), exc)
            due = min(beaten_at.values(), default=time.monotonic()) + every
            await asyncio.sleep(max(due - time.monotonic(), 0.0))

    async def _extend_lease(self, job: GenerationJob) -> None:
        if self._slots.holds(job):
            self._slots.beaten_at[job.id] = time.monotonic()  # tried: a failed beat is tried again in lease_s / 3
        if await self.queue.heartbeat(job.id, self.owner, lease_s=self.lease_s) or not self._slots.holds(job):
            return  # beaten, or settled meanwhile (a job settled is not running any more)
        log.warning("%s: lease lost (reaped, cancelled or taken); stopping its handler", job_tag(job))
        self._lost.add(job.id)
        if job.id in self._handling and (runner := self._runner_of.get(job.id)) is not None:
            runner.cancel()

    async def _maintain_quietly(self) -> None:
        if self.queue.db.file_problem() is not None:
            return  # reaping into a file nobody reads any more would only hide what happened
        try:
            await run_to_completion(self._reap_and_release())
            self._next_maintenance = self.clock.monotonic() + self.maintenance_every_s
        except StorageError as exc:
            log.warning("queue maintenance failed, will try again: %s", exc)
            self._next_maintenance = self.clock.monotonic() + min(self.maintenance_every_s, self.idle_poll_s)

    async def _reap_and_release(self) -> None:
        # Our own running jobs beat first: other processes' reapers judge them by their heartbeats.
        for job in list(self._slots.in_flight.values()):
            await self._extend_lease(job)
        async with self.queue.db.transaction() as conn:
            await self.queue.rebase(conn=conn)
            dead = await self.queue.reap(keep_ids=jobs_running_here(), conn=conn)
            dead += await self.queue.release_orphans(
                socket.gethostname(), _other_process_alive, keep_owners=frozenset(LIVE_OWNERS), conn=conn
            )
            for job in dead:
                self.stats.dead += 1
                log.error("%s: dead (%s)", job_tag(job), job.last_error)
                await self._call_give_up(job, job.last_error or "dead", conn)
