"""The quota arithmetic and its messages: UTC days, time to midnight, which limit a request breaks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain import Story
from bot.errors import LimitExceeded
from bot.services.quotas import _enforce, _Quota, story_needs, until_midnight, utc_day


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def story(scenes: int, video: bool) -> Story:
    return Story(
        prompt="p", text_model="t", image_model="i", scene_count=scenes, video_mode=video, created_at=0, updated_at=0
    )


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2027-01-01T20:48:00", "3 h 12 min"),
        ("2027-01-01T23:15:00", "45 min"),
        ("2027-01-01T22:00:00", "2 h"),
        ("2027-01-01T23:59:30", "less than a minute"),
        ("2027-01-01T00:00:00", "24 h"),
    ],
)
def test_time_until_midnight_utc(now: str, expected: str) -> None:
    assert until_midnight(at(now)) == expected


def test_the_day_is_the_utc_date() -> None:
    assert utc_day(at("2027-03-04T23:59:59")) == "2027-03-04"
    assert utc_day(at("2027-03-05T00:00:00")) == "2027-03-05"


def test_a_story_needs_a_picture_per_scene_and_a_clip_per_scene_in_video_mode() -> None:
    assert story_needs(story(4, video=False)) == (4, 0)
    assert story_needs(story(3, video=True)) == (3, 3)


@pytest.mark.parametrize(
    ("limit", "used", "needed"),
    [(None, 500, 10), (20, 16, 4), (20, 0, 0), (0, 0, 0)],
    ids=["no-limit", "exactly-at-limit", "needs-none", "zero-limit-needs-none"],
)
def test_requests_within_the_limit_pass(limit: int | None, used: int, needed: int) -> None:
    _enforce(_Quota("pictures", "picture", limit, used, needed), at("2027-01-01T12:00:00"))


@pytest.mark.parametrize(
    ("quota", "expected"),
    [
        (
            _Quota("pictures", "picture", 20, 18, 4),
            "you have used 18 of your 20 pictures today in this server and this story needs 4; "
            "the limit resets in 3 h 12 min (midnight UTC)",
        ),
        (
            _Quota("clips", "clip", 5, 0, 8),
            "this story needs 8 clips but this server allows 5 clips a day per member; choose 5 scenes or fewer",
        ),
        (
            _Quota("pictures", "picture", 1, 0, 2),
            "this story needs 2 pictures but this server allows 1 picture a day per member; choose 1 scene or fewer",
        ),
        (
            _Quota("clips", "clip", 0, 0, 1),
            "this server allows no clips a day; ask a server manager to raise the limit",
        ),
    ],
    ids=["used-up", "needs-more-than-the-limit", "singular", "zero-limit"],
)
def test_a_broken_limit_names_itself_and_when_it_resets(quota: _Quota, expected: str) -> None:
    with pytest.raises(LimitExceeded) as caught:
        _enforce(quota, at("2027-01-01T20:48:00"))
    assert str(caught.value) == expected
