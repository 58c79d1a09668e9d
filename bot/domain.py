"""Domain models, enums and the legal state transitions.

Timestamps are float seconds since the Unix epoch (UTC): the queue compares them constantly and
SQLite indexes REAL columns well. Ids are uuid4 hex strings, so no user text ever reaches a path.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.errors import ErrorKind, IllegalTransition


def new_id() -> str:
    return uuid.uuid4().hex


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"


class StoryStatus(StrEnum):
    QUEUED = "queued"
    WRITING = "writing"
    ILLUSTRATING = "illustrating"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ImageStatus(StrEnum):
    PENDING = "pending"
    GENERATING = "generating"
    COMPLETE = "complete"
    FAILED = "failed"


class VideoStatus(StrEnum):
    NONE = "none"
    PENDING = "pending"
    GENERATING = "generating"
    COMPLETE = "complete"
    FAILED = "failed"


class AssetStatus(StrEnum):
    PENDING = "PENDING"
    GENERATING = "GENERATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class AssetKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    WRITE_STORY = "write_story"
    RENDER_IMAGE = "render_image"
    RENDER_VIDEO = "render_video"
    DELIVER = "deliver"


class HealthState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    RETIRED = "retired"
    UNCONFIGURED = "unconfigured"


# Each table maps a state to the states it may move to. Anything else raises.
STORY_TRANSITIONS: Mapping[StoryStatus, frozenset[StoryStatus]] = {
    StoryStatus.QUEUED: frozenset({StoryStatus.WRITING, StoryStatus.FAILED, StoryStatus.CANCELLED}),
    StoryStatus.WRITING: frozenset({StoryStatus.ILLUSTRATING, StoryStatus.FAILED, StoryStatus.CANCELLED}),
    StoryStatus.ILLUSTRATING: frozenset({StoryStatus.COMPLETE, StoryStatus.FAILED, StoryStatus.CANCELLED}),
    # A retried scene reopens a finished story until the retry settles.
    StoryStatus.COMPLETE: frozenset({StoryStatus.ILLUSTRATING}),
    StoryStatus.FAILED: frozenset({StoryStatus.ILLUSTRATING, StoryStatus.QUEUED}),
    StoryStatus.CANCELLED: frozenset(),
}

IMAGE_TRANSITIONS: Mapping[ImageStatus, frozenset[ImageStatus]] = {
    ImageStatus.PENDING: frozenset({ImageStatus.GENERATING, ImageStatus.FAILED}),
    ImageStatus.GENERATING: frozenset({ImageStatus.COMPLETE, ImageStatus.FAILED}),
    ImageStatus.COMPLETE: frozenset({ImageStatus.PENDING}),  # redraw
    ImageStatus.FAILED: frozenset({ImageStatus.PENDING}),  # retry
}

VIDEO_TRANSITIONS: Mapping[VideoStatus, frozenset[VideoStatus]] = {
    VideoStatus.NONE: frozenset({VideoStatus.PENDING}),
    VideoStatus.PENDING: frozenset({VideoStatus.GENERATING, VideoStatus.FAILED}),
    VideoStatus.GENERATING: frozenset({VideoStatus.COMPLETE, VideoStatus.FAILED}),
    VideoStatus.COMPLETE: frozenset({VideoStatus.PENDING}),  # the image was redrawn
    VideoStatus.FAILED: frozenset({VideoStatus.PENDING}),  # retry
}

ASSET_TRANSITIONS: Mapping[AssetStatus, frozenset[AssetStatus]] = {
    AssetStatus.PENDING: frozenset({AssetStatus.GENERATING, AssetStatus.FAILED}),
    AssetStatus.GENERATING: frozenset({AssetStatus.COMPLETED, AssetStatus.FAILED}),
    AssetStatus.COMPLETED: frozenset(),
    AssetStatus.FAILED: frozenset(),
}


S = TypeVar("S", bound=StrEnum)


def check_transition(table: Mapping[S, frozenset[S]], current: S, new: S) -> S:
    """Return ``new`` if ``current -> new`` is legal (or a no-op), else raise IllegalTransition."""
    if current == new or new in table[current]:
        return new
    raise IllegalTransition(f"{type(current).__name__}: {current.value} -> {new.value} is not allowed")


class _Model(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid")


class Story(_Model):
    id: str = Field(default_factory=new_id)
    guild_id: int | None = None
    channel_id: int | None = None
    thread_id: int | None = None
    owner_id: int | None = None
    prompt: str
    title: str | None = None
    style: str | None = None
    bible: str | None = None
    text_model: str
    image_model: str
    video_model: str | None = None
    video_mode: bool = False
    reference_path: str | None = None
    scene_count: int = Field(ge=1, le=10)
    status: StoryStatus = StoryStatus.QUEUED
    error: str | None = None
    storyboard_message_id: int | None = None
    out_dir: str | None = None
    post_in_channel: bool = False  # scenes go into the channel, not a thread; delivery_note says why
    delivery_note: str | None = None
    undelivered: str | None = None  # why some deliveries are parked or lost; None once all were posted
    parked_since: float | None = None
    created_at: float
    updated_at: float


class Scene(_Model):
    id: str = Field(default_factory=new_id)
    story_id: str
    index: int = Field(ge=0)
    text: str
    image_status: ImageStatus = ImageStatus.PENDING
    image_path: str | None = None
    image_model_requested: str | None = None
    image_model_used: str | None = None
    image_error: str | None = None
    video_status: VideoStatus = VideoStatus.NONE
    video_path: str | None = None
    video_url: str | None = None
    video_model_requested: str | None = None
    video_model_used: str | None = None
    video_error: str | None = None
    image_message_id: int | None = None
    video_message_id: int | None = None
    updated_at: float


class MediaAsset(_Model):
    id: str = Field(default_factory=new_id)
    story_id: str
    scene_id: str
    kind: AssetKind
    status: AssetStatus = AssetStatus.PENDING
    model_requested: str
    model_used: str | None = None
    fallback_occurred: bool = False
    generation_metadata: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    created_at: float
    updated_at: float


class GenerationJob(_Model):
    id: str = Field(default_factory=new_id)
    kind: JobKind
    payload: dict[str, Any] = Field(default_factory=dict)
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    max_attempts: int = Field(default=5, ge=1)
    interruptions: int = 0  # runs cut short by a dead worker; they do not spend attempts
    run_after: float
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    idempotency_key: str | None = None
    remote_id: str | None = None
    last_error: str | None = None
    story_id: str | None = None
    user_id: int | None = None
    provider: str | None = None
    publisher: str | None = None  # a deliver job's publisher ("discord", "offline"); only it may take the job
    heartbeats: int = 0  # bumped by each claim and heartbeat: how a reaper sees a live owner without clocks
    lease_s: float | None = None  # the lease its owner holds it under
    model_fallback_occurred: bool = False
    generation_warnings: list[str] = Field(default_factory=list)
    result: dict[str, Any] | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None


def check_chain(primary: str, fallbacks: Sequence[str]) -> None:
    """A fallback chain names each model once and never repeats its primary (ValueError otherwise)."""
    if primary in fallbacks:
        raise ValueError(f"the fallback chain repeats the primary model {primary!r}")
    if len(set(fallbacks)) != len(fallbacks):
        raise ValueError("the fallback chain names a model twice")


class RoutingConfig(_Model):
    """How one modality picks and retries its models (the seed's GeminiModelConfig, generalised)."""

    primary_model: str = Field(min_length=1)
    fallbacks: list[str] = Field(default_factory=list)
    max_retries: int = Field(default=3, ge=1, le=10)
    retry_delay_ms: int = Field(default=1000, ge=100, le=10_000)
    model_availability_check: bool = True

    @model_validator(mode="after")
    def _chain_is_sane(self) -> RoutingConfig:
        check_chain(self.primary_model, self.fallbacks)
        return self

    @property
    def chain(self) -> list[str]:
        return [self.primary_model, *self.fallbacks]


# -- per-server settings (/config) ------------------------------------------------------------------


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


# -- what the health book keeps of each model and each call ------------------------------------------


@dataclass
class ModelHealth:
    """The model_health row: what the checker and the calls have said about one model (survives restarts)."""

    key: str
    state: HealthState = HealthState.UP
    available: bool = True
    last_success: float | None = None
    last_failure: float | None = None
    error_count: int = 0
    consecutive_failures: int = 0  # failures that count against the model (not content-policy blocks)
    breaker_state: str = "closed"
    breaker_reopen_at: float | None = None
    cooldown_until: float | None = None
    last_check: float | None = None
    probe_failed: bool = False  # the last check failed and no call has succeeded since
    retired: bool = False  # a check (404, shutdown date) or a call said the provider retired it
    key_rejected: bool = False  # a check was refused the API key
    last_error: str | None = None  # plain words
    successor: str | None = None
    unavailable_since: float | None = None


@dataclass
class Bucket:
    """Calls of one model in one 5-minute bucket (the model_call_buckets row)."""

    model_key: str
    bucket_start: float
    calls: int = 0
    successes: int = 0
    fallbacks: int = 0
    max_latency_ms: float = 0.0
    latency_hist: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessBeat:
    """A process serving the database, as of its last heartbeat: its role (all, gateway or worker), where it
    runs, the gateway shards it holds, and how many jobs it runs at once."""

    id: str
    role: str
    host: str
    pid: int
    shards: str | None
    worker_slots: int
    started_at: float
    beat_at: float


@dataclass(frozen=True)
class KindDepth:
    """The queue's jobs of one kind: how many are queued (ready or not) and running, and how long the
    longest-waiting ready one has been due (None when none is ready)."""

    queued: int = 0
    running: int = 0
    oldest_ready_age_s: float | None = None


@dataclass(frozen=True)
class ModelHold:
    """A model held back until ``until`` by some process: its breaker open (``kind`` 'breaker') or benched
    after an auth, quota or retirement error (``kind`` 'cooldown', ``reason`` the error kind)."""

    model_key: str
    kind: str
    until: float
    reason: str | None = None


@dataclass(frozen=True)
class CallRecord:
    model_key: str
    started_at: float
    latency_ms: float
    error_kind: ErrorKind | None
    fallback: bool
