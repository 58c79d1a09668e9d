"""The durable job queue (over storage/jobs.py) and the worker pool that runs it."""

from __future__ import annotations

from bot.jobs.bookkeeping import WorkerStats
from bot.jobs.contract import GiveUpHook, Handler, JobContext, JobOutcome, LeaseLost, PermanentFailure, Reschedule
from bot.jobs.maintenance import make_owner
from bot.jobs.queue import JobQueue
from bot.jobs.supervisor import WorkerSupervisor
from bot.jobs.worker import WorkerPool

__all__ = [
    "GiveUpHook",
    "Handler",
    "JobContext",
    "JobOutcome",
    "JobQueue",
    "LeaseLost",
    "PermanentFailure",
    "Reschedule",
    "WorkerPool",
    "WorkerStats",
    "WorkerSupervisor",
    "make_owner",
]
