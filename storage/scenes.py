"""SQL for the ``scenes`` table. Image and video status changes go through their transition tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bot.domain import IMAGE_TRANSITIONS, VIDEO_TRANSITIONS, ImageStatus, Scene, VideoStatus, check_transition
from storage.db import Conn, Row, Target, fetch_all, fetch_one

_FIELDS = (
    "id", "story_id", "idx", "text", "image_status", "image_path", "image_model_requested", "image_model_used",
    "image_error", "video_status", "video_path", "video_url", "video_model_requested", "video_model_used",
    "video_error", "image_message_id", "video_message_id", "updated_at",
)  # fmt: skip
_COLUMNS = ", ".join(_FIELDS)

_STAGE_FIELDS = {
    "image": frozenset({"path", "model_requested", "model_used", "error"}),
    "video": frozenset({"path", "url", "model_requested", "model_used", "error"}),
}


def _scene(row: Row) -> Scene:
    data = dict(row)
    data["index"] = data.pop("idx")
    return Scene(**data)


def _values(scene: Scene) -> dict[str, Any]:
    data = scene.model_dump()
    data["idx"] = data.pop("index")
    return data


async def insert_many(conn: Conn, scenes: Iterable[Scene]) -> None:
    """Insert scenes; a scene already there (same story and index) is left as it is."""
    placeholders = ", ".join(f":{name}" for name in _FIELDS)
    await conn.executemany(
        f"INSERT INTO scenes ({_COLUMNS}) VALUES ({placeholders}) ON CONFLICT (story_id, idx) DO NOTHING",
        [_values(scene) for scene in scenes],
    )


async def get(target: Target, scene_id: str) -> Scene | None:
    row = await fetch_one(target, f"SELECT {_COLUMNS} FROM scenes WHERE id = ?", (scene_id,))
    return _scene(row) if row else None


async def list_for_story(target: Target, story_id: str) -> list[Scene]:
    rows = await fetch_all(target, f"SELECT {_COLUMNS} FROM scenes WHERE story_id = ? ORDER BY idx", (story_id,))
    return [_scene(row) for row in rows]


async def set_image(conn: Conn, scene_id: str, status: ImageStatus, *, now: float, **fields: Any) -> Scene:
    return await _set_stage(conn, scene_id, "image", status, now=now, fields=fields)


async def set_video(conn: Conn, scene_id: str, status: VideoStatus, *, now: float, **fields: Any) -> Scene:
    return await _set_stage(conn, scene_id, "video", status, now=now, fields=fields)


async def _set_stage(
    conn: Conn, scene_id: str, stage: str, status: ImageStatus | VideoStatus, *, now: float, fields: dict[str, Any]
) -> Scene:
    unknown = set(fields) - _STAGE_FIELDS[stage]
    if unknown:
        raise ValueError(f"scenes.set_{stage} cannot set {sorted(unknown)}")
    table: Mapping[Any, frozenset[Any]] = IMAGE_TRANSITIONS if stage == "image" else VIDEO_TRANSITIONS
    new = ImageStatus(status) if stage == "image" else VideoStatus(status)
    # The transition check is in the WHERE clause, so a legal move is one statement; no row means
    # the scene is missing or the move is illegal, and reading it says which.
    allowed_from = sorted(str(s) for s in table if s == new or new in table[s])
    columns = {f"{stage}_status": str(status), **{f"{stage}_{name}": value for name, value in fields.items()}}
    assignments = ", ".join(f"{column} = :{column}" for column in columns)
    marks = ", ".join(f":from{n}" for n in range(len(allowed_from)))
    rows = list(
        await conn.execute_fetchall(
            f"UPDATE scenes SET {assignments}, updated_at = :now WHERE id = :id AND {stage}_status IN ({marks}) "
            f"RETURNING {_COLUMNS}",
            {**columns, "now": now, "id": scene_id, **{f"from{n}": s for n, s in enumerate(allowed_from)}},
        )
    )
    if rows:
        return _scene(rows[0])
    scene = await get(conn, scene_id)
    if scene is None:
        raise LookupError(f"scene {scene_id} does not exist")
    check_transition(table, scene.image_status if stage == "image" else scene.video_status, new)
    raise AssertionError(f"scene {scene_id}: {stage} status {new} allowed but not set")  # pragma: no cover


async def set_message_id(conn: Conn, scene_id: str, *, kind: str, message_id: int, now: float) -> None:
    column = {"image": "image_message_id", "video": "video_message_id"}[kind]
    await conn.execute(f"UPDATE scenes SET {column} = ?, updated_at = ? WHERE id = ?", (message_id, now, scene_id))


IDS_PER_QUERY = 500  # story ids per IN (...): well under SQLite's limit on bound parameters


async def of_stories(target: Target, story_ids: Iterable[str]) -> dict[str, list[Scene]]:
    """The scenes of each story in ``story_ids``, in order (an empty list for a story with none yet)."""
    wanted = list(story_ids)
    found: dict[str, list[Scene]] = {story_id: [] for story_id in wanted}
    for first in range(0, len(wanted), IDS_PER_QUERY):
        chunk = wanted[first : first + IDS_PER_QUERY]
        marks = ", ".join("?" * len(chunk))
        rows = await fetch_all(
            target, f"SELECT {_COLUMNS} FROM scenes WHERE story_id IN ({marks}) ORDER BY story_id, idx", chunk
        )
        for row in rows:
            scene = _scene(row)
            found[scene.story_id].append(scene)
    return found
