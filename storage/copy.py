"""Copying a whole SQLite database into an empty database of another engine (``storybot db copy``).

The tables come from the source's own schema (``sqlite_master``), not from a list kept here, so a table a
later migration adds is copied without a change to this module; they are copied in an order in which each
table follows the tables its foreign keys point to. Everything is read from one snapshot of the source (a
read transaction: a storybot still writing to it changes nothing the copy sees, and waits for nothing) and
written in one transaction of the target, so the target ends up with all of it or none of it.

The target must be empty: a copy never merges into data that is already there. Both databases must hold
the schema version of this storybot (the caller migrates them first). On PostgreSQL, the identity behind
SQLite's ``INTEGER PRIMARY KEY`` (model_calls.id) is moved past the copied ids, so the next row inserted
without an id does not collide with a copied one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.errors import StorageError
from storage.db import Conn, Database, Target, fetch_all, fetch_one, run_to_completion, schema_version_supported

BATCH_ROWS = 2000
"""Rows read from the source and inserted into the target at a time."""
ROWS_PER_INSERT = 50
"""Rows per INSERT statement (``VALUES (...), (...)``): on PostgreSQL about twice the rows per second of one
row per statement, even with executemany's pipelining; more gains nothing."""
MAX_PARAMETERS = 30_000
"""Bound values per statement, under both engines' limits (SQLite 32,766; PostgreSQL 65,535)."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    references: frozenset[str]
    """The other tables this one's foreign keys point to."""
    identity: str | None
    """Its ``INTEGER PRIMARY KEY`` column (SQLite's rowid; an identity column on PostgreSQL), if it has one."""

    def quoted(self) -> str:
        return ", ".join(_quote(column) for column in self.columns)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def tables_of(source: Target) -> list[Table]:
    """The tables of a SQLite database, each after the tables it references."""
    names = [
        row[0]
        for row in await fetch_all(
            source, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!' "
            "ORDER BY rowid",
        )
    ]  # fmt: skip
    tables = []
    for name in names:
        info = await fetch_all(source, f"PRAGMA table_info({_quote(name)})")
        keys = [row for row in info if row["pk"]]
        identity = keys[0]["name"] if len(keys) == 1 and str(keys[0]["type"]).upper() == "INTEGER" else None
        references = {row["table"] for row in await fetch_all(source, f"PRAGMA foreign_key_list({_quote(name)})")}
        tables.append(Table(name, tuple(row["name"] for row in info), frozenset(references), identity))
    return in_dependency_order(tables)


def in_dependency_order(tables: list[Table]) -> list[Table]:
    """``tables`` reordered so that each comes after those it references (a reference to itself aside),
    otherwise in the order given."""
    pending = list(tables)
    known = {table.name for table in tables}
    ordered: list[Table] = []
    placed: set[str] = set()
    while pending:
        ready = next((t for t in pending if (t.references & known) - {t.name} <= placed), None)
        if ready is None:
            cycle = ", ".join(sorted(t.name for t in pending))
            raise StorageError(f"the foreign keys of the tables {cycle} form a cycle; they cannot be copied in order")
        pending.remove(ready)
        ordered.append(ready)
        placed.add(ready.name)
    return ordered


@asynccontextmanager
async def _snapshot(source: Database) -> AsyncIterator[None]:
    """A read transaction on the source: every read inside sees the database as it was at the first one."""
    conn = source.conn
    await run_to_completion(conn.execute("BEGIN"), undo=lambda: conn.execute("ROLLBACK"))
    try:
        yield
    finally:
        await run_to_completion(conn.execute("ROLLBACK"))  # it only read: nothing to keep


async def _row_counts(target: Target, tables: list[Table]) -> dict[str, int]:
    counts = {}
    for table in tables:
        row = await fetch_one(target, f"SELECT COUNT(*) FROM {_quote(table.name)}")
        counts[table.name] = int(row[0]) if row else 0
    return counts


