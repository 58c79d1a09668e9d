"""Leases and queue maintenance for the worker pool: heartbeats, reaping dead jobs, releasing orphans.

Time: the heartbeat runs on real time (``asyncio.sleep``, monotonic) and bumps the job's heartbeat
counter each time; a fake clock must not make it spin. Other processes judge our lease by that
counter moving on their own monotonic clocks (storage.job_recovery.LeaseWatch), never by our wall
clock, so a clock step here or there neither hands our live job to them nor keeps a dead one from
them. Maintenance is paced on the injected clock's ``monotonic()``: a wall clock stepping back an
hour must not stop it for an hour.

Maintenance extends our own leases first, then re-bases due times written by a clock ahead of ours,
reaps jobs whose heartbeat stood still for their lease and releases the jobs of processes that died
on this host, in one transaction. It is a base of ``WorkerPool`` (which sets the attributes declared
here), kept apart from the main loop and from running a job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket

from bot.clock import Clock
from bot.domain import GenerationJob
from bot.errors import StorageError
from bot.jobs.bookkeeping import SlotLedger, WorkerStats, job_tag
from bot.jobs.contract import GiveUpHook, run_to_completion
from bot.jobs.queue import JobQueue
from storage import jobs as job_rows
from storage.db import Conn

log = logging.getLogger(__name__)

# Owners of the pools running in this process: release_orphans must not take their jobs even
# though they share our pid (in a container the pid of a restarted bot is often the same).
LIVE_OWNERS: set[str] = set()
# The slots of the pools running in this process. A job one of them is running is known alive without
# watching its heartbeat (which runs on real time, while a test's fake clock may leap); a job a live
# pool gave up on (its settle failed) is not in them, and is reaped like any other once its lease is over.
LIVE_LEDGERS: set[SlotLedger] = set()


def jobs_running_here() -> frozenset[str]:
    return frozenset(job_id for ledger in LIVE_LEDGERS for job_id in ledger.in_flight)


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


class QueueMaintenance:
    queue: JobQueue
    clock: Clock
    owner: str
    lease_s: float
    on_give_up: GiveUpHook | None
    idle_poll_s: float
    maintenance_every_s: float
    stats: WorkerStats
    _slots: SlotLedger
    _tasks: dict[str, asyncio.Task[None]]
    _lost: set[str]
    _handling: set[str]
    _next_maintenance: float

    async def _extend_lease(self, job: GenerationJob) -> None:
        if await run_to_completion(self.queue.heartbeat(job.id, self.owner, lease_s=self.lease_s)):
            return
        log.warning("%s: lease lost (reaped, cancelled or taken); stopping its handler", job_tag(job))
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
                log.warning("%s: heartbeat failed: %s", job_tag(job), exc)

    async def _maintain(self) -> None:
        await run_to_completion(self._reap_and_release())
        self._next_maintenance = self.clock.monotonic() + self.maintenance_every_s

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

    async def _maintain_quietly(self) -> None:
        if self.queue.db.file_problem() is not None:
            return  # reaping into a file nobody reads any more would only hide what happened
        try:
            await self._maintain()
        except StorageError as exc:
            log.warning("queue maintenance failed, will try again: %s", exc)
            self._next_maintenance = self.clock.monotonic() + min(self.maintenance_every_s, self.idle_poll_s)

    async def _call_give_up(self, job: GenerationJob, error_text: str, conn: Conn) -> None:
        if self.on_give_up is None:
            return
        try:
            async with job_rows.savepoint(conn):
                await self.on_give_up(job, error_text, conn)
        except Exception:
            # The job stays failed/dead (a broken hook must not make it loop forever).
            log.exception("%s: on_give_up failed; its writes were rolled back", job_tag(job))
