"""The durable job queue table: enqueue, claim, a worker's changes to its own job, and reads.

Recovery of jobs whose worker is gone, and cancellation, live in storage/job_recovery.py.

Write functions take either a ``Database`` (they commit on their own, in a ``BEGIN IMMEDIATE``
transaction) or a connection already inside ``db.transaction()`` (they join the caller's
transaction); either way each is one trip to the connection's thread (``storage.db.write``), the
queue's hot path. A worker settles the jobs its slots finished and claims their successors in a
single transaction (``settle_then_claim``): one trip and one fsync for them all. Read functions run
directly on whichever they are given. Guards on ``lease_owner`` and ``status = 'running'`` make every change by a worker
a no-op once its lease is lost.

Time: ``run_after``, ``lease_expires_at`` and the other timestamps are wall-clock times, written by
whichever process made the change. Every statement that sets a queued job's ``run_after`` sets its
``updated_at`` to the same "now", so ``run_after - updated_at`` is the delay it was given, and an
``updated_at`` in the future says the clock that wrote it is ahead of ours (or ours stepped back):
``job_recovery.rebase`` uses that to keep due times right. ``lease_expires_at`` is only shown, never
acted on: leases are judged by the ``heartbeats`` counter (see ``job_recovery.reap``).

Deliveries: a deliver job names the publisher that must make it (``publisher``); claims and the
burst-mode reads take a ``publishers`` collection (None: every job) and skip deliveries of others.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import ValidationError

from bot.domain import GenerationJob, JobKind, JobStatus, KindDepth
from bot.errors import BadJobRow, StorageError
from storage.db import Conn, Lock, Row, SyncConn, Target, dumps, fetch_all, fetch_one, loads, write
from storage.dialect import SKIP_LOCKED

log = logging.getLogger(__name__)

_COLUMNS = (
    "id, kind, payload, status, attempts, max_attempts, run_after, lease_owner, lease_expires_at, "
    "idempotency_key, remote_id, last_error, story_id, user_id, provider, publisher, "
    "model_fallback_occurred, generation_warnings, result, created_at, updated_at, finished_at"
)
# Columns stored as JSON, with the value a NULL stands for.
_JSON_COLUMNS: dict[str, Any] = {"payload": {}, "generation_warnings": [], "result": None}


def _validate(data: dict[str, Any]) -> GenerationJob:
    data["model_fallback_occurred"] = bool(data["model_fallback_occurred"])
    return GenerationJob.model_validate(data)


def _job(row: Row) -> GenerationJob:
    """The row as a GenerationJob, or BadJobRow saying what in it cannot be read."""
    data = dict(row)
    column = "the row"
    try:
        for column, default in _JSON_COLUMNS.items():
            data[column] = loads(data[column], default)
        return _validate(data)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and ValidationError are ValueErrors
        raise BadJobRow(str(row["id"]), _unreadable(exc, column), _salvage(row)) from None


def _unreadable(exc: Exception, column: str) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error.get("loc", ())) or "the row"
        return f"{field}: {error.get('msg', 'is invalid')}"[:200]
    if isinstance(exc, json.JSONDecodeError):
        return f"{column} is not JSON ({exc.msg})"
    return f"{column}: {type(exc).__name__}: {exc}"[:200]


def _salvage(row: Row) -> GenerationJob | None:
    data = dict(row)
    for column, default in _JSON_COLUMNS.items():
        try:
            data[column] = loads(data[column], default)
        except (ValueError, TypeError):
            data[column] = default
    try:
        return _validate(data)
    except (ValueError, TypeError):
        return None


_LEFT_OUT: set[str] = set()  # broken rows already reported: a storyboard re-reads its jobs every few seconds


def _readable(rows: Iterable[Row]) -> list[GenerationJob]:
    """The rows that can be read; the others are left out, with one warning each (a claim dead-letters them)."""
    jobs = []
    for row in rows:
        try:
            jobs.append(_job(row))
        except BadJobRow as bad:
            if bad.job_id not in _LEFT_OUT:
                _LEFT_OUT.add(bad.job_id)
                log.warning("%s; left out of listings", bad)
    return jobs


Statement = tuple[str, tuple[Any, ...]]


def _rows(statement: Statement, conn: SyncConn) -> list[Row]:
    return conn.execute(*statement).fetchall()


async def _write(target: Target, statement: Statement, lock: Lock = Lock.WRITES) -> list[Row]:
    """One statement in one trip: committed on its own, or inside the caller's transaction; its RETURNING rows."""
    return await write(target, partial(_rows, statement), lock)


