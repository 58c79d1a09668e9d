"""The durable job queue, the handler contract, and the Worker that runs the queue's jobs.

queue.py      JobQueue: enqueue, claim, settle, recover, read (over storage/jobs.py and job_recovery.py)
contract.py   what a handler receives and may return or raise: JobContext, JobOutcome, Reschedule...
worker.py     Worker: claims within its limits, runs each job under a lease, settles it
supervisor.py WorkerSupervisor: restarts a long-running Worker that died

This package knows no handler: the pipeline's handlers are handed to a Worker by bot/runtime.py.
"""

from __future__ import annotations

from bot.jobs.contract import GiveUpHook, Handler, JobContext, JobOutcome, LeaseLost, PermanentFailure, Reschedule
from bot.jobs.queue import JobQueue
from bot.jobs.supervisor import WorkerSupervisor
from bot.jobs.worker import Worker, WorkerStats

__all__ = [
    "GiveUpHook",
    "Handler",
    "JobContext",
    "JobOutcome",
    "JobQueue",
    "LeaseLost",
    "PermanentFailure",
    "Reschedule",
    "Worker",
    "WorkerStats",
    "WorkerSupervisor",
]
