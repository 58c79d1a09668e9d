"""The worker pool's in-memory accounting: the slots its jobs hold, its outcome counts, and its log tag.

A job holds a slot of its provider from its claim until it ends, or until its handler calls
``ctx.provider_done()``: then the slot goes to the next job of that provider while this one
stores its results (it still holds its worker slot and its user's slot until it is settled).
This is plain state with no I/O, kept apart so the claim limits can be read in one place.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

from bot.domain import GenerationJob


@dataclass
class WorkerStats:
    succeeded: int = 0
    failed: int = 0
    dead: int = 0
    retried: int = 0
    rescheduled: int = 0
    lease_lost: int = 0
    handed_back: int = 0  # in-flight jobs put back in the queue when the pool was stopped


def job_tag(job: GenerationJob) -> str:
    return f"job {job.id} kind={job.kind.value} attempt={job.attempts}/{job.max_attempts}"


class SlotLedger:
    """The jobs a pool has claimed and not yet settled, and the provider and user slots they hold."""

    def __init__(self) -> None:
        self.in_flight: dict[str, GenerationJob] = {}  # claimed by us and not yet settled
        self._by_provider: Counter[str] = Counter()
        self._provider_freed: set[str] = set()  # in flight, but done with their provider (ctx.provider_done())
        self.room = asyncio.Event()  # set when a provider slot frees before its job ends
        self._by_user: Counter[int] = Counter()

    def full_providers(self, provider_limit: int) -> list[str]:
        return [p for p, n in self._by_provider.items() if n >= provider_limit]

    def full_users(self, user_limit: int) -> list[int]:
        return [u for u, n in self._by_user.items() if n >= user_limit]

    def track(self, job: GenerationJob) -> None:
        self.in_flight[job.id] = job
        if job.provider:
            self._by_provider[job.provider] += 1
        if job.user_id is not None:
            self._by_user[job.user_id] += 1

    def untrack(self, job: GenerationJob) -> bool:
        """Give back every slot the job holds; False if it was not tracked (any more)."""
        if job.id not in self.in_flight:
            return False
        self.free_provider(job)
        del self.in_flight[job.id]
        self._provider_freed.discard(job.id)
        if job.user_id is not None:
            self._by_user[job.user_id] -= 1
            if self._by_user[job.user_id] <= 0:
                del self._by_user[job.user_id]
        return True

    def free_provider(self, job: GenerationJob) -> None:
        """Give back the job's provider slot, once (at provider_done() or when the job is untracked)."""
        if not job.provider or job.id in self._provider_freed or job.id not in self.in_flight:
            return
        self._provider_freed.add(job.id)
        self._by_provider[job.provider] -= 1
        if self._by_provider[job.provider] <= 0:
            del self._by_provider[job.provider]

    def provider_done(self, job: GenerationJob) -> None:
        self.free_provider(job)
        self.room.set()