async def _changed(target: Target, statement: Statement, lock: Lock = Lock.WRITES) -> int:
    """How many rows a statement ending in ``RETURNING id`` changed."""
    return len(await _write(target, statement, lock))


@asynccontextmanager
async def savepoint(conn: Conn, name: str = "job_hook") -> AsyncIterator[Conn]:
    """A nested scope inside a transaction: on error only the work inside it is undone."""
    await conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        await conn.execute(f"ROLLBACK TO {name}")
        await conn.execute(f"RELEASE {name}")
        raise
    await conn.execute(f"RELEASE {name}")


# --- enqueue and claim -------------------------------------------------------------------------


def _insert(job: GenerationJob, conn: SyncConn) -> tuple[bool, Row | None]:
    """(inserted, the row already holding its idempotency key)."""
    inserted = conn.execute(
        f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 22)}) ON CONFLICT(idempotency_key) DO NOTHING "
        "RETURNING id",
        (
            job.id, job.kind.value, dumps(job.payload), job.status.value, job.attempts, job.max_attempts,
            job.run_after, job.lease_owner, job.lease_expires_at, job.idempotency_key, job.remote_id,
            job.last_error, job.story_id, job.user_id, job.provider, job.publisher,
            int(job.model_fallback_occurred), dumps(job.generation_warnings),
            None if job.result is None else dumps(job.result), job.created_at, job.updated_at, job.finished_at,
        ),
    ).fetchall()  # fmt: skip
    if inserted or job.idempotency_key is None:
        return bool(inserted), None
    return False, conn.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,)).fetchone()


async def insert(target: Target, job: GenerationJob) -> GenerationJob:
    """Insert ``job``; if its idempotency_key already exists, return the existing row instead.

    Insert and look-up are one transaction (one trip); an inserted job is returned as given, not read back.
    """
    inserted, existing = await write(target, partial(_insert, job))
    if inserted:
        return job
    if existing is None:  # pragma: no cover - a key that conflicts has a row
        raise LookupError(f"job {job.id} vanished after insert")
    return _job(existing)


def publisher_filter(publishers: int | None) -> str:
    """`` AND ...`` keeping the jobs a process with ``publishers`` publishers may take (None: all of them).

    Jobs without a publisher (everything but deliveries) are anyone's. Deliveries of a publisher this
    process lacks are left in the queue for a process that has it: a `storybot work` beside the bot
    must not write a Discord story's scenes into a storybook nobody opens, nor the bot swallow a
    command-line story's storybook pages.
    """
    if publishers is None:
        return ""
    if publishers == 0:
        return " AND publisher IS NULL"
    return f" AND (publisher IS NULL OR publisher IN ({', '.join('?' * publishers)}))"


def claim_sql(excluded_providers: int = 0, excluded_users: int = 0, publishers: int | None = None) -> str:
    """The claim statement. Parameters: owner, lease_expires_at, lease_s, now, now, *providers, *users,
    *publishers.

    The inner SELECT must read the partial index ``jobs_ready`` in order (no temp b-tree); a
    test checks that with EXPLAIN QUERY PLAN. NULL provider/user never count as excluded.
    """
    filters = ""
    if excluded_providers:
        filters += f" AND (provider IS NULL OR provider NOT IN ({', '.join('?' * excluded_providers)}))"
    if excluded_users:
        filters += f" AND (user_id IS NULL OR user_id NOT IN ({', '.join('?' * excluded_users)}))"
    filters += publisher_filter(publishers)
    return (
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?, "
        "heartbeats = heartbeats + 1, lease_s = ?, updated_at = ? "
        "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= ?"
        f"{filters} ORDER BY run_after, id LIMIT 1 {SKIP_LOCKED}) RETURNING *"
    )


@dataclass(frozen=True)
class Claim:
    """A claim of the next ready job by ``owner``: leased for ``lease_s``, skipping the excluded providers
    and users (NULL ones never count as excluded) and the deliveries of publishers not in ``publishers``
    (None: any)."""

    owner: str
    now: float
    lease_s: float
    exclude_providers: Collection[str] = ()
    exclude_users: Collection[int] = ()
    publishers: Collection[str] | None = None

    def statement(self) -> Statement:
        providers, users = sorted(self.exclude_providers), sorted(self.exclude_users)
        mine = None if self.publishers is None else sorted(self.publishers)
        sql = claim_sql(len(providers), len(users), None if mine is None else len(mine))
        now = self.now
        return sql, (self.owner, now + self.lease_s, self.lease_s, now, now, *providers, *users, *(mine or ()))


