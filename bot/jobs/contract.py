"""What a job handler receives and may return or raise.

A handler is ``async def handle(job, ctx) -> JobOutcome | None``. Jobs run at least once, so
handlers must be idempotent. Returning settles the job as succeeded; raising ``Reschedule``
puts it back in the queue for later (polling, open breaker, Retry-After); raising
``PermanentFailure`` fails it at once; any other exception is retried with backoff until the
job's attempts run out, then it is dead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.clock import Clock
from bot.domain import GenerationJob
from bot.jobs.queue import JobQueue
from storage.db import Conn, run_to_completion


@dataclass
class JobOutcome:
    """A handler's result. ``on_commit`` runs inside the transaction that marks the job succeeded,
    so whatever it writes (scene done, next job enqueued) commits together with it, or not at all."""

    result: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    fallback: bool = False
    on_commit: Callable[[Conn], Awaitable[None]] | None = None


class Reschedule(Exception):
    """Run this job again after ``delay_s``; by default the attempt is given back."""

    def __init__(self, delay_s: float, reason: str = "", *, spend_attempt: bool = False) -> None:
        super().__init__(reason or f"rescheduled in {delay_s:g}s")
        self.delay_s = max(float(delay_s), 0.0)
        self.reason = reason
        self.spend_attempt = spend_attempt


class PermanentFailure(Exception):
    """Fail this job now: retrying cannot help."""


class LeaseLost(Exception):
    """The job is no longer ours (reaped, cancelled or claimed by another worker)."""


@dataclass
class JobContext:
    job: GenerationJob
    queue: JobQueue
    clock: Clock
    owner: str
    release_provider: Callable[[], None] | None = None  # the worker's hook behind provider_done()

    def provider_done(self) -> None:
        """This job will make no more provider calls: its provider slot goes to the next job while
        this one stores its results. Call it only after the last provider call."""
        if self.release_provider is not None:
            self.release_provider()

    async def set_remote_id(self, remote_id: str) -> None:
        """Persist the provider's request id now, so a crash resumes polling instead of resubmitting.

        Do not call it while holding ``db.transaction()``: it commits on its own.
        """
        if not await run_to_completion(self.queue.set_remote_id(self.job.id, self.owner, remote_id)):
            raise LeaseLost(f"job {self.job.id} lost its lease before its remote id {remote_id!r} was saved")
        self.job.remote_id = remote_id


Handler = Callable[[GenerationJob, JobContext], Awaitable[JobOutcome | None]]
GiveUpHook = Callable[[GenerationJob, str, Conn], Awaitable[None]]
