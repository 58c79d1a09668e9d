"""The disk fills up while media are written: the job fails cleanly with a plain message and is retried
later with backoff, no file at a final path is partial, and once space is freed the story completes.

The fault is injected at the os level inside bot/media/store.py (every media write goes through it): while
the disk is "full", an fsync of a regular file cuts it to half (what never reached the disk) and
raises ENOSPC, as a filesystem with delayed allocation reports a full disk.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bot.domain import JobStatus
from bot.media import store as media_store
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import Settings, load_settings
from tests.support.ledger import assert_nothing_lost_or_doubled, decode_media, media_files

SCENES = 2
DISK_FULL_TEXT = "the disk is full (No space left on device); free some space, then try again"


class FullDisk:
    """Stands in for the ``os`` module inside bot.media. While ``full``, fsync of a regular file whose
    name ends with ``suffix`` truncates it to half and raises ENOSPC; everything else is the real os."""

    def __init__(self, real: ModuleType, suffix: str = "") -> None:
        self._real = real
        self.suffix = suffix
        self.full = True
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def fsync(self, fd: int) -> None:
        info = self._real.fstat(fd)
        path = self._real.readlink(f"/proc/self/fd/{fd}")
        if self.full and stat.S_ISREG(info.st_mode) and path.endswith(self.suffix):
            self._real.truncate(path, info.st_size // 2)
            self.refused.append(path)
            raise OSError(errno.ENOSPC, self._real.strerror(errno.ENOSPC))
        self._real.fsync(fd)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media", video_duration_s=3, video_poll_s=0
    )


async def wait_for_disk_full_retry(rt: Runtime, timeout_s: float = 60.0) -> tuple[list[dict[str, Any]], float]:
    """Run the worker until a job has failed on the full disk and is queued again; then stop it.
    Returns the jobs that failed so, as seen at that moment, and the moment."""
    stop = asyncio.Event()
    worker = asyncio.create_task(rt.worker(idle_poll_s=0.05).run_forever(stop))
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                rows = await rt.db.fetchall(
                    "SELECT kind, status, attempts, run_after, last_error FROM jobs WHERE last_error LIKE ?",
                    (f"%{DISK_FULL_TEXT}%",),
                )
                if any(r["status"] == JobStatus.QUEUED.value for r in rows):
                    return [dict(r) for r in rows], rt.clock.now()
                assert not worker.done(), worker
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=60)


def final_files(media: Path) -> list[Path]:
    """Files at final paths in the stories' folders (not hidden temp files, not the local video staging)."""
    return [p for p in media_files(media) if ".staging" not in p.parts]


@pytest.mark.parametrize(("moment", "suffix"), [("writing_images", ""), ("writing_clips", ".mp4.part")])
async def test_a_full_disk_fails_the_job_cleanly_and_it_completes_once_space_is_freed(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: str, suffix: str
) -> None:
    disk = FullDisk(os, suffix)
    monkeypatch.setattr(media_store, "os", disk)
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="a lighthouse keeper befriends a storm", scenes=SCENES,
                                                     video=True))  # fmt: skip
        failed, seen_at = await wait_for_disk_full_retry(rt)
        assert disk.refused, "the full disk was never written to"
        if moment == "writing_clips":
            assert all(path.endswith(".mp4.part") for path in disk.refused)

        # The job failed cleanly: queued again for later with its attempt counted, nothing given up.
        queued = [r for r in failed if r["status"] == JobStatus.QUEUED.value]
        assert queued and all(r["attempts"] >= 1 and r["run_after"] > seen_at for r in queued), (queued, seen_at)
        counts = await rt.queue.counts()
        assert counts[JobStatus.FAILED] == counts[JobStatus.DEAD] == counts[JobStatus.RUNNING] == 0, counts
        # No partial file anywhere: the refused writes left neither a temp file nor a file at a final path.
        assert not list(tmp_path.rglob("*.part")), list(tmp_path.rglob("*.part"))
        for path in media_files(tmp_path):
            decode_media(path)
        referenced = {
            Path(r["path"]) for r in await rt.db.fetchall("SELECT path FROM media_assets WHERE path IS NOT NULL")
        }
        assert set(final_files(tmp_path / "media")) == referenced, "a failed write left a file behind"
        if moment == "writing_images":
            assert referenced == set()

        disk.full = False  # space is freed: the retries go through
        stats = await rt.run_until_empty(idle_poll_s=0.05)
        assert (stats.dead, stats.failed) == (0, 0), stats

    ledger = assert_nothing_lost_or_doubled(settings.database_path, stories=1, scenes=SCENES, video=True)
    assert set(final_files(tmp_path / "media")) == ledger.referenced, "orphan files at final paths"
    assert not list(tmp_path.rglob("*.part"))
    assert (tmp_path / "out" / story.id / "index.html").is_file()


def test_a_full_disk_reads_as_plain_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media_store, "os", FullDisk(os))
    store = media_store.MediaStore(tmp_path)
    with pytest.raises(media_store.MediaWriteError) as refused:
        asyncio.run(store.write_bytes("ab12", b"\x89PNG" + bytes(100), "png"))
    assert refused.value.errno == errno.ENOSPC
    assert str(refused.value).endswith(f": {DISK_FULL_TEXT}")
    assert list(tmp_path.rglob("*")) == [tmp_path / "ab12"]  # neither the temp file nor the final one
