from __future__ import annotations

import itertools
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import pytest
from pydantic import ValidationError

from bot.domain import (
    ASSET_TRANSITIONS,
    IMAGE_TRANSITIONS,
    STORY_TRANSITIONS,
    VIDEO_TRANSITIONS,
    AssetKind,
    AssetStatus,
    GenerationJob,
    ImageStatus,
    JobKind,
    MediaAsset,
    RoutingConfig,
    Scene,
    Story,
    StoryStatus,
    VideoStatus,
    check_transition,
    new_id,
)
from bot.errors import IllegalTransition

NOW = 1_800_000_000.0

TABLES: dict[str, tuple[Mapping[Any, frozenset[Any]], type[StrEnum]]] = {
    "story": (STORY_TRANSITIONS, StoryStatus),
    "image": (IMAGE_TRANSITIONS, ImageStatus),
    "video": (VIDEO_TRANSITIONS, VideoStatus),
    "asset": (ASSET_TRANSITIONS, AssetStatus),
}


def legal_moves(table: Mapping[Any, frozenset[Any]]) -> list[tuple[Any, Any]]:
    return [(current, new) for current, targets in table.items() for new in targets]


def illegal_moves(table: Mapping[Any, frozenset[Any]], states: type[StrEnum]) -> list[tuple[Any, Any]]:
    return [(a, b) for a, b in itertools.product(states, repeat=2) if a != b and b not in table[a]]


@pytest.mark.parametrize("name", TABLES)
def test_every_state_has_a_row(name: str) -> None:
    table, states = TABLES[name]
    assert set(table) == set(states)
    assert all(target in set(states) for targets in table.values() for target in targets)


@pytest.mark.parametrize("name", TABLES)
def test_every_legal_move_passes(name: str) -> None:
    table, _ = TABLES[name]
    moves = legal_moves(table)
    assert moves
    for current, new in moves:
        assert check_transition(table, current, new) is new


@pytest.mark.parametrize("name", TABLES)
def test_staying_put_is_a_no_op(name: str) -> None:
    table, states = TABLES[name]
    for state in states:
        assert check_transition(table, state, state) is state


@pytest.mark.parametrize("name", TABLES)
def test_every_other_move_raises(name: str) -> None:
    table, states = TABLES[name]
    moves = illegal_moves(table, states)
    assert moves
    for current, new in moves:
        with pytest.raises(IllegalTransition):
            check_transition(table, current, new)


@pytest.mark.parametrize(
    ("table", "current", "new", "message"),
    [
        (VIDEO_TRANSITIONS, VideoStatus.NONE, VideoStatus.COMPLETE, "VideoStatus: none -> complete is not allowed"),
        (VIDEO_TRANSITIONS, VideoStatus.NONE, VideoStatus.GENERATING, "VideoStatus: none -> generating"),
        (ASSET_TRANSITIONS, AssetStatus.COMPLETED, AssetStatus.GENERATING, "AssetStatus: COMPLETED -> GENERATING"),
        (ASSET_TRANSITIONS, AssetStatus.FAILED, AssetStatus.PENDING, "AssetStatus: FAILED -> PENDING"),
        (STORY_TRANSITIONS, StoryStatus.CANCELLED, StoryStatus.QUEUED, "StoryStatus: cancelled -> queued"),
        (STORY_TRANSITIONS, StoryStatus.QUEUED, StoryStatus.COMPLETE, "StoryStatus: queued -> complete"),
        (IMAGE_TRANSITIONS, ImageStatus.PENDING, ImageStatus.COMPLETE, "ImageStatus: pending -> complete"),
        (IMAGE_TRANSITIONS, ImageStatus.COMPLETE, ImageStatus.GENERATING, "ImageStatus: complete -> generating"),
    ],
)
def test_sample_illegal_moves_raise_with_a_readable_message(
    table: Mapping[Any, frozenset[Any]], current: StrEnum, new: StrEnum, message: str
) -> None:
    with pytest.raises(IllegalTransition, match=f"^{message}"):
        check_transition(table, current, new)


def test_illegal_transition_is_a_value_error() -> None:
    assert issubclass(IllegalTransition, ValueError)


def test_design_rules_hold_in_the_tables() -> None:
    # A failed video is retryable, and a retried scene reopens a finished story.
    assert VideoStatus.PENDING in VIDEO_TRANSITIONS[VideoStatus.FAILED]
    assert StoryStatus.ILLUSTRATING in STORY_TRANSITIONS[StoryStatus.COMPLETE]
    # Cancelled stories and finished assets are terminal.
    assert STORY_TRANSITIONS[StoryStatus.CANCELLED] == frozenset()
    assert ASSET_TRANSITIONS[AssetStatus.COMPLETED] == frozenset()
    assert ASSET_TRANSITIONS[AssetStatus.FAILED] == frozenset()


