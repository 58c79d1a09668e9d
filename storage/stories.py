"""SQL for the ``stories`` table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.domain import STORY_TRANSITIONS, Story, StoryStatus, check_transition
from storage.db import Conn, Database, Row, Target, fetch_all, fetch_one

_COLUMNS = (
    "id, guild_id, channel_id, thread_id, owner_id, prompt, title, style, bible, text_model, image_model, "
    "video_model, video_mode, reference_path, scene_count, status, error, storyboard_message_id, out_dir, "
    "post_in_channel, delivery_note, undelivered, parked_since, created_at, updated_at"
)

# Columns a caller may change with update(); status goes through set_status() so its table is checked.
_UPDATABLE = frozenset(
    {
        "title", "style", "bible", "thread_id", "storyboard_message_id", "out_dir", "error",
        "post_in_channel", "delivery_note", "undelivered", "parked_since",
    }
)  # fmt: skip


def _story(row: Row) -> Story:
    data = dict(row)
    data["video_mode"] = bool(data["video_mode"])
    data["post_in_channel"] = bool(data["post_in_channel"])
    return Story(**data)


async def insert(conn: Conn, story: Story) -> Story:
    values = story.model_dump()
    values["video_mode"] = int(story.video_mode)
    values["post_in_channel"] = int(story.post_in_channel)
    placeholders = ", ".join(f":{name.strip()}" for name in _COLUMNS.split(","))
    await conn.execute(f"INSERT INTO stories ({_COLUMNS}) VALUES ({placeholders})", values)
    return story


async def get(target: Target, story_id: str) -> Story | None:
    row = await fetch_one(target, f"SELECT {_COLUMNS} FROM stories WHERE id = ?", (story_id,))
    return _story(row) if row else None


async def update(conn: Conn, story_id: str, *, now: float, **fields: Any) -> None:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"stories.update cannot set {sorted(unknown)}")
    if not fields:
        return
    assignments = ", ".join(f"{name} = :{name}" for name in fields)
    await conn.execute(
        f"UPDATE stories SET {assignments}, updated_at = :now WHERE id = :id", {**fields, "now": now, "id": story_id}
    )


async def set_status(
    conn: Conn, story_id: str, status: StoryStatus, *, now: float, error: str | None = None
) -> StoryStatus:
    """Move a story along its transition table; returns the previous status. Illegal moves raise."""
    row = await fetch_one(conn, "SELECT status FROM stories WHERE id = ?", (story_id,))
    if row is None:
        raise LookupError(f"story {story_id} does not exist")
    current = StoryStatus(row["status"])
    check_transition(STORY_TRANSITIONS, current, status)
    await conn.execute(
        "UPDATE stories SET status = ?, error = ?, updated_at = ? WHERE id = ?", (status, error, now, story_id)
    )
    return current


async def list_for_owner(
    target: Target, guild_id: int | None, owner_id: int | None, *, limit: int = 10, offset: int = 0
) -> list[Story]:
    """One owner's stories in one server, newest first (reads the stories_by_owner index in order)."""
    rows = await fetch_all(
        target,
        f"SELECT {_COLUMNS} FROM stories WHERE guild_id IS NOT DISTINCT FROM ? AND owner_id IS NOT DISTINCT FROM ? "
        "ORDER BY created_at DESC LIMIT ? OFFSET ?",
        (guild_id, owner_id, limit, offset),
    )
    return [_story(row) for row in rows]


async def count_for_owner(target: Target, guild_id: int | None, owner_id: int | None) -> int:
    row = await fetch_one(
        target,
        "SELECT COUNT(*) FROM stories WHERE guild_id IS NOT DISTINCT FROM ? AND owner_id IS NOT DISTINCT FROM ?",
        (guild_id, owner_id),
    )
    return int(row[0]) if row else 0


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_for_owner(
    target: Target, guild_id: int | None, owner_id: int | None, text: str, *, limit: int = 25
) -> list[Story]:
    """One owner's stories in one server whose title or prompt contains ``text`` (any case) or whose id
    starts with it; titles that start with it first, then newest first. Empty ``text`` matches all."""
    needle = _like_escaped(text.strip().lower())
    inside, start = f"%{needle}%", f"{needle}%"
    rows = await fetch_all(
        target,
        f"SELECT {_COLUMNS} FROM stories WHERE guild_id IS NOT DISTINCT FROM ? AND owner_id IS NOT DISTINCT FROM ? "
        "AND (title LIKE ? ESCAPE '\\' OR prompt LIKE ? ESCAPE '\\' OR id LIKE ? ESCAPE '\\') "
        "ORDER BY COALESCE(title, prompt) LIKE ? ESCAPE '\\' DESC, created_at DESC LIMIT ?",
        (guild_id, owner_id, inside, inside, start, start, limit),
    )
    return [_story(row) for row in rows]


async def existing_ids(target: Target, story_ids: Iterable[str]) -> set[str]:
    """Which of ``story_ids`` still have a row."""
    wanted, found = list(story_ids), set[str]()
    for first in range(0, len(wanted), 500):  # well under SQLite's limit on bound parameters
        chunk = wanted[first : first + 500]
        marks = ", ".join("?" * len(chunk))
        rows = await fetch_all(target, f"SELECT id FROM stories WHERE id IN ({marks})", chunk)
        found.update(row[0] for row in rows)
    return found


async def unfinished(db: Database) -> list[Story]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM stories WHERE status IN ('queued', 'writing', 'illustrating') ORDER BY created_at"
    )
    return [_story(row) for row in rows]


async def delete(conn: Conn, story_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM stories WHERE id = ?", (story_id,))
    return cursor.rowcount > 0


async def count_running(target: Target, owner_id: int) -> int:
    """Stories of one user still being made (queued, writing or illustrating), in every server."""
    row = await fetch_one(
        target,
        "SELECT COUNT(*) FROM stories WHERE owner_id = ? AND status IN ('queued', 'writing', 'illustrating')",
        (owner_id,),
    )
    return int(row[0]) if row else 0


async def newest(target: Target, *, limit: int | None) -> list[Story]:
    """Every story in every server, newest first (``limit`` of them, or all with None): the operator's view."""
    sql = f"SELECT {_COLUMNS} FROM stories ORDER BY created_at DESC, id"
    rows = await (fetch_all(target, sql) if limit is None else fetch_all(target, sql + " LIMIT ?", (limit,)))
    return [_story(row) for row in rows]


async def count_all(target: Target) -> int:
    row = await fetch_one(target, "SELECT COUNT(*) FROM stories")
    return int(row[0]) if row else 0
