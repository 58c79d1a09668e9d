"""The check every fault test ends with: nothing lost, nothing doubled, every file decodes.

It reads the database from outside (tests/support/database.py ``select``: the SQLite file read-only, or
PostgreSQL when DATABASE_URL is set), so it works the same after a subprocess run (the kill campaign) and
next to a live Runtime.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
from PIL import Image

from tests.support.database import select

MEDIA_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".mp4"}


@dataclass
class Ledger:
    """What the database says was made, for the tests' own extra assertions."""

    story_ids: list[str] = field(default_factory=list)
    scene_ids: list[str] = field(default_factory=list)
    referenced: set[Path] = field(default_factory=set)  # every media path a row points at
    delivery_keys: list[str] = field(default_factory=list)


def decode_media(path: Path) -> None:
    """Decode an image or a clip completely; AssertionError naming the file when it does not."""
    try:
        if path.suffix.lower() == ".mp4":
            with av.open(str(path)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            assert frames > 0, "no frames"
        else:
            with Image.open(path) as image:
                image.load()
    except (OSError, ValueError, av.FFmpegError, SyntaxError) as exc:
        raise AssertionError(f"{path} does not decode: {exc}") from exc


def media_files(folder: Path) -> list[Path]:
    """Media files at final paths under ``folder`` (hidden temp files excluded)."""
    found = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
    return sorted(p for p in found if not p.name.startswith("."))


def _rows(db_path: Path, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
    return select(db_path, sql, params)


def assert_nothing_lost_or_doubled(db_path: Path, *, stories: int, scenes: int, video: bool) -> Ledger:
    """Every story complete; each scene drawn (and animated) exactly once and posted exactly once;
    every job succeeded exactly once per idempotency key; every referenced file decodes."""
    ledger = Ledger()
    story_rows = _rows(db_path, "SELECT id, status, error FROM stories ORDER BY created_at")
    assert len(story_rows) == stories, f"expected {stories} stories, found {len(story_rows)}"
    unfinished = [(r["id"], r["status"], r["error"]) for r in story_rows if r["status"] != "complete"]
    assert not unfinished, f"stories not complete: {unfinished}"
    ledger.story_ids = [r["id"] for r in story_rows]

    jobs = _rows(db_path, "SELECT id, kind, status, attempts, last_error, story_id FROM jobs")
    unsettled = [(r["kind"], r["status"], r["attempts"], r["last_error"]) for r in jobs
                 if r["status"] != "succeeded"]  # fmt: skip
    assert not unsettled, f"jobs not succeeded (lost, dead or failed): {unsettled}"
    per_story_kind = Counter((r["story_id"], r["kind"]) for r in jobs)
    media_jobs = {"write_story": 1, "render_image": scenes, "render_video": scenes if video else 0}
    deliveries_per_story = 1 + scenes + (scenes if video else 0) + 1  # written, images, clips, finished
    for story_id in ledger.story_ids:
        for kind, expected in {**media_jobs, "deliver": deliveries_per_story}.items():
            found = per_story_kind[(story_id, kind)]
            assert found == expected, f"story {story_id}: {found} {kind} jobs, expected {expected}"

    scene_rows = _rows(db_path, "SELECT * FROM scenes ORDER BY story_id, idx")
    assert len(scene_rows) == stories * scenes, f"{len(scene_rows)} scenes, expected {stories * scenes}"
    ledger.scene_ids = [r["id"] for r in scene_rows]
    for scene in scene_rows:
        assert scene["image_status"] == "complete", dict(scene)
        assert scene["video_status"] == ("complete" if video else "none"), dict(scene)

    assets = _rows(db_path, "SELECT id, scene_id, kind, status, path FROM media_assets")
    not_done = [(a["kind"], a["status"]) for a in assets if a["status"] != "COMPLETED"]
    assert not not_done, f"assets not completed: {not_done}"
    per_scene = Counter((a["scene_id"], a["kind"]) for a in assets)
    for scene in scene_rows:
        images = per_scene[(scene["id"], "image")]
        assert images == 1, f"scene {scene['id']}: {images} images"
        clips = per_scene[(scene["id"], "video")]
        assert clips == (1 if video else 0), f"scene {scene['id']}: {clips} clips"
    asset_paths = {(a["scene_id"], a["kind"]): a["path"] for a in assets}
    for scene in scene_rows:
        assert asset_paths[(scene["id"], "image")] == scene["image_path"]
        ledger.referenced.add(Path(scene["image_path"]))
        if video:
            assert asset_paths[(scene["id"], "video")] == scene["video_path"]
            ledger.referenced.add(Path(scene["video_path"]))

    ledger.delivery_keys = [r["key"] for r in _rows(db_path, "SELECT key FROM deliveries")]
    _assert_each_posted_once(ledger, video)
    for path in sorted(ledger.referenced):
        assert path.is_file(), f"{path} is referenced but missing"
        decode_media(path)
    return ledger


def _assert_each_posted_once(ledger: Ledger, video: bool) -> None:
    keys = ledger.delivery_keys
    assert len(keys) == len(set(keys)), "a delivery key was recorded twice"

    def count(prefix: str) -> int:
        return sum(1 for key in keys if key.startswith(prefix))

    for story_id in ledger.story_ids:
        assert count(f"deliver:written:{story_id}") == 1, f"story {story_id}: 'written' not posted exactly once"
        assert count(f"deliver:story:{story_id}:") == 1, f"story {story_id}: final note not posted exactly once"
    for scene_id in ledger.scene_ids:
        assert count(f"deliver:image:{scene_id}:") == 1, f"scene {scene_id}: image not posted exactly once"
        assert count(f"deliver:video:{scene_id}:") == (1 if video else 0), f"scene {scene_id}: clip posted wrongly"
    failures = [key for key in keys if "_failed:" in key]
    assert not failures, f"failure notes were posted: {failures}"