async def claim(
    target: Target,
    *,
    owner: str,
    now: float,
    lease_s: float,
    exclude_providers: Collection[str] = (),
    exclude_users: Collection[int] = (),
    publishers: Collection[str] | None = None,
) -> GenerationJob | None:
    """Atomically take the next ready job: running, attempts+1, leased to ``owner``.

    Only deliveries of ``publishers`` are taken (None: any). A row that cannot be read is still
    claimed, then BadJobRow is raised: the caller holds its lease and dead-letters it (``bury``), so
    one broken row never stops the queue.
    """
    claiming = Claim(owner, now, lease_s, exclude_providers, exclude_users, publishers)
    rows = await _write(target, claiming.statement(), Lock.CLAIMS)
    return None if not rows else _job(rows[0])


# --- a worker's changes to its own leased job --------------------------------------------------


async def heartbeat(target: Target, job_id: str, owner: str, lease_expires_at: float) -> bool:
    """Extend the lease and move its heartbeat counter; False if the job is no longer running under ``owner``."""
    statement = (
        "UPDATE jobs SET lease_expires_at = ?, heartbeats = heartbeats + 1 "
        "WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
        (lease_expires_at, job_id, owner),
    )
    return await _changed(target, statement, Lock.ROWS) == 1


async def settle(target: Target, statement: Statement) -> bool:
    """Run a settle (``finish_statement``, ``reschedule_statement``); False means the lease was lost."""
    return await _changed(target, statement, Lock.ROWS) == 1


def finish_statement(
    job_id: str,
    owner: str,
    *,
    status: JobStatus,
    result: dict[str, Any] | None,
    now: float,
    warnings: list[str] | None = None,
    fallback: bool | None = None,
    error: str | None = None,
) -> Statement:
    """Settle a running job (succeeded, failed or dead); it changes nothing once the lease is lost."""
    if status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD):
        raise ValueError(f"finish() cannot set status {status.value!r}")
    return (
        "UPDATE jobs SET status = ?, result = ?, finished_at = ?, updated_at = ?, lease_expires_at = NULL, "
        "last_error = COALESCE(?, last_error), generation_warnings = COALESCE(?, generation_warnings), "
        "model_fallback_occurred = COALESCE(?, model_fallback_occurred) "
        "WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
        (
            status.value, None if result is None else dumps(result), now, now, error,
            None if warnings is None else dumps(warnings), None if fallback is None else int(fallback),
            job_id, owner,
        ),
    )  # fmt: skip


def reschedule_statement(
    job_id: str, owner: str, *, run_after: float, error: str | None, spend_attempt: bool, now: float
) -> Statement:
    """Put a running job back in the queue; without ``spend_attempt`` its attempt is given back."""
    given_back = 0 if spend_attempt else 1
    return (
        "UPDATE jobs SET status = 'queued', run_after = ?, last_error = COALESCE(?, last_error), "
        "attempts = CASE WHEN attempts > ? THEN attempts - ? ELSE 0 END, lease_owner = NULL, lease_expires_at = NULL, "
        "updated_at = ? "
        "WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
        (run_after, error, given_back, given_back, now, job_id, owner),
    )


async def set_remote_id(target: Target, job_id: str, owner: str, remote_id: str) -> bool:
    """Record the provider's request id at once (committed when given a Database)."""
    changed = await _changed(
        target,
        (
            "UPDATE jobs SET remote_id = ? WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
            (remote_id, job_id, owner),
        ),
        Lock.ROWS,
    )
    return changed == 1


def at_limit(running: Mapping[Any, int], limit: int) -> list[Any]:
    """The keys (providers, users) with ``limit`` or more running jobs."""
    return [key for key, n in running.items() if n >= limit]


@dataclass(frozen=True)
class Successors:
    """Claims of up to ``count`` ready jobs by ``owner``, made one after another in one transaction, each
    within the limits: at most ``provider_limit`` running jobs per provider and ``user_limit`` per user,
    counting the jobs running already and each job claimed before it.

    The jobs running already are the owner's own (``by_provider``, ``by_user``: it knows which have freed
    their provider early) plus every other owner's, counted in the claim's transaction: the limits hold
    across all workers and processes on the database, since write transactions run one at a time."""

    owner: str
    now: float
    lease_s: float
    count: int
    by_provider: Mapping[str, int]
    provider_limit: int
    by_user: Mapping[int, int]
    user_limit: int
    publishers: Collection[str] | None = None

    def claim(self, by_provider: Mapping[str, int], by_user: Mapping[int, int]) -> Claim:
        return Claim(
            self.owner, self.now, self.lease_s, at_limit(by_provider, self.provider_limit),
            at_limit(by_user, self.user_limit), self.publishers,
        )  # fmt: skip


