"""SQL for the ``deliveries`` table: what has been published, so a restart never publishes it twice."""

from __future__ import annotations

from storage.db import Conn, Database


async def record(conn: Conn, *, key: str, story_id: str, target: str, message_id: str | None, now: float) -> bool:
    """Record one publication; False if that key was already recorded."""
    cursor = await conn.execute(
        "INSERT INTO deliveries (key, story_id, target, message_id, created_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (key) DO NOTHING",
        (key, story_id, target, message_id, now),
    )
    return cursor.rowcount > 0


async def get_message_id(db: Database, key: str) -> str | None:
    row = await db.fetchone("SELECT message_id FROM deliveries WHERE key = ?", (key,))
    return None if row is None else row["message_id"]


async def exists(db: Database, key: str) -> bool:
    return await db.fetchone("SELECT 1 FROM deliveries WHERE key = ?", (key,)) is not None


async def keys_for_story(db: Database, story_id: str) -> list[str]:
    rows = await db.fetchall("SELECT key FROM deliveries WHERE story_id = ? ORDER BY created_at", (story_id,))
    return [row["key"] for row in rows]
