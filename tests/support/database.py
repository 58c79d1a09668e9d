"""Direct database helpers: either engine opened for a test, a second connection as another process would
hold, rows written behind the services' back, and a write lock held from elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from storage.db import Conn, Database, Lock
from storage.dialect import to_postgres
from storage.engines import database_for
from storage.postgres import PgConn, PgRow, PostgresDatabase
from storage.sqlite import SqliteDatabase


async def open_database(url: str | None, path: Path, **options: Any) -> Database:
    """The database of ``url`` (PostgreSQL) or at ``path`` (SQLite), opened and migrated."""
    return await database_for(url, path, **options).open()


def twin(db: Database, **options: Any) -> Database:
    """A second connection to the database ``db`` is on, as another process would open it (not opened yet)."""
    if isinstance(db, PostgresDatabase):
        return PostgresDatabase(db._url, **options)
    assert isinstance(db, SqliteDatabase)
    return SqliteDatabase(db.path, **options)


async def insert_story(conn: Database | Conn, story_id: str) -> None:
    """A bare queued story row, so jobs may point at it."""
    target = conn.conn if isinstance(conn, Database) else conn
    await target.execute(
        "INSERT INTO stories (id, prompt, text_model, image_model, scene_count, status, created_at, updated_at)"
        " VALUES (?, 'a fox', 'local-template', 'local-sketch', 1, 'queued', 0, 0)",
        (story_id,),
    )


async def hold_write_lock(db: Database, holding: asyncio.Event, release: asyncio.Event) -> None:
    """Hold the write lock of ``db``'s database from a second connection until ``release`` is set; on
    PostgreSQL the claim lock too (storage/db.py Lock): every lock a claim or an enqueue could wait for."""
    async with twin(db) as other, other.transaction() as conn:
        if isinstance(conn, PgConn):
            await conn.execute("SELECT pg_advisory_xact_lock(?)", (conn.sync.locks[Lock.CLAIMS],))
        holding.set()
        await release.wait()


# -- reading from outside, as an operator would, while storybot processes run -----------------------------------

NOT_THERE_YET = (sqlite3.OperationalError, psycopg.errors.UndefinedTable)
"""What a read raises before storybot has made the database or its tables."""


@contextlib.contextmanager
def _connection(db: Path) -> Iterator[Any]:
    url = os.environ.get("DATABASE_URL")
    if url:  # the fault suite's PostgreSQL run (tests/fault/conftest.py)
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
        return
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
        conn.row_factory = sqlite3.Row
        yield conn


def select(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The rows of ``sql`` (SQLite's spelling) in the database this test's storybot uses: PostgreSQL when
    DATABASE_URL is set, else the SQLite file at ``db`` (read-only). Rows read by position or by name."""
    with _connection(db) as conn:
        if isinstance(conn, sqlite3.Connection):
            return list(conn.execute(sql, params).fetchall())
        cursor = conn.execute(to_postgres(sql), params)
        names = {column.name: n for n, column in enumerate(cursor.description or ())}
        return [PgRow(values, names) for values in cursor.fetchall()]


def count(db: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    """``SELECT count(*) ...``; 0 while the database or its tables are not made yet."""
    if not os.environ.get("DATABASE_URL") and not db.exists():
        return 0
    try:
        return int(select(db, sql, params)[0][0])
    except NOT_THERE_YET:
        return 0


def execute(db: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """One write behind storybot's back (a poisoned row, say), committed at once."""
    url = os.environ.get("DATABASE_URL")
    if url:
        with psycopg.connect(url, autocommit=True) as server:
            server.execute(to_postgres(sql), params)
        return
    with contextlib.closing(sqlite3.connect(db)) as file, file:
        file.execute(sql, params)
