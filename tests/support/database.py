"""Direct database helpers: either engine opened for a test, a second connection as another process would
hold, rows written behind the services' back, and a write lock held from elsewhere."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from storage.db import Conn, Database
from storage.engines import database_for
from storage.postgres import PostgresDatabase
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
    """Hold the write lock of ``db``'s database from a second connection until ``release`` is set."""
    async with twin(db) as other, other.transaction():
        holding.set()
        await release.wait()
