"""SQL for the ``scenes`` table. Image and video status changes go through their transition tables."""

from __future__ import annotations

from collections.abc import Iterable
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
    scene = await get(conn, scene_id)
    if scene is None:
        raise LookupError(f"scene {scene_id} does not exist")
    if stage == "image":
        check_transition(IMAGE_TRANSITIONS, scene.image_status, ImageStatus(status))
    else:
        check_transition(VIDEO_TRANSITIONS, scene.video_status, VideoStatus(status))
    columns = {f"{stage}_status": str(status), **{f"{stage}_{name}": value for name, value in fields.items()}}
    assignments = ", ".join(f"{column} = :{column}" for column in columns)
    await conn.execute(
        f"UPDATE scenes SET {assignments}, updated_at = :now WHERE id = :id", {**columns, "now": now, "id": scene_id}
    )
    changed = {_model_field(c): v for c, v in columns.items()} | {f"{stage}_status": status, "updated_at": now}
    return scene.model_copy(update=changed)


def _model_field(column: str) -> str:
    return "index" if column == "idx" else column


async def set_message_id(conn: Conn, scene_id: str, *, kind: str, message_id: int, now: float) -> None:
    column = {"image": "image_message_id", "video": "video_message_id"}[kind]
    await conn.execute(f"UPDATE scenes SET {column} = ?, updated_at = ? WHERE id = ?", (message_id, now, scene_id))
