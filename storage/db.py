"""The SQLite connection: pragmas, explicit write transactions, numbered migrations.

One writer connection per process (aiosqlite runs it on its own thread). ``isolation_level=None``
stops Python's sqlite3 from issuing its own DEFERRED ``BEGIN``; every write takes ``BEGIN IMMEDIATE``
so a busy database waits for ``busy_timeout`` instead of failing on the lock upgrade. An asyncio lock
serialises our own transactions on the shared connection. There are two ways to write:

- ``transaction()``: a transaction the caller fills with awaited statements (several trips to the
  connection's thread), for writes that need the loop in between (hooks, services);
- ``write(target, work)``: a plain function of the sqlite3 connection run on that thread in one trip,
  in a transaction of its own (a ``Database``) or in the caller's (a connection): the hot paths of the
  job queue, where each trip costs more than the statements it carries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.errors import DatabaseDamaged, DatabaseMissing, SchemaTooNewError, StorageError

log = logging.getLogger(__name__)

Row = sqlite3.Row
Conn = aiosqlite.Connection

BEGIN_RETRY_S = 0.02

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]
"""A function of the sqlite3 connection, run on aiosqlite's thread (``write``): it must not touch the loop."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in storage/migrations, in order."""
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def schema_version_supported() -> int:
    return max((version for version, _, _ in migrations()), default=0)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def _try_open(path: str, create: bool) -> None:
    if create:
        sqlite3.connect(path).close()
    else:  # mode=rw fails instead of creating an empty database where the operator expected theirs
        sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True).close()