def _running_elsewhere(owner: str, conn: SyncConn) -> tuple[Counter[str], Counter[int]]:
    """Jobs running under other owners, per provider and per user (reads the jobs_leased partial index)."""
    by_provider: Counter[str] = Counter()
    by_user: Counter[int] = Counter()
    rows = conn.execute(
        "SELECT provider, user_id FROM jobs WHERE status = 'running' AND lease_owner <> ? "
        "AND (provider IS NOT NULL OR user_id IS NOT NULL)",
        (owner,),
    ).fetchall()
    for provider, user_id in rows:
        if provider:
            by_provider[provider] += 1
        if user_id is not None:
            by_user[user_id] += 1
    return by_provider, by_user


def _claim_successors(successors: Successors, count: int, conn: SyncConn) -> list[Row]:
    by_provider, by_user = _running_elsewhere(successors.owner, conn)
    by_provider.update(successors.by_provider)
    by_user.update(successors.by_user)
    rows: list[Row] = []
    while len(rows) < count:
        claimed = conn.execute(*successors.claim(by_provider, by_user).statement()).fetchall()
        if not claimed:
            break  # none is ready within the limits, and claiming more only narrows them
        rows.append(row := claimed[0])
        if row["provider"]:
            by_provider[row["provider"]] += 1
        if row["user_id"] is not None:
            by_user[row["user_id"]] += 1
    return rows


def _settle_then_claim(
    settles: Sequence[Statement], successors: Successors | None, conn: SyncConn
) -> tuple[list[bool], list[Row]]:
    settled = [len(conn.execute(*statement).fetchall()) == 1 for statement in settles]
    if successors is None:
        return settled, []
    count = min(successors.count, sum(settled)) if settles else successors.count
    conn.execute("SAVEPOINT successors")  # a claim that fails must not undo the settles
    try:
        rows = _claim_successors(successors, count, conn)
    except (sqlite3.Error, StorageError) as exc:
        conn.execute("ROLLBACK TO successors")
        log.warning("could not claim a job, will try again: %s", exc)
        rows = []
    conn.execute("RELEASE successors")
    return settled, rows


async def settle_then_claim(
    target: Target, settles: Sequence[Statement], successors: Successors | None
) -> tuple[list[bool], list[GenerationJob | BadJobRow]]:
    """Settle jobs (``finish_statement``, ``reschedule_statement``), then claim their successors, all in one
    transaction: one trip and one commit for the lot, which is how several workers' slots share an fsync.

    Returns whether each job was settled (False: its lease was lost; nothing changed) and the jobs claimed:
    one per job settled, or up to ``successors.count`` when settling none; fewer when fewer are ready. A
    claimed row that cannot be read comes back as a BadJobRow: claimed all the same, the caller holds its
    lease and dead-letters it. A claim that fails leaves the settles to commit without it.
    """
    # Settles are pinned to their leased rows; claims run one at a time (storage/db.py Lock).
    lock = Lock.ROWS if successors is None else Lock.CLAIMS
    settled, rows = await write(target, partial(_settle_then_claim, settles, successors), lock)
    claimed: list[GenerationJob | BadJobRow] = []
    for row in rows:
        try:
            claimed.append(_job(row))
        except BadJobRow as bad:
            claimed.append(bad)
    return settled, claimed


# --- reads -------------------------------------------------------------------------------------


