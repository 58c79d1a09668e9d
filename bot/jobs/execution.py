"""Running one claimed job for the worker pool: calling its handler under a lease, then settling it.

Settling (success with its ``on_commit``, failure or death with ``on_give_up``) is one
transaction guarded by the lease: if the lease was lost the transaction rolls back. Retries back
off exponentially with jitter. It is a base of ``WorkerPool`` (which sets the attributes declared
here), kept apart from the main loop that decides which jobs to claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Mapping

from bot.domain import GenerationJob, JobKind, JobStatus
from bot.errors import BadJobRow, StorageError, StorybotError, plain_words
from bot.jobs.bookkeeping import job_tag
from bot.jobs.contract import (
    Handler,
    JobContext,
    JobOutcome,
    LeaseLost,
    PermanentFailure,
    Reschedule,
    run_to_completion,
)
from bot.jobs.maintenance import QueueMaintenance
from bot.settings import redact

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """The error text a job keeps, and a user may see (a scene's error): plain words, secrets masked.
    The details of an unexpected error are logged where it is caught."""
    text = (str(exc) or "it cannot be done") if isinstance(exc, PermanentFailure) else plain_words(exc)
    return redact(text)[:500]


class _HookFailed(Exception):
    """on_commit raised; the transaction was rolled back and the cause is the hook's error."""


class JobExecution(QueueMaintenance):
    handlers: Mapping[JobKind, Handler]
    backoff_base_s: float
    backoff_cap_s: float
    _rng: random.Random
    _shutting_down: bool

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
            log.warning("%s: %s", job_tag(job), exc)
            self.stats.lease_lost += 1
        except Reschedule as signal:
            await self._settle(job, self._reschedule(job, signal))
        except PermanentFailure as exc:
            await self._settle(job, self._give_up(job, JobStatus.FAILED, describe_error(exc)))
        except Exception as exc:
            await self._settle(job, self._retry_or_bury(job, exc))
        except BaseException as exc:  # not cancellation (above): SystemExit, KeyboardInterrupt, a stray subclass
            # Retrying would raise it again, and letting it out would stop every other job with it.
            error_text = f"{describe_error(exc)} (the handler raised {type(exc).__name__})"
            await self._settle(job, self._give_up(job, JobStatus.DEAD, error_text, cause=exc))
        else:
            await self._settle(job, self._succeed(job, outcome or JobOutcome()))
        if not self._shutting_down:
            self._untrack(job)

    def _untrack(self, job: GenerationJob) -> None:
        self._tasks.pop(job.id, None)
        if self._slots.untrack(job):
            self._lost.discard(job.id)

    async def _call_handler(self, job: GenerationJob) -> JobOutcome | None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            raise PermanentFailure(f"this worker has no handler for {job.kind.value} jobs")
        ctx = JobContext(
            job=job, queue=self.queue, clock=self.clock, owner=self.owner,
            release_provider=lambda: self._slots.provider_done(job),
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
            log.warning("%s: lease lost before it could be settled; leaving it to its new owner", job_tag(job))
            self.stats.lease_lost += 1
        except Exception:
            log.exception("%s: could not be settled; its lease will expire and it will run again", job_tag(job))

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
            log.warning("%s: on_commit failed, nothing it wrote was kept", job_tag(job), exc_info=cause)
            await self._retry_or_bury(job, cause)
            return
        self.stats.succeeded += 1
        log.info("%s: succeeded%s", job_tag(job), " (with fallback)" if outcome.fallback else "")

    async def _give_up(
        self, job: GenerationJob, status: JobStatus, error_text: str, *, cause: BaseException | None = None
    ) -> None:
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
        log.warning("%s: failed (%s); retry in %.1fs", job_tag(job), error_text, delay, exc_info=unexpected)

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
        log.info("%s: rescheduled in %.1fs (%s)", job_tag(job), signal.delay_s, signal.reason or "no reason given")

    def backoff_s(self, attempts: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** max(attempts - 1, 0))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)
