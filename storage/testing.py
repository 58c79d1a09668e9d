"""Reads that only the tests make: whole tables and counts no command needs.

Kept in storage, next to the SQL they share, so the row shapes stay in one place; nothing in bot/ or
cogs/ imports this module.
"""

from __future__ import annotations

from bot.domain import AssetKind, MediaAsset, Story
from storage import assets, stories
from storage.db import Database, Target, fetch_one


async def list_all(db: Database, *, limit: int = 50) -> list[Story]:
    rows = await db.fetchall(f"SELECT {stories._COLUMNS} FROM stories ORDER BY created_at DESC LIMIT ?", (limit,))
    return [stories._story(row) for row in rows]


async def keys_for_story(db: Database, story_id: str) -> list[str]:
    rows = await db.fetchall("SELECT key FROM deliveries WHERE story_id = ? ORDER BY created_at", (story_id,))
    return [row["key"] for row in rows]


async def list_for_scene(db: Database, scene_id: str, kind: AssetKind | None = None) -> list[MediaAsset]:
    query = f"SELECT {assets._COLUMNS} FROM media_assets WHERE scene_id = ?"
    params: tuple[object, ...] = (scene_id,)
    if kind is not None:
        query += " AND kind = ?"
        params += (kind,)
    rows = await db.fetchall(query + " ORDER BY created_at", params)
    return [assets._asset(row) for row in rows]


async def count_calls(target: Target) -> int:
    row = await fetch_one(target, "SELECT COUNT(*) FROM model_calls")
    return int(row[0]) if row else 0
