"""The durable job queue table: enqueue, claim, a worker's changes to its own job, and reads.

Recovery of jobs whose worker is gone, and cancellation, live in storage/job_recovery.py.

Write functions take either a ``Database`` (they commit on their own: one statement as SQLite's
autocommit under the write lock, several in a ``BEGIN IMMEDIATE`` transaction) or a connection
already inside ``db.transaction()`` (they join the caller's transaction). Read
functions run directly on whichever they are given. Guards on ``lease_owner`` and
``status = 'running'`` make every change by a worker a no-op once its lease is lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from typing import Any

from bot.domain import GenerationJob, JobStatus
from storage.db import Conn, Database, Row, Target, dumps, fetch_all, fetch_one, loads

_COLUMNS = (
    "id, kind, payload, status, attempts, max_attempts, run_after, lease_owner, lease_expires_at, "
    "idempotency_key, remote_id, last_error, story_id, user_id, provider, composition_settings, "
    "model_fallback_occurred, generation_warnings, result, created_at, updated_at, finished_at"
)
_JSON_DEFAULTS: dict[str, Any] = {"payload": {}, "composition_settings": {}, "generation_warnings": []}


def _job(row: Row) -> GenerationJob:
    data = dict(row)
    for column, default in _JSON_DEFAULTS.items():
        data[column] = loads(data[column], default)
    data["result"] = loads(data["result"])
    data["model_fallback_occurred"] = bool(data["model_fallback_occurred"])
    return GenerationJob.model_validate(data)


@asynccontextmanager
async def _writing(target: Target) -> AsyncIterator[Conn]:
    if isinstance(target, Database):
        async with target.transaction() as conn:
            yield conn
    else:
        yield target


async def _write(target: Target, sql: str, params: Iterable[Any]) -> list[Row]:
    """One statement: inside the caller's transaction, or committed on its own; its RETURNING rows."""
    if isinstance(target, Database):
        return await target.write_alone(sql, params)
    return list(await target.execute_fetchall(sql, tuple(params)))


async def _changed(target: Target, sql: str, params: Iterable[Any]) -> int:
    """How many rows a statement ending in ``RETURNING id`` changed."""
    return len(await _write(target, sql, params))


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


async def insert(target: Target, job: GenerationJob) -> GenerationJob:
    """Insert ``job``; if its idempotency_key already exists, return the existing row instead."""
    async with _writing(target) as conn:
        # RETURNING yields the row only when it was inserted; a key already taken reads the existing job.
        row = await fetch_one(
            conn,
            f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 22)}) ON CONFLICT(idempotency_key) DO NOTHING "
            "RETURNING *",
            (
                job.id, job.kind.value, dumps(job.payload), job.status.value, job.attempts, job.max_attempts,
                job.run_after, job.lease_owner, job.lease_expires_at, job.idempotency_key, job.remote_id,
                job.last_error, job.story_id, job.user_id, job.provider, dumps(job.composition_settings),
                int(job.model_fallback_occurred), dumps(job.generation_warnings),
                None if job.result is None else dumps(job.result), job.created_at, job.updated_at, job.finished_at,
            ),
        )  # fmt: skip
        if row is None and job.idempotency_key is not None:
            row = await fetch_one(conn, "SELECT * FROM jobs WHERE idempotency_key = ?", (job.idempotency_key,))
    if row is None:  # pragma: no cover - the insert above guarantees a row
        raise LookupError(f"job {job.id} vanished after insert")
    return _job(row)


def claim_sql(excluded_providers: int = 0, excluded_users: int = 0) -> str:
    """The claim statement. Parameters: owner, lease_expires_at, now, now, *providers, *users.

    The inner SELECT must read the partial index ``jobs_ready`` in order (no temp b-tree); a
    test checks that with EXPLAIN QUERY PLAN. NULL provider/user never count as excluded.
    """
    filters = ""
    if excluded_providers:
        filters += f" AND (provider IS NULL OR provider NOT IN ({', '.join('?' * excluded_providers)}))"
    if excluded_users:
        filters += f" AND (user_id IS NULL OR user_id NOT IN ({', '.join('?' * excluded_users)}))"
    return (
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_owner = ?, lease_expires_at = ?, "
        "updated_at = ? WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= ?"
        f"{filters} ORDER BY run_after, id LIMIT 1) RETURNING *"
    )


