"""The SQLite engine, the embedded default: pragmas, explicit write transactions, the schema version.

One connection per process (aiosqlite runs it on its own thread). ``isolation_level=None``
stops Python's sqlite3 from issuing its own DEFERRED ``BEGIN``; every write takes ``BEGIN IMMEDIATE``
so a busy database waits for ``busy_timeout`` instead of failing on the lock upgrade. An asyncio lock
serialises our own transactions on the shared connection. What callers may rely on is in storage/db.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.errors import DatabaseDamaged, DatabaseMissing, StorageError
from storage.db import Conn, Database, Lock, Row, Work, run_to_completion, split_sql

log = logging.getLogger(__name__)

BEGIN_RETRY_S = 0.02

T = TypeVar("T")


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


class SqliteConn:
    """aiosqlite's connection with the ``Conn`` methods of storage/db.py."""

    __slots__ = ("raw",)

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, parameters: Any = (), /) -> aiosqlite.Cursor:
        return await self.raw.execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Iterable[Any], /) -> None:
        await self.raw.executemany(sql, parameters)

    async def execute_fetchall(self, sql: str, parameters: Any = (), /) -> list[Row]:
        return list(await self.raw.execute_fetchall(sql, parameters))

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    async def run(self, work: Work[T], /) -> T:
        """``work(sqlite3 connection)`` on aiosqlite's thread: one trip, however many statements.

        aiosqlite has no public call for this; ``_execute`` is how its own methods run theirs (pinned <1).
        """
        result: T = await self.raw._execute(work, self.raw._conn)
        return result


class SqliteDatabase(Database):
    engine = "sqlite"

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
        super().__init__(busy_timeout_ms=busy_timeout_ms)
        self.path = str(path)
        self.synchronous = synchronous
        self._conn: SqliteConn | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we opened
        self._lost: str | None = None

    @property
    def conn(self) -> SqliteConn:
        if self._conn is None:
            raise StorageError("database is not open")
        return self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    @property
    def where(self) -> str:
        return self.path

    async def open(self, *, migrate: bool = True, create: bool = True, verify: bool = True) -> SqliteDatabase:
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
            raw = await aiosqlite.connect(self.path, isolation_level=None)
            raw.row_factory = sqlite3.Row
            self._conn = SqliteConn(raw)
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
            await conn.raw.close()

    async def user_version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def _apply(self, conn: Conn, version: int, name: str, sql: str) -> None:
        for statement in split_sql(sql):
            await conn.execute(statement)
        await conn.execute(f"PRAGMA user_version = {int(version)}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteConn]:
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

    async def _begin(self, conn: SqliteConn) -> None:
        """BEGIN IMMEDIATE, waiting up to busy_timeout for another process's write lock.

        SQLite fails at once, without calling the busy handler, while this connection still has a
        read statement open (another coroutine between execute and close on the shared connection),
        so a busy error is retried until busy_timeout has passed.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                await run_to_completion(conn.execute("BEGIN IMMEDIATE"), undo=partial(conn.execute, "ROLLBACK"))
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise StorageError(f"the database is busy: {exc}") from exc
            await asyncio.sleep(BEGIN_RETRY_S)

    async def write(self, work: Work[T], lock: Lock = Lock.WRITES) -> T:
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
                    return await self.conn.run(partial(_transact, work))
                except sqlite3.OperationalError as exc:
                    if not _busy(exc):
                        raise StorageError(f"the database refused a write: {exc}") from exc
                    if time.monotonic() >= deadline:
                        raise StorageError(f"the database is busy: {exc}") from exc
                await asyncio.sleep(BEGIN_RETRY_S)

    async def backup(self, dest: Path) -> str:
        """A consistent copy of the live database (VACUUM INTO); never copy the file itself."""
        if dest.exists():
            raise StorageError(f"{dest} already exists; choose a new file for the backup")
        dest.parent.mkdir(parents=True, exist_ok=True)
        async with self._write_lock:
            await self.conn.execute("VACUUM INTO ?", (str(dest),))
        return "a consistent copy made with VACUUM INTO"


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
