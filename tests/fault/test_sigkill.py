"""Kill the CLI with SIGKILL mid-story, then `storybot work` finishes it: nothing lost, nothing doubled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.media.store import MediaStore, sweep_partials
from bot.publish.storybook import STALE_PARTIAL_S
from bot.runtime import PARTIAL_MAX_AGE_S
from tests.support.database import count, select

pytestmark = pytest.mark.slow

STORYBOT = [sys.executable, "-m", "bot.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "DISCORD_TOKEN"}
    env.update(DATABASE_PATH=str(tmp_path / "storybot.db"), MEDIA_DIR=str(tmp_path / "media"))
    return env


def _count(db: Path, sql: str) -> int:
    return count(db, sql)  # 0 until the database and its tables are made


# Moments to kill at, as "this query has reached 1": after the text, after the first image, mid-video.
KILL_POINTS = {
    "after_writing": "SELECT count(*) FROM scenes",
    "after_first_image": "SELECT count(*) FROM scenes WHERE image_status = 'complete'",
    "while_animating": "SELECT count(*) FROM jobs WHERE kind = 'render_video' AND remote_id IS NOT NULL",
}


@pytest.mark.parametrize("moment", list(KILL_POINTS))
def test_sigkill_then_work_completes_the_story(tmp_path: Path, moment: str) -> None:
    env, db = _env(tmp_path), tmp_path / "storybot.db"
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*STORYBOT, "story", "a clockmaker who repairs time", "--scenes", "3", "--video", "--out", str(out)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while _count(db, KILL_POINTS[moment]) < 1:
        assert proc.poll() is None, f"the story ended before {moment}: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, f"never reached {moment}"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stderr:
        proc.stderr.close()

    finished = subprocess.run([*STORYBOT, "work"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr

    [(status,)] = select(db, "SELECT status FROM stories")
    assert status == "complete"
    assert count(db, "SELECT count(*) FROM jobs WHERE status != 'succeeded'") == 0
    # Exactly one finished image and one finished clip per scene: nothing rendered twice.
    per_scene = select(
        db, "SELECT scene_id, kind, count(*) FROM media_assets WHERE status = 'COMPLETED' GROUP BY scene_id, kind"
    )
    assert len(per_scene) == 6 and all(n == 1 for _, _, n in per_scene)
    assert count(db, "SELECT count(*) FROM media_assets WHERE status != 'COMPLETED'") == 0
    paths = [(row[0], row[1]) for row in select(db, "SELECT image_path, video_path FROM scenes")]
    keys = [row[0] for row in select(db, "SELECT key FROM deliveries")]
    assert len(keys) == len(set(keys)) == 3 + 3 + 2  # images, clips, written + finished
    for image_path, video_path in paths:
        with Image.open(image_path) as image:
            image.verify()
        with av.open(video_path) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0
    # A killed write may leave a hidden temp file, never a file at a final path; the sweep removes temps.
    referenced = {p for pair in paths for p in pair}
    assert not any(path.endswith(".part") for path in referenced)
    for leftover in tmp_path.rglob("*.part"):
        assert leftover.name.startswith(".") and str(leftover) not in referenced
    now = time.time() + PARTIAL_MAX_AGE_S + 1
    MediaStore(tmp_path / "media").sweep_partials(PARTIAL_MAX_AGE_S, now)
    sweep_partials(out, "*/.*.part", STALE_PARTIAL_S, now)  # the storybook's own temp copies
    assert not list(tmp_path.rglob("*.part"))
