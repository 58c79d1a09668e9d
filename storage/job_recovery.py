"""Handing back jobs whose worker is gone, keeping due times right, and cancelling jobs.

A worker only ever changes its own leased job (storage/jobs.py); the statements here act on jobs
regardless of who holds them: expired leases, leases of dead processes on this host, due times
written by a clock ahead of ours, and cancellation by job or story. They are apart because their
rules (interruptions instead of attempts, giving up after MAX_INTERRUPTIONS) concern the queue's
supervision, not a job's run. Targets work as in storage/jobs.py: a ``Database`` commits on its
own, a connection joins its caller's transaction.

Clocks: no decision here compares our wall clock with a time another process wrote, since the two
clocks may disagree by any amount (a step, another host). A lease is over when its heartbeat counter
stands still for the lease on our monotonic clock (``LeaseWatch``); a due time in the future is
trusted only for as long as it was asked to wait (``rebase``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bot.domain import GenerationJob
from bot.errors import BadJobRow
from storage.db import Database, Row, SyncConn, Target, fetch_one, write
from storage.jobs import _changed, _job

log = logging.getLogger(__name__)

MAX_INTERRUPTIONS = 20  # runs of one job cut short by a dead worker before it is given up
# How far ahead of ours another clock may be before its due times are re-based. Below it a job waits
# at most this much longer; above it, re-basing every job another process just wrote would only churn.
REBASE_SKEW_S = 1.0


def _recover(conn: SyncConn, where: str, params: tuple[Any, ...], now: float, reason: str) -> list[Row]:
    """Running jobs matching ``where`` (their worker died or lost the lease) go back to the queue now.

    The interrupted run gives its attempt back and counts as an interruption instead: a restart is not
    the provider failing. A job interrupted MAX_INTERRUPTIONS times is given up, as it may be what kills
    the worker. Runs on the connection's thread (``storage.db.write``); returns the rows given up.
    """
    dead_rows = conn.execute(
        "UPDATE jobs SET status = 'dead', interruptions = interruptions + 1, finished_at = ?, updated_at = ?, "
        "lease_owner = NULL, lease_expires_at = NULL, last_error = ? "
        f"WHERE status = 'running' AND interruptions + 1 >= ? AND {where} RETURNING *",
        (now, now, f"{reason} {MAX_INTERRUPTIONS} times while running it; given up", MAX_INTERRUPTIONS, *params),
    ).fetchall()
    requeued = conn.execute(
        "UPDATE jobs SET status = 'queued', attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, "
        "interruptions = interruptions + 1, "
        "run_after = ?, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL, last_error = ? "
        f"WHERE status = 'running' AND {where} RETURNING id, kind, interruptions",
        (now, now, reason, *params),
    ).fetchall()
    for row in requeued:
        log.warning(
            "job %s kind=%s: back in the queue (%s; interruption %d)",
            row["id"],
            row["kind"],
            reason,
            row["interruptions"],
        )
    return dead_rows


def _given_up(rows: list[Row]) -> list[GenerationJob]:
    """The jobs just marked dead; a row that cannot be read stays dead and is only logged (or salvaged)."""
    jobs = []
    for row in rows:
        try:
            jobs.append(_job(row))
        except BadJobRow as bad:
            log.error("%s; it is dead", bad)
            if bad.salvaged is not None:
                jobs.append(bad.salvaged)
    return jobs


@dataclass(frozen=True)
class _Sighting:
    owner: str | None
    heartbeats: int
    since: float  # our monotonic clock when we first saw this (owner, heartbeats)


class LeaseWatch:
    """One process's memory of other workers' heartbeats, to judge their leases without their clocks.

    A running job's lease is over once its (owner, heartbeats) has stood still for longer than its
    lease, measured on our monotonic clock from the first time we saw that pair. An owner that is
    alive beats every lease/3, so however its wall clock or ours steps, and whatever time another host
    keeps, a live job is never taken from it; a dead owner's counter stands still, so its job comes back
    within about one lease (plus one maintenance period). The price: a reaper that just started waits a
    full lease before taking back a job it never saw beat (release_orphans finds a dead process on this
    host at once).
    """

    def __init__(self) -> None:
        self._seen: dict[str, _Sighting] = {}

    def expired(self, rows: Iterable[Row], monotonic: float, default_lease_s: float) -> list[str]:
        """The ids among ``rows`` (running jobs: id, lease_owner, heartbeats, lease_s) whose lease is over."""
        seen: dict[str, _Sighting] = {}
        over = []
        for row in rows:
            owner, beats = row["lease_owner"], int(row["heartbeats"])
            sighting = self._seen.get(row["id"])
            if sighting is None or (sighting.owner, sighting.heartbeats) != (owner, beats):
                sighting = _Sighting(owner, beats, monotonic)  # new, or it beat: the lease starts again
            seen[row["id"]] = sighting
            if monotonic - sighting.since > (row["lease_s"] or default_lease_s):
                over.append(row["id"])
        self._seen = seen  # jobs no longer running are forgotten
        return over


def _reap(
    watch: LeaseWatch,
    now: float,
    monotonic: float,
    default_lease_s: float,
    keep_ids: Collection[str],
    conn: SyncConn,
) -> list[Row]:
    rows = conn.execute("SELECT id, lease_owner, heartbeats, lease_s FROM jobs WHERE status = 'running'").fetchall()
    watched = [row for row in rows if row["id"] not in keep_ids]
    over = watch.expired(watched, monotonic, default_lease_s)
    if not over:
        return []
    marks = ", ".join("?" * len(over))
    return _recover(conn, f"id IN ({marks})", tuple(over), now, "lease expired")


async def reap(
    target: Target,
    watch: LeaseWatch,
    *,
    now: float,
    monotonic: float,
    default_lease_s: float,
    keep_ids: Collection[str] = (),
) -> list[GenerationJob]:
    """Jobs whose heartbeat stood still for their lease go back to the queue as interruptions (see
    ``_recover``); returns the jobs given up. Jobs in ``keep_ids`` are running in this process: left alone.

    Read and requeue are one write transaction (one trip), so a heartbeat cannot land between the two.
    """
    return _given_up(await write(target, partial(_reap, watch, now, monotonic, default_lease_s, keep_ids)))


async def rebase(target: Target, now: float) -> int:
    """Queued jobs scheduled by a clock ahead of ours keep their delay, counted from now; returns how many.

    A job's ``updated_at`` is the "now" its ``run_after`` was computed from. One in our future was
    written by a clock ahead of ours, or before ours stepped back: its due time would then sit up to
    the whole step away (an hour's step freezes a 5-second retry for an hour). Re-basing it to now plus
    its delay bounds the wait by the delay it was given. A clock stepping forward, or one behind ours,
    makes jobs due early instead: a retry or a poll a little early, which idempotent jobs take.
    """
    bound = now + REBASE_SKEW_S
    if isinstance(target, Database):  # the usual answer is "none": a read, not the write lock
        ahead = await fetch_one(target, "SELECT 1 FROM jobs WHERE status = 'queued' AND updated_at > ? LIMIT 1",
                                (bound,))  # fmt: skip
        if ahead is None:
            return 0
    moved = await _changed(
        target,
        (
            "UPDATE jobs SET run_after = ? + CASE WHEN run_after > updated_at THEN run_after - updated_at ELSE 0 END, "
            "updated_at = ? "
            "WHERE status = 'queued' AND updated_at > ? RETURNING id",
            (now, now, bound),
        ),
    )
    if moved:
        log.warning("%d queued job(s) were scheduled by a clock ahead of this one (or before it stepped back); "
                    "their due times now count from this clock", moved)  # fmt: skip
    return moved


def parse_owner(owner: str) -> tuple[str, int] | None:
    """``"host:pid:random"`` -> (host, pid), or None for anything else."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _release_orphans(
    host: str, alive: Callable[[int], bool], now: float, keep_owners: Collection[str], conn: SyncConn
) -> list[Row]:
    rows = conn.execute(
        "SELECT id, lease_owner FROM jobs WHERE status = 'running' AND lease_owner LIKE ?", (f"{host}:%",)
    ).fetchall()
    orphans = []
    for row in rows:
        parsed = parse_owner(row["lease_owner"])
        if parsed and parsed[0] == host and row["lease_owner"] not in keep_owners and not alive(parsed[1]):
            orphans.append(row["id"])
    if not orphans:
        return []
    marks = ", ".join("?" * len(orphans))
    return _recover(conn, f"id IN ({marks})", tuple(orphans), now, "worker process died")


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
    are live workers and are left alone. Returns the jobs marked dead. ``alive`` runs on the
    connection's thread.
    """
    return _given_up(await write(target, partial(_release_orphans, host, alive, now, keep_owners)))


async def cancel(target: Target, *, job_id: str | None = None, story_id: str | None = None, now: float) -> int:
    """Cancel queued and running jobs by id or by story; returns how many were cancelled."""
    if (job_id is None) == (story_id is None):
        raise ValueError("cancel() needs exactly one of job_id or story_id")
    column, value = ("id", job_id) if job_id is not None else ("story_id", story_id)
    return await _changed(
        target,
        (
            "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?, lease_expires_at = NULL "
            f"WHERE {column} = ? AND status IN ('queued', 'running') RETURNING id",
            (now, now, value),
        ),
    )
