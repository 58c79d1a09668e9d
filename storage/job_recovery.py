"""Handing back jobs whose worker is gone, and cancelling jobs: the queue's recovery statements.

A worker only ever changes its own leased job (storage/jobs.py); the statements here act on jobs
regardless of who holds them: expired leases, leases of dead processes on this host, and
cancellation by job or story. They are apart because their rules (interruptions instead of
attempts, giving up after MAX_INTERRUPTIONS) concern the queue's supervision, not a job's run.
Targets work as in storage/jobs.py: a ``Database`` commits on its own, a connection joins its
caller's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from bot.domain import GenerationJob
from storage.db import Conn, Target, fetch_all
from storage.jobs import _changed, _job, _writing

log = logging.getLogger(__name__)

MAX_INTERRUPTIONS = 20  # runs of one job cut short by a dead worker before it is given up


async def _recover(conn: Conn, where: str, params: tuple[Any, ...], now: float, reason: str) -> list[GenerationJob]:
    """Running jobs matching ``where`` (their worker died or lost the lease) go back to the queue now.

    The interrupted run gives its attempt back and counts as an interruption instead: a restart is not
    the provider failing. A job interrupted MAX_INTERRUPTIONS times is given up, as it may be what kills
    the worker.
    """
    dead_rows = await fetch_all(
        conn,
        "UPDATE jobs SET status = 'dead', interruptions = interruptions + 1, finished_at = ?, updated_at = ?, "
        "lease_owner = NULL, lease_expires_at = NULL, last_error = ? "
        f"WHERE status = 'running' AND interruptions + 1 >= ? AND {where} RETURNING *",
        (now, now, f"{reason} {MAX_INTERRUPTIONS} times while running it; given up", MAX_INTERRUPTIONS, *params),
    )
    requeued = await fetch_all(
        conn,
        "UPDATE jobs SET status = 'queued', attempts = MAX(attempts - 1, 0), interruptions = interruptions + 1, "
        "run_after = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL, last_error = ? "
        f"WHERE status = 'running' AND {where} RETURNING id, kind, interruptions",
        (now, now, reason, *params),
    )
    for row in requeued:
        log.warning(
            "job %s kind=%s: back in the queue (%s; interruption %d)",
            row["id"],
            row["kind"],
            reason,
            row["interruptions"],
        )
    return [_job(row) for row in dead_rows]


async def reap(target: Target, now: float) -> list[GenerationJob]:
    """Expired leases go back to the queue as interruptions (see ``_recover``); returns the jobs given up."""
    async with _writing(target) as conn:
        return await _recover(conn, "lease_expires_at < ?", (now,), now, "lease expired")


def parse_owner(owner: str) -> tuple[str, int] | None:
    """``"host:pid:random"`` -> (host, pid), or None for anything else."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


async def release_orphans(
    target: Target,
    host: str,
    alive: Callable[[int], bool],
    now: float,
    *,
    keep_owners: Collection[str] = (),
) -> list[GenerationJob]:
    """Hand back at once the running jobs leased on ``host`` by processes that no longer exist.

    Each counts as an interruption, not an attempt (see ``_recover``). Owners in ``keep_owners``
    are live workers and are left alone. Returns the jobs marked dead.
    """
    async with _writing(target) as conn:
        rows = await fetch_all(conn, "SELECT id, lease_owner FROM jobs WHERE status = 'running' AND lease_owner LIKE ?",
                          (f"{host}:%",))  # fmt: skip
        orphans = []
        for row in rows:
            parsed = parse_owner(row["lease_owner"])
            if parsed and parsed[0] == host and row["lease_owner"] not in keep_owners and not alive(parsed[1]):
                orphans.append(row["id"])
        if not orphans:
            return []
        marks = ", ".join("?" * len(orphans))
        return await _recover(conn, f"id IN ({marks})", tuple(orphans), now, "worker process died")


async def cancel(target: Target, *, job_id: str | None = None, story_id: str | None = None, now: float) -> int:
    """Cancel queued and running jobs by id or by story; returns how many were cancelled."""
    if (job_id is None) == (story_id is None):
        raise ValueError("cancel() needs exactly one of job_id or story_id")
    column, value = ("id", job_id) if job_id is not None else ("story_id", story_id)
    return await _changed(
        target,
        "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?, lease_expires_at = NULL "
        f"WHERE {column} = ? AND status IN ('queued', 'running') RETURNING id",
        (now, now, value),
    )