# What SQLite says when the file itself is broken (as opposed to busy, locked or unwritable).
_DAMAGED_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def is_damaged(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the database file is corrupt or not a database at all."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGED_CODES


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class Database:
    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self._conn: Conn | None = None
        self._write_lock = asyncio.Lock()
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we opened
        self._lost: str | None = None

    @property
    def conn(self) -> Conn:
        if self._conn is None:
            raise StorageError("database is not open")
        return self._conn

    async def open(self, *, migrate: bool = True, create: bool = True, verify: bool = True) -> Database:
        """Connect, apply the pragmas and (``migrate``) pending migrations.

        ``create=False`` refuses a missing file (DatabaseMissing) instead of making an empty one;
        ``verify`` runs ``PRAGMA quick_check`` first, so a corrupt file is refused at once (DatabaseDamaged)
        rather than failing later, half-way through some command.
        """
        if not create and self.path != ":memory:" and not Path(self.path).exists():
            raise DatabaseMissing(
                "there is no database at DATABASE_PATH (nothing has run here yet, or DATABASE_PATH points elsewhere)"
            )
        if self.path != ":memory:":
            parent = Path(self.path).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the database folder {parent}: {exc.strerror}; set DATABASE_PATH to a writable place"
                ) from None
        try:
            # Plain sqlite3 first: when aiosqlite's own connect fails, its thread outlives the call and
            # reports to an event loop that may be closed by then (a traceback after the one-line error).
            await asyncio.to_thread(_try_open, self.path, create)
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            await self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # Before switching to WAL (which rewrites the header): a newer database is left untouched.
            await self.check_version()
            if verify:
                problems = await self.integrity_problems(quick=True, limit=1)
                if problems:
                    raise DatabaseDamaged(problems[0])
            await self._conn.execute("PRAGMA journal_mode = WAL")
            await self._conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            await self._conn.execute("PRAGMA foreign_keys = ON")
            if migrate:
                await self.migrate()
            self._identity = _identity(self.path)
            self._lost = None
        except sqlite3.Error as exc:
            await self.close()
            if is_damaged(exc):
                raise DatabaseDamaged(str(exc)) from None
            if not create and isinstance(exc, sqlite3.OperationalError) and not Path(self.path).exists():
                raise DatabaseMissing("there is no database at DATABASE_PATH") from None
            raise StorageError(f"cannot open the database {self.path}: {exc}; check DATABASE_PATH") from None
        except BaseException:
            await self.close()  # an open aiosqlite thread would keep the process from exiting
            raise
        return self

    async def integrity_problems(self, *, quick: bool = False, limit: int = 20) -> list[str]:
        """What ``PRAGMA integrity_check`` (or the faster ``quick_check``) finds wrong; empty when all is well.

        SQLite raises instead of answering when the damage is in the pages it needs to start the check.
        """
        pragma = "quick_check" if quick else "integrity_check"
        try:
            rows = await self.conn.execute_fetchall(f"PRAGMA {pragma}({int(limit)})")
        except sqlite3.DatabaseError as exc:
            if not is_damaged(exc):
                raise
            return [str(exc)]
        # SQLite heads its report with "*** in database main ***" and may break a finding over lines.
        found = [" ".join(str(row[0]).replace("*** in database main ***", "").split()) for row in rows]
        return [] if found == ["ok"] else [finding for finding in found if finding]

    def file_problem(self) -> str | None:
        """Why the open connection no longer reads the file at the database's path, or None while it does.

        Deleting or replacing a live SQLite file (``rm``, a restore copied over it, a volume remounted)
        leaves the connection on the old, unlinked inode: every later write would land where nobody
        will read it. Once noticed it stays noticed, and one error line names the path.
        """
        if self._lost is not None or self._identity is None:
            return self._lost
        now = _identity(self.path)
        if now == self._identity:
            return None
        how = "deleted" if now is None else "replaced by another file"
        self._lost = (
            f"the database file was {how} while storybot was running; restart storybot to use the file now at "
            "DATABASE_PATH"
        )
        log.error("the database file %s was %s while storybot was running; no more jobs will be taken and "
                  "/health answers 503 until storybot is restarted", self.path, how)  # fmt: skip
        return self._lost

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    async def __aenter__(self) -> Database:
        return await self.open() if self._conn is None else self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def user_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def check_version(self) -> int:
        current, supported = await self.user_version(), schema_version_supported()
        if current > supported:
            raise SchemaTooNewError(
                f"the database {self.path} has schema version {current}, newer than this storybot "
                f"understands ({supported}); upgrade storybot or point DATABASE_PATH elsewhere"
            )
        return current

    async def migrate(self) -> list[str]:
        """Apply every pending migration in one transaction; return the names applied."""
        async with self.transaction() as conn:
            current = await self.check_version()
            pending = [(v, name, sql) for v, name, sql in migrations() if v > current]
            for version, name, sql in pending:
                for statement in _split_sql(sql):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {int(version)}")
                log.info("applied migration %s", name)
        return [name for _, name, _ in pending]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any exception.

        BEGIN, COMMIT and ROLLBACK are shielded from cancellation: aiosqlite keeps running a
        statement whose await was cancelled, so an unshielded BEGIN could leave a transaction open
        on the shared connection and break every later write.
        """
        async with self._write_lock:
            conn = self.conn
            await self._begin(conn)
            try:
                yield conn
            except BaseException:
                await run_to_completion(conn.execute("ROLLBACK"))
                raise
            else:
                try:
                    await run_to_completion(conn.execute("COMMIT"))
                except sqlite3.OperationalError:
                    await run_to_completion(conn.execute("ROLLBACK"))
                    raise

    async def _begin(self, conn: Conn) -> None:
        """BEGIN IMMEDIATE, waiting up to busy_timeout for another process's write lock.

        SQLite fails at once, without calling the busy handler, while this connection still has a
        read statement open (another coroutine between execute and close on the shared connection),
        so a busy error is retried until busy_timeout has passed.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                await run_to_completion(conn.execute("BEGIN IMMEDIATE"), undo=conn)
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise StorageError(f"the database is busy: {exc}") from exc
            await asyncio.sleep(BEGIN_RETRY_S)

    async def write(self, work: Work[T]) -> T:
        """Run ``work`` in a transaction of its own (BEGIN IMMEDIATE ... COMMIT): one trip to the connection's
        thread and one fsync, under the same lock as ``transaction()``; its result.

        A busy database (another process's write lock, past busy_timeout's wait in SQLite) is retried until
        busy_timeout has passed, then raises StorageError, as does any other OperationalError. ``work`` runs
        whole or not at all, so it may run again after a busy error: it must change nothing but the database.
        A cancelled caller does not stop it: the thread runs it to its COMMIT or ROLLBACK, and nothing else
        runs on the connection in between (wrap the call in ``run_to_completion`` to learn its outcome).
        """
        async with self._write_lock:
            deadline = time.monotonic() + self.busy_timeout_ms / 1000
            while True:
                try:
                    return await on_thread(self.conn, partial(_transact, work))
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise StorageError(f"the database refused a write: {exc}") from exc
                    if time.monotonic() >= deadline:
                        raise StorageError(f"the database is busy: {exc}") from exc
                await asyncio.sleep(BEGIN_RETRY_S)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await fetch_one(self, sql, params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await fetch_all(self, sql, params)

    async def backup(self, dest: Path) -> None:
        """A consistent copy of the live database (VACUUM INTO); never copy the file itself."""
        if dest.exists():
            raise StorageError(f"{dest} already exists; choose a new file for the backup")
        dest.parent.mkdir(parents=True, exist_ok=True)
        async with self._write_lock:
            await self.conn.execute("VACUUM INTO ?", (str(dest),))


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def _transact(work: Work[T], conn: sqlite3.Connection) -> T:
    """``work`` between BEGIN IMMEDIATE and COMMIT, on the connection's thread; rolled back if anything fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


async def on_thread(conn: Conn, work: Work[T]) -> T:
    """``work(sqlite3 connection)`` on aiosqlite's thread for ``conn``: one trip, however many statements.

    aiosqlite has no public call for this; ``_execute`` is how its own methods run theirs (pinned <1).
    """
    result: T = await conn._execute(work, conn._conn)
    return result


async def write(target: Target, work: Work[T]) -> T:
    """``work`` in one trip: in a transaction of its own (a ``Database``, see ``Database.write``) or inside
    the transaction the caller holds open on ``target`` (a connection from ``transaction()``)."""
    if isinstance(target, Database):
        return await target.write(work)
    return await on_thread(target, work)


async def run_to_completion(step: Awaitable[T], *, undo: Conn | None = None) -> T:
    """Await a step that must not be cut in half by cancellation: on cancellation, wait for it to end,
    then re-raise the cancellation (its own result or error is dropped).

    aiosqlite keeps running a statement whose await was cancelled, so a ``BEGIN IMMEDIATE`` interrupted
    that way would leave a transaction open on the shared connection. With ``undo``, a step that
    completed after a cancellation is rolled back on that connection (used for BEGIN).
    """
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        failed = task.cancelled() or task.exception() is not None  # exception() marks its error retrieved
        if undo is not None and not failed:
            await undo.execute("ROLLBACK")
        raise


Target = Database | Conn
"""Where a read runs: the database, or the connection of a transaction the caller holds open."""


def connection_of(target: Target) -> Conn:
    return target.conn if isinstance(target, Database) else target


async def fetch_one(target: Target, sql: str, params: Iterable[Any] = ()) -> Row | None:
    """The first row of a query that yields at most one (by key, an aggregate, LIMIT 1, RETURNING of one row)."""
    rows = await fetch_all(target, sql, params)
    return rows[0] if rows else None


async def fetch_all(target: Target, sql: str, params: Iterable[Any] = ()) -> list[Row]:
    # One trip to aiosqlite's thread (execute, fetch and close there) instead of three, and no
    # statement is left open between awaits on the shared connection.
    return list(await connection_of(target).execute_fetchall(sql, tuple(params)))


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (our migrations put no semicolons in strings, comments or triggers)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]