async def claim(
    target: Target,
    *,
    owner: str,
    now: float,
    lease_s: float,
    exclude_providers: Collection[str] = (),
    exclude_users: Collection[int] = (),
) -> GenerationJob | None:
    """Atomically take the next ready job: running, attempts+1, leased to ``owner``."""
    providers, users = sorted(exclude_providers), sorted(exclude_users)
    sql = claim_sql(len(providers), len(users))
    rows = await _write(target, sql, (owner, now + lease_s, now, now, *providers, *users))
    return _job(rows[0]) if rows else None


# --- a worker's changes to its own leased job --------------------------------------------------


async def heartbeat(target: Target, job_id: str, owner: str, lease_expires_at: float) -> bool:
    """Extend the lease; False if the job is no longer running under ``owner``."""
    changed = await _changed(
        target,
        "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
        (lease_expires_at, job_id, owner),
    )
    return changed == 1


async def finish(
    target: Target,
    job_id: str,
    owner: str,
    *,
    status: JobStatus,
    result: dict[str, Any] | None,
    now: float,
    warnings: list[str] | None = None,
    fallback: bool | None = None,
    error: str | None = None,
) -> bool:
    """Settle a running job (succeeded, failed or dead). False means the lease was lost."""
    if status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.DEAD):
        raise ValueError(f"finish() cannot set status {status.value!r}")
    changed = await _changed(
        target,
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
    return changed == 1


async def reschedule(
    target: Target,
    job_id: str,
    owner: str,
    *,
    run_after: float,
    error: str | None,
    spend_attempt: bool,
    now: float,
) -> bool:
    """Put a running job back in the queue; without ``spend_attempt`` its attempt is given back."""
    changed = await _changed(
        target,
        "UPDATE jobs SET status = 'queued', run_after = ?, last_error = COALESCE(?, last_error), "
        "attempts = MAX(attempts - ?, 0), lease_owner = NULL, lease_expires_at = NULL, updated_at = ? "
        "WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
        (run_after, error, 0 if spend_attempt else 1, now, job_id, owner),
    )
    return changed == 1


async def set_remote_id(target: Target, job_id: str, owner: str, remote_id: str) -> bool:
    """Record the provider's request id at once (committed when given a Database)."""
    changed = await _changed(
        target,
        "UPDATE jobs SET remote_id = ? WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
        (remote_id, job_id, owner),
    )
    return changed == 1


# --- reads -------------------------------------------------------------------------------------


async def get(target: Target, job_id: str) -> GenerationJob | None:
    row = await fetch_one(target, "SELECT * FROM jobs WHERE id = ?", (job_id,))
    return None if row is None else _job(row)


async def list_for_story(target: Target, story_id: str) -> list[GenerationJob]:
    rows = await fetch_all(target, "SELECT * FROM jobs WHERE story_id = ? ORDER BY created_at, id", (story_id,))
    return [_job(row) for row in rows]


async def counts(target: Target) -> dict[str, int]:
    """Jobs per status; every status is present, zero included."""
    found = {status.value: 0 for status in JobStatus}
    for row in await fetch_all(target, "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status"):
        found[row["status"]] = int(row["n"])
    return found


async def next_run_after(target: Target) -> float | None:
    """The earliest run_after among queued jobs (ready or not)."""
    row = await fetch_one(target, "SELECT MIN(run_after) FROM jobs WHERE status = 'queued'")
    return None if row is None or row[0] is None else float(row[0])


async def oldest_queued_age(target: Target, now: float) -> float | None:
    """How long the longest-waiting ready job has been due, in seconds (None if none is due)."""
    earliest = await next_run_after(target)
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
        "WHERE kind = ? AND status = 'succeeded' AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?)",
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