# --- RoutingConfig ------------------------------------------------------------------------------


def test_routing_config_defaults_and_chain() -> None:
    config = RoutingConfig(primary_model="gpt-image-1.5", fallbacks=["grok-imagine-image", "local-sketch"])
    assert config.chain == ["gpt-image-1.5", "grok-imagine-image", "local-sketch"]
    assert (config.max_retries, config.retry_delay_ms) == (3, 1000)
    assert config.model_availability_check is True
    assert RoutingConfig(primary_model="local-sketch").chain == ["local-sketch"]


def test_routing_config_rejects_the_primary_in_its_fallbacks() -> None:
    with pytest.raises(ValidationError, match="repeats the primary model 'a'"):
        RoutingConfig(primary_model="a", fallbacks=["b", "a"])


def test_routing_config_rejects_a_repeated_fallback() -> None:
    with pytest.raises(ValidationError, match="names a model twice"):
        RoutingConfig(primary_model="a", fallbacks=["b", "b"])


@pytest.mark.parametrize(
    ("field", "bad", "good"),
    [
        ("max_retries", 0, 1),
        ("max_retries", 11, 10),
        ("retry_delay_ms", 99, 100),
        ("retry_delay_ms", 10_001, 10_000),
    ],
)
def test_routing_config_ranges(field: str, bad: float, good: float) -> None:
    with pytest.raises(ValidationError, match=field):
        RoutingConfig(primary_model="a", **{field: bad})
    assert getattr(RoutingConfig(primary_model="a", **{field: good}), field) == good


def test_routing_config_validates_assignment_and_forbids_unknown_fields() -> None:
    config = RoutingConfig(primary_model="a")
    with pytest.raises(ValidationError):
        config.max_retries = 0
    with pytest.raises(ValidationError):
        config.fallbacks = ["a"]
    with pytest.raises(ValidationError, match="fallback_model"):
        RoutingConfig(primary_model="a", fallback_model="b")  # type: ignore[call-arg]


# --- model field constraints --------------------------------------------------------------------


def make_story(**fields: Any) -> Story:
    values: dict[str, Any] = {
        "prompt": "a fox learns to fly",
        "text_model": "local-template",
        "image_model": "local-sketch",
        "scene_count": 3,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Story(**{**values, **fields})


@pytest.mark.parametrize("count", [0, 11, -1])
def test_story_scene_count_out_of_range_is_rejected(count: int) -> None:
    with pytest.raises(ValidationError, match="scene_count"):
        make_story(scene_count=count)


@pytest.mark.parametrize("count", [1, 10])
def test_story_scene_count_bounds_are_accepted(count: int) -> None:
    assert make_story(scene_count=count).scene_count == count


def test_story_defaults_and_assignment_validation() -> None:
    story = make_story()
    assert story.status is StoryStatus.QUEUED
    assert story.video_mode is False and story.video_model is None
    assert len(story.id) == 32 and int(story.id, 16) >= 0
    assert make_story().id != story.id
    with pytest.raises(ValidationError):
        story.scene_count = 11
    with pytest.raises(ValidationError):
        story.status = "sleeping"  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        make_story(colour="red")


def test_new_id_is_unique_hex() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(value) == 32 and value == value.lower() for value in ids)


def test_scene_defaults_and_index_constraint() -> None:
    scene = Scene(story_id="s", index=0, text="once", updated_at=NOW)
    assert scene.image_status is ImageStatus.PENDING
    assert scene.video_status is VideoStatus.NONE
    with pytest.raises(ValidationError, match="index"):
        Scene(story_id="s", index=-1, text="once", updated_at=NOW)


def test_media_asset_defaults() -> None:
    asset = MediaAsset(
        story_id="s", scene_id="c", kind=AssetKind.IMAGE, model_requested="dalle", created_at=NOW, updated_at=NOW
    )
    assert asset.status is AssetStatus.PENDING
    assert asset.fallback_occurred is False and asset.generation_metadata == {}
    with pytest.raises(ValidationError, match="kind"):
        MediaAsset(story_id="s", scene_id="c", kind="audio", model_requested="x", created_at=NOW, updated_at=NOW)


def test_generation_job_constraints() -> None:
    job = GenerationJob(kind=JobKind.RENDER_IMAGE, run_after=NOW, created_at=NOW, updated_at=NOW)
    assert (job.attempts, job.max_attempts, job.payload, job.generation_warnings) == (0, 5, {}, [])
    with pytest.raises(ValidationError, match="max_attempts"):
        GenerationJob(kind=JobKind.DELIVER, run_after=NOW, created_at=NOW, updated_at=NOW, max_attempts=0)
    with pytest.raises(ValidationError, match="kind"):
        GenerationJob(kind="dance", run_after=NOW, created_at=NOW, updated_at=NOW)
