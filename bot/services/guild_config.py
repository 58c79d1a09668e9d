"""Reading and changing a server's /config: every input is checked first, then one transaction writes it.

A change reads the stored row inside the write transaction, so two managers changing different
settings at the same moment both keep their change. Nothing is written when a check fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from bot.clock import Clock
from bot.domain import (
    MAX_DAILY_LIMIT,
    MAX_FALLBACKS,
    GuildConfig,
    Modality,
    ModalityRoute,
    RoutingConfig,
    default_config,
)
from bot.errors import UserInputError
from bot.routing.registry import Registry
from storage import guilds
from storage.db import Database

_SEPARATORS = re.compile(r"[,\s]+")
LIMIT_NAMES = {"daily_image_limit": "picture", "daily_video_limit": "clip"}


def split_models(text: str | None) -> list[str]:
    """'a, b c' -> ['a', 'b', 'c']: model keys never hold commas or spaces."""
    return [name for name in _SEPARATORS.split(text or "") if name]


class GuildSettings:
    def __init__(self, db: Database, registry: Registry, routing: dict[Modality, RoutingConfig], clock: Clock) -> None:
        self.db = db
        self.registry = registry
        self.routing = routing  # the operator's defaults
        self.clock = clock

    async def get(self, guild_id: int) -> GuildConfig:
        return await guilds.get(self.db, guild_id) or default_config(guild_id)

    async def alert_channels(self) -> dict[int, int]:
        """Server id -> the channel its health alerts go to, for every server that chose one."""
        return await guilds.alert_channels(self.db)

    def parse_route(self, modality: Modality, primary: str, fallbacks: str | None) -> ModalityRoute:
        """A route of usable models of ``modality``; UserInputError names what to fix (and the usable models)."""
        primary_key = self.registry.require_usable(primary.strip(), modality).key
        names = split_models(fallbacks)
        if len(names) > MAX_FALLBACKS:
            raise UserInputError(f"name at most {MAX_FALLBACKS} fallbacks (you named {len(names)})")
        keys: list[str] = []
        for name in names:
            key = self.registry.require_usable(name, modality).key
            if key == primary_key:
                raise UserInputError(f"'{key}' is already the primary model; leave it out of the fallbacks")
            if key in keys:
                raise UserInputError(f"'{key}' is named twice in the fallbacks")
            keys.append(key)
        return ModalityRoute(primary_model=primary_key, fallbacks=tuple(keys))

    async def set_route(
        self, guild_id: int, user_id: int, modality: Modality, route: ModalityRoute | None
    ) -> GuildConfig:
        """Set a modality's route, or go back to the operator's (``route`` None)."""

        def change(config: GuildConfig) -> dict[str, Any]:
            routing = {m: r for m, r in config.routing.items() if m is not modality}
            if route is not None:
                routing[modality] = route
            return {"routing": routing}

        return await self._update(guild_id, user_id, change)

    async def set_video(self, guild_id: int, user_id: int, enabled: bool) -> GuildConfig:
        return await self._update(guild_id, user_id, lambda _: {"video_enabled": enabled})

    async def set_limits(self, guild_id: int, user_id: int, limits: dict[str, int | None]) -> GuildConfig:
        """``limits`` maps daily_image_limit / daily_video_limit to a count, or None for no limit."""
        for field, value in limits.items():
            if field not in LIMIT_NAMES:
                raise ValueError(f"not a daily limit: {field}")
            if value is not None and not 0 <= value <= MAX_DAILY_LIMIT:
                raise UserInputError(
                    f"the daily {LIMIT_NAMES[field]} limit must be between 0 and {MAX_DAILY_LIMIT} (got {value})"
                )
        return await self._update(guild_id, user_id, lambda _: dict(limits))

    async def set_alerts(self, guild_id: int, user_id: int, channel_id: int | None) -> GuildConfig:
        return await self._update(guild_id, user_id, lambda _: {"alert_channel_id": channel_id})

    def effective_route(self, config: GuildConfig, modality: Modality) -> tuple[list[str], bool]:
        """(the chain this server uses for a modality, whether the server set it itself)."""
        route = config.routing.get(modality)
        if route is not None:
            return route.chain, True
        return self.routing[modality].chain, False

    async def _update(
        self, guild_id: int, user_id: int, change: Callable[[GuildConfig], dict[str, Any]]
    ) -> GuildConfig:
        async with self.db.transaction() as conn:
            current = await guilds.get(conn, guild_id) or default_config(guild_id)
            fields = {**change(current), "updated_by": user_id, "updated_at": self.clock.now()}
            try:
                updated = current.changed(**fields)
            except ValidationError as exc:  # the checks above should have caught it; never store it
                raise UserInputError(f"that setting is not valid: {exc.errors()[0]['msg']}") from None
            await guilds.upsert(conn, updated)
        return updated
