"""SQL for ``guild_config`` (per-server settings) and ``usage`` (per-user daily counts)."""

from __future__ import annotations

from bot.domain import GuildConfig, ModalityRoute
from storage.db import Conn, Row, Target, dumps, fetch_all, fetch_one, loads

_COLUMNS = (
    "guild_id, routing, video_enabled, daily_image_limit, daily_video_limit, alert_channel_id, updated_by, updated_at"
)


def _config(row: Row) -> GuildConfig:
    data = dict(row)
    data["routing"] = {k: ModalityRoute(**v) for k, v in loads(data["routing"], {}).items()}
    data["video_enabled"] = bool(data["video_enabled"])
    return GuildConfig(**data)


async def get(target: Target, guild_id: int) -> GuildConfig | None:
    row = await fetch_one(target, f"SELECT {_COLUMNS} FROM guild_config WHERE guild_id = ?", (guild_id,))
    return _config(row) if row else None


async def upsert(conn: Conn, config: GuildConfig) -> None:
    values = config.model_dump(mode="json")
    values["routing"] = dumps(values["routing"])
    values["video_enabled"] = int(config.video_enabled)
    placeholders = ", ".join(f":{name.strip()}" for name in _COLUMNS.split(","))
    updates = ", ".join(f"{name.strip()} = excluded.{name.strip()}" for name in _COLUMNS.split(",")[1:])
    await conn.execute(
        f"INSERT INTO guild_config ({_COLUMNS}) VALUES ({placeholders}) ON CONFLICT (guild_id) DO UPDATE SET {updates}",
        values,
    )


async def alert_channels(target: Target) -> dict[int, int]:
    """guild id -> alert channel id, for every server that set one."""
    rows = await fetch_all(
        target, "SELECT guild_id, alert_channel_id FROM guild_config WHERE alert_channel_id IS NOT NULL"
    )
    return {row["guild_id"]: row["alert_channel_id"] for row in rows}


async def usage(target: Target, guild_id: int, user_id: int, day: str) -> tuple[int, int]:
    """(images, videos) a user asked for in a server on a UTC day."""
    row = await fetch_one(
        target, "SELECT images, videos FROM usage WHERE guild_id = ? AND user_id = ? AND day = ?",
        (guild_id, user_id, day),
    )  # fmt: skip
    return (row["images"], row["videos"]) if row else (0, 0)


async def add_usage(conn: Conn, guild_id: int, user_id: int, day: str, *, images: int = 0, videos: int = 0) -> None:
    await conn.execute(
        "INSERT INTO usage (guild_id, user_id, day, images, videos) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (guild_id, user_id, day) DO UPDATE SET images = usage.images + excluded.images, "
        "videos = usage.videos + excluded.videos",
        (guild_id, user_id, day, images, videos),
    )
