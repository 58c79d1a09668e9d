"""Per-server settings set with /config: routing per modality, video on or off, daily limits, alerts.

A server with no row uses the operator's settings. ``routing`` holds only the modalities the server
overrode; ``routing_for`` merges them with the operator's retry settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.domain import Modality, RoutingConfig, check_chain

MAX_DAILY_LIMIT = 10_000
MAX_FALLBACKS = 4


class ModalityRoute(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    primary_model: str = Field(min_length=1)
    fallbacks: tuple[str, ...] = Field(default=(), max_length=MAX_FALLBACKS)

    @model_validator(mode="after")
    def _chain_is_sane(self) -> ModalityRoute:
        check_chain(self.primary_model, self.fallbacks)
        return self

    @property
    def chain(self) -> list[str]:
        return [self.primary_model, *self.fallbacks]


class GuildConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    guild_id: int
    routing: dict[Modality, ModalityRoute] = Field(default_factory=dict)
    video_enabled: bool = True
    daily_image_limit: int | None = Field(default=None, ge=0, le=MAX_DAILY_LIMIT)
    daily_video_limit: int | None = Field(default=None, ge=0, le=MAX_DAILY_LIMIT)
    alert_channel_id: int | None = None
    updated_by: int | None = None
    updated_at: float = 0.0

    def routing_for(self, modality: Modality, default: RoutingConfig) -> RoutingConfig:
        """The operator's RoutingConfig with this server's primary and fallbacks, when it set them."""
        route = self.routing.get(modality)
        if route is None:
            return default
        return default.model_copy(update={"primary_model": route.primary_model, "fallbacks": list(route.fallbacks)})

    def changed(self, **fields: object) -> GuildConfig:
        """A validated copy with ``fields`` replaced (model_copy alone would skip validation)."""
        return GuildConfig.model_validate({**self.model_dump(), **fields})


def default_config(guild_id: int) -> GuildConfig:
    return GuildConfig(guild_id=guild_id)
