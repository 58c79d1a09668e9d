"""The PostgreSQL engine: several processes on several machines against one database (DATABASE_URL).

Through psycopg 3 rather than asyncpg. The queue's hot paths are plain functions of a connection that run
many statements in one trip to the connection's thread (storage/db.py ``write``); psycopg's synchronous
connection runs those same functions unchanged, where asyncpg would need a second, async copy of the
queue's SQL. psycopg also speaks libpq's URLs and options (``sslmode``, ``options=-csearch_path=...``)
as operators write them, and psycopg[binary] brings its own libpq.

Like SQLite here, each process has one connection, driven from one thread of its own, with statements in
autocommit unless a transaction is open. Writes keep SQLite's guarantee, one write transaction at a time
across every process: each write transaction first takes a transaction-scoped advisory lock, as SQLite's
``BEGIN IMMEDIATE`` takes its write lock, so a read-then-write in storage/ or the services never races
another process's. The queue's hot paths say when they need less (storage/db.py ``Lock``): a claim takes
only the claim lock and skips rows another transaction holds (``FOR UPDATE SKIP LOCKED``); a settle or a
heartbeat, pinned to its leased row, only that row's lock. ``lock_timeout`` bounds every wait as
``busy_timeout`` does in SQLite. Reads take no lock.

The URL may carry a password: it stays in this object and reaches no message, log or ``repr``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import FloatLoader

from bot.errors import DatabaseMissing, StorageError
from storage.db import Conn, Database, Lock, Row, Work, run_to_completion, split_sql
from storage.dialect import migration_to_postgres, to_postgres

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 10

_SCHEMA_TABLE = "storybot_schema"
"""Where PostgreSQL keeps the schema version (SQLite's ``PRAGMA user_version``)."""


class PgRow(tuple[Any, ...]):
    """A row by position or by column name, as sqlite3.Row."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    index = {column.name: n for n, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, index)


class _BoolAsInteger(Dumper):
    """Python's True/False into our INTEGER (BIGINT) flag columns, as SQLite stores them: 1 and 0."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _params(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return parameters
    return tuple(parameters) if parameters is not None else ()


def plain_error(exc: psycopg.Error) -> StorageError:
    """A psycopg error as StorageError, in words: its first line, with the URL's parts never in it."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, pg_errors.LockNotAvailable):
        return StorageError(f"the database is busy: {first}")
    if isinstance(exc, psycopg.OperationalError):
        return StorageError(f"lost the connection to the database: {first}")
    return StorageError(f"the database refused a statement: {first}")


class PgSync:
    """psycopg's connection as a ``SyncConn``: SQLite's spelling in, PostgreSQL's out (storage/dialect.py);
    psycopg's errors out as StorageError. Used only on the connection's own thread."""

    __slots__ = ("raw", "locks")

    def __init__(self, raw: psycopg.Connection[Any], locks: dict[Lock, int]) -> None:
        self.raw = raw
        self.locks = locks  # the advisory lock key of each Lock kind (ROWS has none)

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        try:
            return self.raw.execute(to_postgres(sql), _params(parameters))
        except psycopg.Error as exc:
            raise plain_error(exc) from exc

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> None:
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(to_postgres(sql), [_params(p) for p in parameters])
        except psycopg.Error as exc:
            raise plain_error(exc) from exc

    def fetchall(self, sql: str, parameters: Any = (), /) -> list[Row]:
        cursor = self.execute(sql, parameters)
        return cursor.fetchall() if cursor.description else []

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE


class _Done:
    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


class PgConn:
    """The ``Conn`` of storage/db.py: each call one trip to the connection's own thread."""

    def __init__(self, sync: PgSync, thread: ThreadPoolExecutor) -> None:
        self.sync = sync
        self._thread = thread

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def execute(self, sql: str, parameters: Any = (), /) -> _Done:
        return await self._call(self._execute, sql, parameters)

    def _execute(self, sql: str, parameters: Any) -> _Done:
        return _Done(self.sync.execute(sql, parameters).rowcount)

    async def executemany(self, sql: str, parameters: Iterable[Any], /) -> None:
        await self._call(self.sync.executemany, sql, list(parameters))

    async def execute_fetchall(self, sql: str, parameters: Any = (), /) -> list[Row]:
        return await self._call(self.sync.fetchall, sql, parameters)

    async def run(self, work: Work[T], /) -> T:
        return await self._call(work, self.sync)

    @property
    def in_transaction(self) -> bool:
        return self.sync.in_transaction


def describe(url: str) -> str:
    """Where a URL points, for messages: database, host and port; never the user's password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the PostgreSQL database at DATABASE_URL (which cannot be read as a PostgreSQL URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"the PostgreSQL database {parts.get('dbname') or parts.get('user') or '?'} on {host}:{port}"


def lock_key(lock: Lock, schema: str) -> int:
    """The advisory lock of ``lock`` (storage/db.py Lock): one per schema, so that two storybots in two
    schemas of one database (as the tests run) do not wait for each other."""
    digest = hashlib.blake2b(f"storybot {lock.value} in {schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _connect(url: str, busy_timeout_ms: int, synchronous: str) -> PgSync:
    raw = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="storybot")
    raw.row_factory = _rows
    raw.adapters.register_dumper(bool, _BoolAsInteger)
    raw.adapters.register_loader("numeric", FloatLoader)  # SUM and AVG of integers, as SQLite gives them
    raw.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
    raw.execute("SET synchronous_commit = " + ("off" if synchronous.upper() == "OFF" else "on"))
    [(schema,)] = raw.execute("SELECT current_schema()").fetchall()
    return PgSync(raw, {lock: lock_key(lock, str(schema)) for lock in (Lock.WRITES, Lock.CLAIMS)})


def _transact(work: Work[T], lock: Lock, conn: PgSync) -> T:
    """``work`` between BEGIN (and ``lock``'s advisory lock, if it has one) and COMMIT, on the connection's
    thread; rolled back if anything fails."""
    conn.execute("BEGIN")
    try:
        if lock in conn.locks:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (conn.locks[lock],))
        result = work(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction and not conn.raw.closed:
            conn.raw.execute("ROLLBACK")
        raise
    return result


class PostgresDatabase(Database):
    engine = "postgresql"

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
        super().__init__(busy_timeout_ms=busy_timeout_ms)
        self._url = url
        self.synchronous = synchronous
        self._where = describe(url)
        self._conn: PgConn | None = None
        self._thread: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"PostgresDatabase({self._where})"

    @property
    def where(self) -> str:
        return self._where

    @property
    def conn(self) -> PgConn:
        if self._conn is None:
            raise StorageError("database is not open")
        return self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def open(self, *, migrate: bool = True, create: bool = True, verify: bool = True) -> PostgresDatabase:
        """Connect and (``migrate``) apply pending migrations.

        The database itself must exist (``createdb``); ``create=False`` also refuses one that holds no
        storybot schema yet (DatabaseMissing). PostgreSQL checks its own pages, so ``verify`` adds nothing.
        """
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storybot-postgres")
        loop = asyncio.get_running_loop()
        try:
            try:
                sync = await loop.run_in_executor(
                    self._thread, _connect, self._url, self.busy_timeout_ms, self.synchronous
                )
            except psycopg.ProgrammingError:  # its message quotes the URL, password and all
                raise StorageError("DATABASE_URL cannot be read as a PostgreSQL URL; check its form") from None
            except psycopg.Error as exc:
                first = self._scrubbed((str(exc).strip().splitlines() or ["no answer"])[-1])
                if isinstance(exc, psycopg.OperationalError) and "does not exist" in first:
                    raise DatabaseMissing(f"{self._where} does not exist; create it (createdb) first") from None
                raise StorageError(f"cannot connect to {self._where}: {first}; check DATABASE_URL") from None
            self._conn = PgConn(sync, self._thread)
            current = await self.check_version()
            if not create and current == 0:
                raise DatabaseMissing(f"{self._where} holds no storybot database yet (nothing has run there)")
            if migrate:
                await self.migrate()
        except BaseException:
            await self.close()
            raise
        return self

    def _scrubbed(self, text: str) -> str:
        """``text`` without the URL or its password, should a driver's message quote them."""
        text = text.replace(self._url, "DATABASE_URL")
        try:
            password = conninfo_to_dict(self._url).get("password")
        except psycopg.ProgrammingError:
            password = None
        return text.replace(str(password), "***") if password else text

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        thread, self._thread = self._thread, None
        if conn is not None and thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, conn.sync.raw.close)
        if thread is not None:
            thread.shutdown(wait=False)

    async def user_version(self) -> int:
        # pg_tables, not to_regclass: after waiting for the write lock, a process migrating beside another must
        # see the table the other just made, and to_regclass may answer from a catalog cache that the wait did
        # not refresh (three `db migrate` at once on an empty schema: 5 of 15 re-applied 0001 and failed).
        found = await self.conn.execute_fetchall(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?)",
            (_SCHEMA_TABLE,),
        )
        if not found or not found[0][0]:
            return 0
        rows = await self.conn.execute_fetchall(f"SELECT MAX(version) FROM {_SCHEMA_TABLE}")
        return int(rows[0][0] or 0) if rows else 0

    async def _apply(self, conn: Conn, version: int, name: str, sql: str) -> None:
        for statement in split_sql(sql):
            await conn.execute(migration_to_postgres(statement))
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {_SCHEMA_TABLE} (version INTEGER NOT NULL)")
        await conn.execute(f"DELETE FROM {_SCHEMA_TABLE}")
        await conn.execute(f"INSERT INTO {_SCHEMA_TABLE} (version) VALUES (?)", (version,))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConn]:
        """BEGIN, the write lock, ... COMMIT; rolled back on any exception. BEGIN, COMMIT and ROLLBACK are
        shielded from cancellation, as in SQLite (storage/sqlite.py)."""
        async with self._write_lock:
            conn = self.conn
            await run_to_completion(conn.execute("BEGIN"), undo=partial(conn.execute, "ROLLBACK"))
            try:
                await conn.execute("SELECT pg_advisory_xact_lock(?)", (conn.sync.locks[Lock.WRITES],))
                yield conn
            except BaseException:
                await run_to_completion(self._rollback(conn))
                raise
            else:
                try:
                    await run_to_completion(conn.execute("COMMIT"))
                except StorageError:
                    await run_to_completion(self._rollback(conn))
                    raise

    async def _rollback(self, conn: PgConn) -> None:
        if conn.sync.raw.closed:
            return  # the server went away, and the transaction with it
        await conn.execute("ROLLBACK")

    async def write(self, work: Work[T], lock: Lock = Lock.WRITES) -> T:
        async with self._write_lock:
            return await self.conn.run(partial(_transact, work, lock))

    async def server_time(self) -> float:
        """The server's wall clock, in seconds since the epoch (bot.clock.ServerClock)."""
        [(now,)] = await self.conn.execute_fetchall("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
        return float(now)

    async def integrity_problems(self, *, quick: bool = False, limit: int = 20) -> list[str]:
        """PostgreSQL checks its own pages as it reads them; this reads every storybot table once."""
        problems: list[str] = []
        tables = await self.conn.execute_fetchall(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        )
        for (table,) in tables:
            try:
                await self.conn.execute_fetchall(f'SELECT COUNT(*) FROM "{table}"')
            except StorageError as exc:
                problems.append(f"{table}: {exc}")
            if len(problems) >= limit:
                break
        return problems

    async def backup(self, dest: Path) -> str:
        """A consistent dump of storybot's schema with pg_dump (custom format: restore with pg_restore)."""
        if dest.exists():
            raise StorageError(f"{dest} already exists; choose a new file for the backup")
        pg_dump = shutil.which("pg_dump")
        if pg_dump is None:
            raise StorageError(
                "pg_dump is not installed here; install PostgreSQL's client tools (Debian: postgresql-client), "
                "or back up the server with its own tools"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        [(schema,)] = await self.conn.execute_fetchall("SELECT current_schema()")
        parts = conninfo_to_dict(self._url)
        password = parts.pop("password", None)
        env = {**os.environ, **({"PGPASSWORD": str(password)} if password else {})}
        process = await asyncio.create_subprocess_exec(
            pg_dump, "--format=custom", f"--schema={schema}", f"--file={dest}",
            f"--dbname={make_conninfo('', **parts)}",
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
        if process.returncode != 0:
            dest.unlink(missing_ok=True)
            reason = (err.decode(errors="replace").strip().splitlines() or ["no reason given"])[-1]
            raise StorageError(f"pg_dump failed: {reason}")
        return "a pg_dump archive (custom format; restore it with pg_restore)"
