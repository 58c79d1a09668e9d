"""The database, whichever engine holds it: what the storage modules and the services may rely on.

Two engines hold the same schema, queue and data: SQLite (storage/sqlite.py, the embedded default) and
PostgreSQL (storage/postgres.py, for several processes on several machines). Both give the same
guarantees: one write transaction at a time (SQLite's ``BEGIN IMMEDIATE``; a transaction-scoped advisory
lock on PostgreSQL), explicit transactions on a connection with no implicit ones, and reads that never
wait for a write. The SQL in storage/ is written once, in SQLite's spelling; storage/dialect.py turns it
into PostgreSQL's where the two differ (placeholders, a few types).

There are two ways to write:

- ``transaction()``: a transaction the caller fills with awaited statements (several trips to the
  connection's thread), for writes that need the loop in between (hooks, services);
- ``write(target, work)``: a plain function of the engine's own connection run on that connection's
  thread in one trip, in a transaction of its own (a ``Database``) or in the caller's (a connection):
  the hot paths of the job queue, where each trip costs more than the statements it carries.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Row(Protocol):
    """A result row: by position or by column name (sqlite3.Row, and storage/postgres.py's rows)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    """What a statement awaited on a ``Conn`` tells: how many rows it changed."""

    @property
    def rowcount(self) -> int: ...


Work = Callable[[Any], T]
"""A function of the engine's connection (a ``SyncConn``), run on that connection's thread (``write``): it
must not touch the loop, and it may run again after a busy error, so it changes nothing but the database."""


class SyncConn(Protocol):
    """The engine's connection as ``write``'s work sees it, on the connection's own thread."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...

    @property
    def in_transaction(self) -> bool: ...


class Conn(Protocol):
    """An engine's connection, as the database's own (reads) or inside ``Database.transaction()``: statements
    awaited one by one, each a trip to the connection's thread, or ``run(work)``, many statements in one."""

    async def execute(self, sql: str, parameters: Any = (), /) -> Cursor: ...
    async def executemany(self, sql: str, parameters: Iterable[Any], /) -> None: ...
    async def execute_fetchall(self, sql: str, parameters: Any = (), /) -> list[Row]: ...
    async def run(self, work: Work[T], /) -> T: ...

    @property
    def in_transaction(self) -> bool: ...


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


def split_sql(script: str) -> list[str]:
    """Split a migration into statements (our migrations put no semicolons in strings, comments or triggers)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


class Lock(enum.Enum):
    """What a one-trip write (``write``) must hold besides the row locks of the rows it changes.

    SQLite has one lock: every write transaction holds the database's write lock (``BEGIN IMMEDIATE``).
    PostgreSQL can be finer, which is what lets workers on several machines run at once:
    """

    WRITES = "writes"
    """The one-writer lock, as SQLite: no other WRITES transaction runs meanwhile (the default: safe for
    a read-then-write)."""
    CLAIMS = "claims"
    """Only the claim lock: claims run one at a time, so the provider and user limits they count hold
    across processes; settles and heartbeats go on beside them."""
    ROWS = "rows"
    """Row locks only: a statement on rows its WHERE clause pins (a leased job by id and owner), which
    another writer's change to the same row cannot slip past."""


class Database(abc.ABC):
    """One engine's database. Subclasses open the connection and run the statements; what every caller
    sees (transactions, one-trip writes, reads, migrations, the schema version) is the same on both."""

    engine: str
    """'sqlite' or 'postgresql'."""

    def __init__(self, *, busy_timeout_ms: int) -> None:
        self.busy_timeout_ms = busy_timeout_ms
        self._write_lock = asyncio.Lock()

    @property
    @abc.abstractmethod
    def conn(self) -> Conn:
        """The connection, for reads; raises StorageError once closed."""

    @property
    @abc.abstractmethod
    def where(self) -> str:
        """Where the database is, for messages: a path, or host and database name (never a password)."""

    @abc.abstractmethod
    async def open(self, *, migrate: bool = True, create: bool = True, verify: bool = True) -> Database:
        """Connect and (``migrate``) apply pending migrations. ``create=False`` refuses a database that does
        not exist yet (DatabaseMissing); ``verify`` looks for damage first (DatabaseDamaged)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Conn]:
        """A write transaction on the connection, committed at the end and rolled back on any exception."""

    @abc.abstractmethod
    async def write(self, work: Work[T], lock: Lock = Lock.WRITES) -> T:
        """Run ``work`` in a transaction of its own holding ``lock``, in one trip to the connection's thread;
        its result.

        A busy database is retried until busy_timeout has passed, then raises StorageError. A cancelled
        caller does not stop it: the thread runs it to its COMMIT or ROLLBACK (wrap the call in
        ``run_to_completion`` to learn its outcome)."""

    @abc.abstractmethod
    async def user_version(self) -> int:
        """The schema version the database holds (0 when empty)."""

    @abc.abstractmethod
    async def _apply(self, conn: Conn, version: int, name: str, sql: str) -> None:
        """One migration's statements, and the schema version set to ``version``, inside ``conn``'s transaction."""

    @abc.abstractmethod
    async def integrity_problems(self, *, quick: bool = False, limit: int = 20) -> list[str]:
        """What the engine's own check finds wrong; empty when all is well."""

    @abc.abstractmethod
    async def backup(self, dest: Path) -> str:
        """A consistent copy of the live database at ``dest``; says how it was made."""

    async def server_time(self) -> float:
        """The database server's wall clock (seconds since the epoch), which every process shares; an
        embedded engine has no server, and answers with this host's clock."""
        return time.time()

    def file_problem(self) -> str | None:
        """Why the connection no longer reads the database it was opened on, or None while it does."""
        return None

    async def __aenter__(self) -> Self:
        if not self.is_open:
            await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        return await fetch_one(self, sql, params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return await fetch_all(self, sql, params)

    async def check_version(self) -> int:
        current, supported = await self.user_version(), schema_version_supported()
        if current > supported:
            from bot.errors import SchemaTooNewError  # imported here: only this rare path needs it

            raise SchemaTooNewError(
                f"the database {self.where} has schema version {current}, newer than this storybot "
                f"understands ({supported}); upgrade storybot or point the database setting elsewhere"
            )
        return current

    async def migrate(self) -> list[str]:
        """Apply every pending migration in one transaction; return the names applied."""
        async with self.transaction() as conn:
            current = await self.check_version()
            pending = [(v, name, sql) for v, name, sql in migrations() if v > current]
            for version, name, sql in pending:
                await self._apply(conn, version, name, sql)
                log.info("applied migration %s", name)
        return [name for _, name, _ in pending]


Target = Database | Conn
"""Where a statement runs: the database, or the connection of a transaction the caller holds open."""


def connection_of(target: Target) -> Conn:
    return target.conn if isinstance(target, Database) else target


async def write(target: Target, work: Work[T], lock: Lock = Lock.WRITES) -> T:
    """``work`` in one trip: in a transaction of its own holding ``lock`` (a ``Database``, see
    ``Database.write``) or inside the transaction the caller holds open on ``target`` (a connection from
    ``transaction()``, which holds the WRITES lock already)."""
    if isinstance(target, Database):
        return await target.write(work, lock)
    return await target.run(work)


async def fetch_one(target: Target, sql: str, params: Iterable[Any] = ()) -> Row | None:
    """The first row of a query that yields at most one (by key, an aggregate, LIMIT 1, RETURNING of one row)."""
    rows = await fetch_all(target, sql, params)
    return rows[0] if rows else None


async def fetch_all(target: Target, sql: str, params: Iterable[Any] = ()) -> list[Row]:
    # One trip to the connection's thread (execute, fetch and close there), and no statement is left
    # open between awaits on a shared connection.
    return await connection_of(target).execute_fetchall(sql, tuple(params))


async def run_to_completion(step: Awaitable[T], *, undo: Callable[[], Awaitable[Any]] | None = None) -> T:
    """Await a step that must not be cut in half by cancellation: on cancellation, wait for it to end,
    then re-raise the cancellation (its own result or error is dropped).

    A connection's thread keeps running a statement whose await was cancelled, so a ``BEGIN`` interrupted
    that way would leave a transaction open on the shared connection. With ``undo``, a step that
    completed after a cancellation is undone by it (used for BEGIN: a ROLLBACK).
    """
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        failed = task.cancelled() or task.exception() is not None  # exception() marks its error retrieved
        if undo is not None and not failed:
            await undo()
        raise