async def get(target: Target, job_id: str) -> GenerationJob | None:
    row = await fetch_one(target, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return None if row is None else _job(row)


async def list_for_story(target: Target, story_id: str) -> list[GenerationJob]:
    """The story's jobs that can be read (a broken row is logged and left out, not raised)."""
    rows = await fetch_all(target, "SELECT * FROM jobs WHERE story_id = ? ORDER BY created_at, id", (story_id,))
    return _readable(rows)


async def counts(target: Target) -> dict[str, int]:
    """Jobs per status; every status is present, zero included."""
    found = {status.value: 0 for status in JobStatus}
    for row in await fetch_all(target, "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status"):
        found[row["status"]] = int(row["n"])
    return found


async def pending(target: Target, publishers: Collection[str] | None = None) -> dict[str, int]:
    """Queued and running jobs that a process with ``publishers`` could take (None: all of them).

    What burst mode waits for: a Discord story's deliveries, left for the bot, do not keep
    `storybot work` from ending.
    """
    mine = () if publishers is None else tuple(sorted(publishers))
    mine_only = publisher_filter(None if publishers is None else len(mine))
    # One count per status, so each reads its partial index (jobs_ready, jobs_leased), not the whole table.
    [(queued, running)] = await fetch_all(
        target,
        f"SELECT (SELECT COUNT(*) FROM jobs WHERE status = 'queued'{mine_only}), "
        f"(SELECT COUNT(*) FROM jobs WHERE status = 'running'{mine_only})",
        (*mine, *mine),
    )
    return {JobStatus.QUEUED.value: int(queued), JobStatus.RUNNING.value: int(running)}


# One branch per status, so each reads its partial index (jobs_ready, jobs_leased), never the finished jobs.
DEPTH_BY_KIND_SQL = (
    "SELECT kind, SUM(queued) AS queued, SUM(running) AS running, MIN(ready_since) AS ready_since FROM ("
    "SELECT kind, 1 AS queued, 0 AS running, CASE WHEN run_after <= ? THEN run_after END AS ready_since "
    "FROM jobs WHERE status = 'queued' "
    "UNION ALL SELECT kind, 0, 1, NULL FROM jobs WHERE status = 'running'"
    ") AS live GROUP BY kind"
)


async def depth_by_kind(target: Target, now: float) -> dict[str, KindDepth]:
    """Per job kind, every kind present (zeros included): jobs queued (ready or not) and running, and the
    age of the oldest ready queued job (how long it has been due; None when none is ready). Every job on
    the database, whichever publisher its deliveries need, as ``counts`` sees them: one query."""
    found = {kind.value: KindDepth() for kind in JobKind}
    for row in await fetch_all(target, DEPTH_BY_KIND_SQL, (now,)):
        since = row["ready_since"]
        age = None if since is None else now - float(since)
        found[row["kind"]] = KindDepth(int(row["queued"]), int(row["running"]), age)
    return found


async def left_for_others(target: Target, publishers: Collection[str]) -> int:
    """Queued deliveries that only a publisher not in ``publishers`` may make."""
    mine = tuple(sorted(publishers))
    others = f" AND publisher NOT IN ({', '.join('?' * len(mine))})" if mine else ""
    row = await fetch_one(
        target, f"SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND publisher IS NOT NULL{others}", mine
    )
    return int(row[0]) if row else 0


async def next_run_after(target: Target, publishers: Collection[str] | None = None) -> float | None:
    """The earliest run_after among queued jobs (ready or not) a process with ``publishers`` could take."""
    mine = () if publishers is None else tuple(sorted(publishers))
    row = await fetch_one(
        target,
        "SELECT MIN(run_after) FROM jobs WHERE status = 'queued'"
        f"{publisher_filter(None if publishers is None else len(mine))}",
        mine,
    )
    return None if row is None or row[0] is None else float(row[0])


async def oldest_queued_age(target: Target, now: float, publishers: Collection[str] | None = None) -> float | None:
    """How long the longest-waiting ready job (of those ``publishers`` may take) has been due (None if none is)."""
    earliest = await next_run_after(target, publishers)
    return None if earliest is None or earliest > now else now - earliest


async def queue_position(target: Target, job_id: str) -> int:
    """1 for the next queued job to run, 2 for the one after...; 0 if the job is not queued."""
    row = await fetch_one(
        target,
        "SELECT COUNT(*) FROM jobs AS ahead, jobs AS this WHERE this.id = ? AND this.status = 'queued' "
        "AND ahead.status = 'queued' AND (ahead.run_after < this.run_after "
        "OR (ahead.run_after = this.run_after AND ahead.id <= this.id))",
        (job_id,),
    )
    return int(row[0]) if row else 0


async def mean_duration(target: Target, kind: str, *, last: int = 50) -> float | None:
    """Mean seconds from due to succeeded over the ``last`` succeeded jobs of ``kind`` (None without any).

    Jobs keep no start time, so a busy queue's wait is included: good enough for an estimate.
    """
    row = await fetch_one(
        target,
        "SELECT AVG(finished_at - run_after), COUNT(*) FROM (SELECT run_after, finished_at FROM jobs "
        "WHERE kind = ? AND status = 'succeeded' AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?) "
        "AS recent",
        (kind, last),
    )
    return max(float(row[0]), 0.0) if row is not None and row[1] else None


async def any_with_key_prefix(target: Target, prefix: str) -> bool:
    """Whether some job's idempotency key starts with ``prefix``.

    A range over the UNIQUE index on idempotency_key (LIKE would scan: it is case-insensitive and
    treats ``_`` as a wildcard).
    """
    if not prefix:
        raise ValueError("any_with_key_prefix() needs a non-empty prefix")
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    row = await fetch_one(
        target, "SELECT 1 FROM jobs WHERE idempotency_key >= ? AND idempotency_key < ? LIMIT 1", (prefix, upper)
    )
    return row is not None
