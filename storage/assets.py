"""SQL for the ``media_assets`` table: one row per generated file."""

from __future__ import annotations

from typing import Any

from bot.domain import ASSET_TRANSITIONS, AssetKind, AssetStatus, MediaAsset, check_transition
from storage.db import Conn, Row, Target, dumps, fetch_all, fetch_one, loads

_FIELDS = (
    "id", "story_id", "scene_id", "kind", "status", "model_requested", "model_used", "fallback_occurred",
    "generation_metadata", "path", "bytes", "sha256", "created_at", "updated_at",
)  # fmt: skip
_COLUMNS = ", ".join(_FIELDS)
_FINISH_FIELDS = frozenset({"model_used", "fallback_occurred", "generation_metadata", "path", "bytes", "sha256"})


def _asset(row: Row) -> MediaAsset:
    data = dict(row)
    data["fallback_occurred"] = bool(data["fallback_occurred"])
    data["generation_metadata"] = loads(data["generation_metadata"], {})
    return MediaAsset(**data)


def _insert_values(asset: MediaAsset) -> dict[str, Any]:
    values = asset.model_dump()
    values["fallback_occurred"] = int(asset.fallback_occurred)
    values["generation_metadata"] = dumps(asset.generation_metadata)
    return values


async def insert(conn: Conn, asset: MediaAsset) -> MediaAsset:
    placeholders = ", ".join(f":{name}" for name in _FIELDS)
    await conn.execute(f"INSERT INTO media_assets ({_COLUMNS}) VALUES ({placeholders})", _insert_values(asset))
    return asset


async def insert_if_missing(conn: Conn, asset: MediaAsset) -> bool:
    """Insert ``asset`` unless a row with its id exists (left as it is); True if inserted."""
    placeholders = ", ".join(f":{name}" for name in _FIELDS)
    cursor = await conn.execute(
        f"INSERT INTO media_assets ({_COLUMNS}) VALUES ({placeholders}) ON CONFLICT (id) DO NOTHING",
        _insert_values(asset),
    )
    return cursor.rowcount > 0


async def get(target: Target, asset_id: str) -> MediaAsset | None:
    row = await fetch_one(target, f"SELECT {_COLUMNS} FROM media_assets WHERE id = ?", (asset_id,))
    return _asset(row) if row else None


async def set_status(conn: Conn, asset_id: str, status: AssetStatus, *, now: float, **fields: Any) -> None:
    unknown = set(fields) - _FINISH_FIELDS
    if unknown:
        raise ValueError(f"assets.set_status cannot set {sorted(unknown)}")
    asset = await get(conn, asset_id)
    if asset is None:
        raise LookupError(f"asset {asset_id} does not exist")
    check_transition(ASSET_TRANSITIONS, asset.status, status)
    if "generation_metadata" in fields:
        fields["generation_metadata"] = dumps({**asset.generation_metadata, **fields["generation_metadata"]})
    if "fallback_occurred" in fields:
        fields["fallback_occurred"] = int(fields["fallback_occurred"])
    columns = {"status": str(status), **fields}
    assignments = ", ".join(f"{column} = :{column}" for column in columns)
    await conn.execute(
        f"UPDATE media_assets SET {assignments}, updated_at = :now WHERE id = :id",
        {**columns, "now": now, "id": asset_id},
    )


async def list_for_story(target: Target, story_id: str) -> list[MediaAsset]:
    rows = await fetch_all(
        target, f"SELECT {_COLUMNS} FROM media_assets WHERE story_id = ? ORDER BY created_at", (story_id,)
    )
    return [_asset(row) for row in rows]


async def mean_durations(target: Target, *, last: int = 50) -> dict[AssetKind, float]:
    """Mean seconds from start to COMPLETED of the ``last`` completed assets per kind (kinds without any left out)."""
    found: dict[AssetKind, float] = {}
    for kind in AssetKind:
        row = await fetch_one(
            target,
            "SELECT AVG(updated_at - created_at), COUNT(*) FROM (SELECT created_at, updated_at FROM media_assets "
            "WHERE kind = ? AND status = 'COMPLETED' ORDER BY updated_at DESC LIMIT ?) AS recent",
            (kind.value, last),
        )
        if row is not None and row[1]:
            found[kind] = max(float(row[0]), 0.0)
    return found
