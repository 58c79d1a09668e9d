"""JobQueue: the service face of the durable queue (storage/jobs.py and storage/job_recovery.py hold the SQL).

Writes that take ``conn`` join the caller's ``db.transaction()``; without it they commit alone.

``publishers`` are the publishers of the process the queue serves ("discord" for the bot, "offline"
for the command line; None in tests of the queue alone: every job). Claims, and what burst mode and
the health report wait for, leave out the deliveries of other publishers (storage.jobs.publisher_filter).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from bot.clock import Clock
from bot.domain import GenerationJob, JobKind, JobStatus, KindDepth
from bot.errors import BadJobRow
from storage import job_recovery
from storage import jobs as job_rows
from storage.db import Conn, Database
from storage.job_recovery import LeaseWatch
from storage.jobs import Statement, Successors

log = logging.getLogger(__name__)


class JobQueue:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        lease_s: float = 60.0,
        max_attempts: int = 5,
        publishers: Collection[str] | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.db = db
        self.clock = clock
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.publishers: frozenset[str] | None = None if publishers is None else frozenset(publishers)
        self.lease_watch = LeaseWatch()  # what this process has seen of other workers' heartbeats

    def _target(self, conn: Conn | None) -> Database | Conn:
        return self.db if conn is None else conn

    async def enqueue(
        self,
        kind: JobKind,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        story_id: str | None = None,
        user_id: int | None = None,
        provider: str | None = None,
        publisher: str | None = None,
        delay_s: float = 0,
        max_attempts: int | None = None,
        conn: Conn | None = None,
    ) -> GenerationJob:
        """Add a job; with an idempotency_key already in the table, return that job instead."""
        now = self.clock.now()
        job = GenerationJob(
            kind=kind,
            payload=payload,
            idempotency_key=idempotency_key,
            story_id=story_id,
            user_id=user_id,
            provider=provider,
            publisher=publisher,
            run_after=now + max(delay_s, 0),
            max_attempts=max_attempts or self.max_attempts,
            created_at=now,
            updated_at=now,
        )
        stored = await job_rows.insert(self._target(conn), job)
        if stored.id == job.id:
            log.info("job %s kind=%s attempt=0/%d: enqueued, due in %.1fs", stored.id, kind.value,
                     stored.max_attempts, max(delay_s, 0))  # fmt: skip
        else:
            log.debug("job %s kind=%s attempt=%d/%d: already enqueued under key %s", stored.id, kind.value,
                      stored.attempts, stored.max_attempts, idempotency_key)  # fmt: skip
        return stored

    async def claim(
        self,
        owner: str,
        *,
        exclude_providers: Collection[str] = (),
        exclude_users: Collection[int] = (),
        lease_s: float | None = None,
    ) -> GenerationJob | None:
        return await job_rows.claim(
            self.db,
            owner=owner,
            now=self.clock.now(),
            lease_s=lease_s or self.lease_s,
            exclude_providers=exclude_providers,
            exclude_users=exclude_users,
            publishers=self.publishers,
        )

    async def heartbeat(self, job_id: str, owner: str, *, lease_s: float | None = None) -> bool:
        return await job_rows.heartbeat(self.db, job_id, owner, self.clock.now() + (lease_s or self.lease_s))

    def finishing(
        self,
        job_id: str,
        owner: str,
        *,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        warnings: list[str] | None = None,
        fallback: bool | None = None,
        error: str | None = None,
    ) -> Statement:
        """The statement that settles a running job (succeeded, failed or dead), for ``settle_then_claim``."""
        return job_rows.finish_statement(
            job_id, owner, status=status, result=result, now=self.clock.now(), warnings=warnings,
            fallback=fallback, error=error,
        )  # fmt: skip

    async def finish(
        self,
        job_id: str,
        owner: str,
        *,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        warnings: list[str] | None = None,
        fallback: bool | None = None,
        error: str | None = None,
        conn: Conn | None = None,
    ) -> bool:
        finishing = self.finishing(
            job_id, owner, status=status, result=result, warnings=warnings, fallback=fallback, error=error
        )
        return await job_rows.settle(self._target(conn), finishing)

    def rescheduling(
        self, job_id: str, owner: str, *, delay_s: float, error: str | None = None, spend_attempt: bool = False
    ) -> Statement:
        """The statement that puts a running job back in the queue, due in ``delay_s``."""
        now = self.clock.now()
        return job_rows.reschedule_statement(
            job_id, owner, run_after=now + max(delay_s, 0), error=error, spend_attempt=spend_attempt, now=now
        )

    async def reschedule(
        self,
        job_id: str,
        owner: str,
        *,
        delay_s: float,
        error: str | None = None,
        spend_attempt: bool = False,
        conn: Conn | None = None,
    ) -> bool:
        rescheduling = self.rescheduling(job_id, owner, delay_s=delay_s, error=error, spend_attempt=spend_attempt)
        return await job_rows.settle(self._target(conn), rescheduling)

    def successors(
        self,
        owner: str,
        *,
        count: int,
        by_provider: Mapping[str, int],
        provider_limit: int,
        by_user: Mapping[int, int],
        user_limit: int,
        lease_s: float | None = None,
    ) -> Successors:
        """Claims of up to ``count`` ready jobs within the limits, given the jobs running (see Successors)."""
        return Successors(
            owner, self.clock.now(), lease_s or self.lease_s, count, by_provider, provider_limit, by_user,
            user_limit, self.publishers,
        )  # fmt: skip

    async def settle_then_claim(
        self, settles: Sequence[Statement], successors: Successors | None
    ) -> tuple[list[bool], list[GenerationJob | BadJobRow]]:
        """Settle jobs (``finishing``, ``rescheduling``) and claim their successors in one transaction: one
        trip and one commit (see storage.jobs.settle_then_claim)."""
        return await job_rows.settle_then_claim(self.db, settles, successors)

    async def set_remote_id(self, job_id: str, owner: str, remote_id: str) -> bool:
        return await job_rows.set_remote_id(self.db, job_id, owner, remote_id)

    async def reap(self, *, keep_ids: Collection[str] = (), conn: Conn | None = None) -> list[GenerationJob]:
        """Hand back the jobs whose heartbeat this queue has seen stand still for their lease (see LeaseWatch)."""
        return await job_recovery.reap(
            self._target(conn),
            self.lease_watch,
            now=self.clock.now(),
            monotonic=self.clock.monotonic(),
            default_lease_s=self.lease_s,
            keep_ids=keep_ids,
        )

    async def rebase(self, *, conn: Conn | None = None) -> int:
        """Due times written by a clock ahead of ours count from now instead (see job_recovery.rebase)."""
        return await job_recovery.rebase(self._target(conn), self.clock.now())

    async def release_orphans(
        self,
        host: str,
        alive: Callable[[int], bool],
        *,
        keep_owners: Collection[str] = (),
        conn: Conn | None = None,
    ) -> list[GenerationJob]:
        return await job_recovery.release_orphans(
            self._target(conn), host, alive, self.clock.now(), keep_owners=keep_owners
        )

    async def cancel(self, *, job_id: str | None = None, story_id: str | None = None, conn: Conn | None = None) -> int:
        cancelled = await job_recovery.cancel(
            self._target(conn), job_id=job_id, story_id=story_id, now=self.clock.now()
        )
        if cancelled:
            log.info("cancelled %d job(s) (job_id=%s story_id=%s)", cancelled, job_id, story_id)
        return cancelled

    async def get(self, job_id: str) -> GenerationJob | None:
        return await job_rows.get(self.db, job_id)

    async def list_for_story(self, story_id: str) -> list[GenerationJob]:
        return await job_rows.list_for_story(self.db, story_id)

    async def counts(self) -> dict[str, int]:
        return await job_rows.counts(self.db)

    async def depth_by_kind(self) -> dict[str, KindDepth]:
        """Per job kind (every kind): jobs queued and running, and how long the oldest ready one has been due.
        The whole queue, every publisher's deliveries included, as ``counts``; one query (/metrics reads it)."""
        return await job_rows.depth_by_kind(self.db, self.clock.now())

    async def pending(self) -> dict[str, int]:
        """Queued and running jobs this process could take: what burst mode waits for."""
        return await job_rows.pending(self.db, self.publishers)

    async def left_for_others(self) -> int:
        """Queued deliveries only a process with another publisher may make (the bot's, for the CLI)."""
        return 0 if self.publishers is None else await job_rows.left_for_others(self.db, self.publishers)

    async def next_run_after(self) -> float | None:
        return await job_rows.next_run_after(self.db, self.publishers)

    async def oldest_queued_age(self) -> float | None:
        return await job_rows.oldest_queued_age(self.db, self.clock.now(), self.publishers)

    async def queue_position(self, job_id: str) -> int:
        return await job_rows.queue_position(self.db, job_id)