def _refuse_if_held(where: str, counts: dict[str, int]) -> None:
    held = {name: rows for name, rows in counts.items() if rows}
    if held:
        shown = ", ".join(f"{rows} in {name}" for name, rows in held.items())
        raise StorageError(
            f"{where} already holds storybot data ({sum(held.values())} rows: {shown}); nothing was copied. "
            "Copy into an empty database or schema: a copy never merges into data that is already there"
        )


async def copy_database(
    source: Database, target: Database, *, batch_rows: int = BATCH_ROWS, rows_per_insert: int = ROWS_PER_INSERT
) -> dict[str, int]:
    """Copy every table of the SQLite database ``source`` into the empty database ``target`` (both open, both at
    this storybot's schema version); the rows copied per table, in the order copied. Raises StorageError, in
    plain words, when it cannot, and then the target is as it was."""
    if source.engine != "sqlite":
        raise StorageError("only a SQLite database can be copied from")
    supported = schema_version_supported()
    for database in (source, target):
        version = await database.user_version()
        if version != supported:
            raise StorageError(
                f"{database.where} has schema version {version}, and this storybot copies version {supported} "
                "only; migrate it first (storybot db migrate)"
            )
    async with _snapshot(source):
        tables = await tables_of(source)
        try:
            before = await _row_counts(target, tables)  # outside the transaction: a missing table fails alone
        except (StorageError, sqlite3.Error) as exc:
            raise StorageError(f"{target.where} does not have every table of a storybot database: {exc}") from None
        _refuse_if_held(target.where, before)
        copied: dict[str, int] = {}
        async with target.transaction() as conn:
            _refuse_if_held(target.where, await _row_counts(conn, tables))  # again, now that no one else writes
            for table in tables:
                try:
                    copied[table.name] = await _copy_table(source, conn, table, batch_rows, rows_per_insert)
                except StorageError as exc:
                    raise StorageError(f"copying {table.name} failed, so nothing was copied: {exc}") from exc
            if target.engine == "postgresql":
                for table in tables:
                    if table.identity is not None:
                        await _move_identity_past_copied(conn, table.name, table.identity)
            landed = await _row_counts(conn, tables)
            if landed != copied:
                wrong = ", ".join(
                    f"{name}: {landed[name]} of {copied[name]}" for name in copied if landed[name] != copied[name]
                )
                raise StorageError(f"the copy does not hold what was read ({wrong}); nothing was copied")
    return copied


async def _copy_table(source: Database, conn: Conn, table: Table, batch_rows: int, rows_per_insert: int) -> int:
    """Every row of ``table``, read from the source in rowid order ``batch_rows`` at a time and inserted
    ``rows_per_insert`` to a statement; how many."""
    name, columns = _quote(table.name), table.quoted()
    row_marks = "(" + ", ".join("?" * len(table.columns)) + ")"
    per_insert = max(1, min(rows_per_insert, MAX_PARAMETERS // len(table.columns)))
    insert_one = f"INSERT INTO {name} ({columns}) VALUES {row_marks}"
    insert_many = f"INSERT INTO {name} ({columns}) VALUES {', '.join([row_marks] * per_insert)}"
    first = f"SELECT rowid, {columns} FROM {name} ORDER BY rowid LIMIT ?"
    after = f"SELECT rowid, {columns} FROM {name} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    copied = 0
    rows = await fetch_all(source, first, (batch_rows,))
    while rows:
        values = [tuple(row)[1:] for row in rows]
        whole = len(values) - len(values) % per_insert
        if whole:
            await conn.executemany(
                insert_many,
                [tuple(v for row in values[at : at + per_insert] for v in row) for at in range(0, whole, per_insert)],
            )
        if whole < len(values):
            await conn.executemany(insert_one, values[whole:])
        copied += len(rows)
        if len(rows) < batch_rows:
            break
        rows = await fetch_all(source, after, (rows[-1][0], batch_rows))
    return copied


async def _move_identity_past_copied(conn: Conn, table: str, column: str) -> None:
    """PostgreSQL: the next id the identity column hands out is one past the largest copied (1 when none)."""
    await fetch_all(
        conn,
        f"SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({_quote(column)}), 0) + 1, false) "
        f"FROM {_quote(table)}",
        (table, column),
    )
