"""Direct database helpers: rows written behind the services' back, and a write lock held from elsewhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

from storage.db import Conn, Database


async def insert_story(conn: Database | Conn, story_id: str) -> None:
    """A bare queued story row, so jobs may point at it."""
    target = conn.conn if isinstance(conn, Database) else conn
    await target.execute(
        "INSERT INTO stories (id, prompt, text_model, image_model, scene_count, status, created_at, updated_at)"
        " VALUES (?, 'a fox', 'local-template', 'local-sketch', 1, 'queued', 0, 0)",
        (story_id,),
    )


async def hold_write_lock(path: Path, holding: asyncio.Event, release: asyncio.Event) -> None:
    """Hold the write lock of the database at ``path`` from a second connection until ``release`` is set."""
    async with Database(path) as other, other.transaction():
        holding.set()
        await release.wait()
