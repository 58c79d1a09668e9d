"""Another process holds the database's write lock while a story renders: nothing is lost or doubled."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.domain import JobKind, JobStatus, StoryStatus
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import Settings, load_settings

SHORT_BUSY_TIMEOUT_MS = 200


# Another process, with nothing but Python's sqlite3: it takes the write lock, says so, and lets go
# when told (a line on stdin) or when the test closes its stdin.
pytestmark = pytest.mark.sqlite_only  # SQLite's file lock held by another process

HOLDER_SCRIPT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
conn.close()
"""


class LockHolder:
    """Another process holding ``BEGIN IMMEDIATE`` on the database until released."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held = threading.Event()
        self.release = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self._releaser = threading.Thread(target=self._release_when_told, name="lock-releaser", daemon=True)
        self._hold_s: float | None = None

    def take(self, *, hold_s: float | None = None) -> None:
        """Take the lock and return once it is held; with ``hold_s`` it is released after that long."""
        self._hold_s = hold_s
        self._process = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, str(self.path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "held":
            self._process.wait(timeout=10)
            raise AssertionError(f"could not take the lock: {self._process.communicate()[1]}")
        self.held.set()
        self._releaser.start()

    def _release_when_told(self) -> None:
        self.release.wait(timeout=self._hold_s if self._hold_s is not None else 30)
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write("\n")
        self._process.stdin.flush()

    def join(self) -> None:
        self.release.set()
        if self._process is None:
            return  # never taken
        self._releaser.join(timeout=10)
        _, stderr = self._process.communicate(timeout=10)
        assert self._process.returncode == 0, stderr


class WorkerWarnings(logging.Handler):
    """Collects warnings and errors from storybot; once every phrase in ``release_after`` has been
    logged, it releases ``holder``: the lock stays held until the worker has noticed it."""

    def __init__(self, holder: LockHolder, release_after: set[str]) -> None:
        super().__init__(level=logging.WARNING)
        self.holder = holder
        self.release_after = release_after
        self.messages: list[str] = []

    def seen_all(self) -> bool:
        return all(any(phrase in m for m in self.messages) for phrase in self.release_after)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if self.release_after and self.seen_all():
            self.holder.release.set()


@contextmanager
def watching(holder: LockHolder, release_after: set[str]) -> Iterator[WorkerWarnings]:
    handler = WorkerWarnings(holder, release_after)
    loggers = [logging.getLogger("bot"), logging.getLogger("storage")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    return load_settings(database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media")


def lock_on_first_image(worker: Any, holder: LockHolder, **take: Any) -> None:
    """Take the lock the moment the first render_image job starts: mid-story, with jobs in flight."""
    handlers = worker.handlers
    real = handlers[JobKind.RENDER_IMAGE]
    started: list[bool] = []

    async def render_image_then_lock(job: Any, ctx: Any) -> Any:
        if not started:
            started.append(True)
            holder.take(**take)
        return await real(job, ctx)

    handlers[JobKind.RENDER_IMAGE] = render_image_then_lock


async def assert_story_whole(rt: Runtime, story_id: str, scenes: int) -> None:
    """Complete, each scene drawn exactly once, every job settled as succeeded and none left running."""
    db = rt.db
    (status,) = await db.fetchone("SELECT status FROM stories WHERE id = ?", (story_id,)) or ("missing",)
    assert status == StoryStatus.COMPLETE.value
    rows = await db.fetchall("SELECT image_status, image_path FROM scenes WHERE story_id = ?", (story_id,))
    assert len(rows) == scenes
    assert all(r["image_status"] == "complete" and Path(r["image_path"]).is_file() for r in rows)
    per_scene = await db.fetchall(
        "SELECT scene_id, count(*) AS n FROM media_assets WHERE kind = 'image' AND status = 'COMPLETED' "
        "GROUP BY scene_id"
    )
    assert len(per_scene) == scenes and all(r["n"] == 1 for r in per_scene)
    assert (await db.fetchone("SELECT count(*) FROM media_assets WHERE status != 'COMPLETED'") or (1,))[0] == 0
    jobs = await db.fetchall("SELECT kind, status FROM jobs WHERE story_id = ?", (story_id,))
    assert jobs and all(r["status"] == JobStatus.SUCCEEDED.value for r in jobs), [tuple(r) for r in jobs]


async def test_story_waits_out_a_short_lock(settings: Settings, tmp_path: Path) -> None:
    holder = LockHolder(settings.database_path)
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="a lighthouse keeper befriends a storm", scenes=2))
        worker = rt.worker()
        lock_on_first_image(worker, holder, hold_s=1.0)
        with watching(holder, release_after=set()) as warnings:
            stats = await worker.run_until_empty()
        holder.join()
        assert holder.held.is_set()
        assert (stats.failed, stats.dead, stats.retried, stats.lease_lost) == (0, 0, 0, 0)
        # Shorter than busy_timeout: every write simply waited; nothing failed, nothing was retried.
        assert warnings.messages == []
        assert (await rt.db.fetchone("SELECT max(attempts) FROM jobs") or (0,))[0] == 1
        await assert_story_whole(rt, story.id, scenes=2)
    assert (tmp_path / "out" / story.id / "index.html").is_file()


# What the worker must have logged (and survived) before the lock is let go.
LONG_LOCK_MOMENTS = {
    "before_the_worker_starts": {"queue maintenance failed", "could not claim a job"},
    "mid_render": {"could not claim a job", "could not be settled"},
}


@pytest.mark.parametrize("moment", list(LONG_LOCK_MOMENTS))
async def test_worker_outlasts_a_lock_longer_than_busy_timeout(settings: Settings, tmp_path: Path, moment: str) -> None:
    holder = LockHolder(settings.database_path)
    # The fake clock lets a lease left by a settle that failed expire without waiting for it.
    rt = Runtime(settings, clock=FakeClock(), out_dir=tmp_path / "out")
    rt.db.busy_timeout_ms = SHORT_BUSY_TIMEOUT_MS
    async with rt:
        story = await rt.stories.create(StoryOptions(prompt="a clockmaker who repairs time", scenes=2))
        worker = rt.worker()
        with watching(holder, release_after=LONG_LOCK_MOMENTS[moment]) as warnings:
            if moment == "before_the_worker_starts":
                holder.take()
            else:
                lock_on_first_image(worker, holder)
            try:
                stats = await worker.run_until_empty()
            finally:
                holder.join()
        assert warnings.seen_all(), warnings.messages
        assert stats.failed == 0 and stats.dead == 0
        await assert_story_whole(rt, story.id, scenes=2)
        assert (await rt.queue.counts())[JobStatus.RUNNING] == 0
        if moment == "mid_render":
            # The jobs whose settle failed were left running; their lease expired and they ran again.
            assert (await rt.db.fetchone("SELECT max(interruptions) FROM jobs") or (0,))[0] >= 1
    assert (tmp_path / "out" / story.id / "index.html").is_file()
