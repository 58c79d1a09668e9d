"""SQL for the ``deliveries`` table: what has been published, so a restart never publishes it twice."""

from __future__ import annotations

from storage.db import Conn, Database, Target, fetch_one

# A deliver job rescheduled because the bot may not post (bot/pipeline/deliver.py) carries this in last_error.
PARKED = "parked: "


async def record(conn: Conn, *, key: str, story_id: str, target: str, message_id: str | None, now: float) -> bool:
    """Record one publication; False if that key was already recorded."""
    cursor = await conn.execute(
        "INSERT INTO deliveries (key, story_id, target, message_id, created_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (key) DO NOTHING",
        (key, story_id, target, message_id, now),
    )
    return cursor.rowcount > 0


async def exists(db: Database, key: str) -> bool:
    return await db.fetchone("SELECT 1 FROM deliveries WHERE key = ?", (key,)) is not None


async def parked_count(target: Target, story_id: str, *, excluding: str | None = None) -> int:
    """How many of a story's deliveries are parked, or were given up on (failed or dead)."""
    row = await fetch_one(
        target,
        "SELECT COUNT(*) FROM jobs WHERE story_id = ? AND kind = 'deliver' AND id IS NOT ? "
        "AND ((status = 'queued' AND substr(last_error, 1, ?) = ?) OR status IN ('failed', 'dead'))",
        (story_id, excluding, len(PARKED), PARKED),
    )
    return int(row[0]) if row else 0


async def wake_parked(conn: Conn, story_id: str, *, now: float) -> int:
    """Make a story's parked deliveries due now, and give those given up on a fresh start (the Post again
    button); returns how many."""
    cursor = await conn.execute(
        "UPDATE jobs SET status = 'queued', run_after = ?, attempts = 0, interruptions = 0, finished_at = NULL, "
        "updated_at = ? WHERE story_id = ? AND kind = 'deliver' "
        "AND ((status = 'queued' AND substr(last_error, 1, ?) = ?) OR status IN ('failed', 'dead'))",
        (now, now, story_id, len(PARKED), PARKED),
    )
    return cursor.rowcount
