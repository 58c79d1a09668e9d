"""Media files: uuid paths, atomic writes and sweeping of partial files.

Every file is written to a hidden ``.<writer>.<name>.part`` sibling, fsynced, renamed over the final
name and the directory fsynced, so a crash leaves either the whole file or none (plus a stale
``.part`` that ``sweep_partials`` removes). ``<writer>`` names the process writing it, so a sweep can
remove the leftovers of a killed process at once instead of waiting for them to age. File names are
uuids: no user text reaches a path.
Probing lives in bot.media_probe and fitting clips under an upload limit in bot.media_fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import mimetypes
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.errors import MediaError, MediaWriteError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
STORY_ID = re.compile(r"[0-9a-f]{1,64}")
EXTENSION = re.compile(r"[a-z0-9]{1,8}")
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4"}
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# This process among any that ever had its pid (a restarted container's bot often gets the same one).
_PROCESS_TOKEN = secrets.token_hex(3)
_WRITER = re.compile(r"\.(?P<pid>\d+)-(?P<token>[0-9a-f]{6})\.")


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: Path
    bytes: int
    sha256: str
    mime_type: str


def mime_for(path: Path) -> str:
    ext = path.suffix.lstrip(".").lower()
    return MIME_TYPES.get(ext) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def temp_path_for(final: Path) -> Path:
    """A hidden sibling of ``final`` (same directory, so the rename onto it is atomic) naming its writer."""
    return final.with_name(f".{os.getpid()}-{_PROCESS_TOKEN}.{final.name}.part")


def writer_gone(part: Path, alive: Callable[[int], bool]) -> bool:
    """Whether the process that wrote ``part`` (see ``temp_path_for``) has ended: it can never finish it.

    Our own pid with another token is an earlier process that had our pid. A file that names no
    writer is left to the age rule.
    """
    match = _WRITER.match(part.name)
    if match is None:
        return False
    pid = int(match["pid"])
    if pid == os.getpid():
        return match["token"] != _PROCESS_TOKEN
    return not alive(pid)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_error(verb: str, path: Path, exc: OSError) -> MediaWriteError:
    """A MediaWriteError whose message says what went wrong in words a user can act on."""
    if exc.errno in DISK_FULL:
        reason = f"the disk is full ({exc.strerror or 'no space left'}); free some space, then try again"
    else:
        reason = exc.strerror or str(exc)
    return MediaWriteError(f"could not {verb} {path.name}: {reason}", errno=exc.errno)


def fsync_and_replace(temp: Path, final: Path) -> None:
    """Make ``temp`` durable, then atomically put it at ``final``.

    On failure neither ``temp`` nor ``final`` is left behind, and MediaWriteError says why.
    """
    replaced = False
    try:
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        replaced = True
        fsync_dir(final.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if replaced:  # the rename may not survive a crash, and the caller is told it failed: undo it
            final.unlink(missing_ok=True)
        raise write_error("store", final, exc) from exc


def sweep_partials(
    folder: Path,
    pattern: str,
    older_than_s: float,
    now: float | None = None,
    *,
    alive: Callable[[int], bool] | None = None,
) -> int:
    """Remove temp files a killed writer left behind (``pattern`` under ``folder``) older than
    ``older_than_s``; a younger one may belong to a writer still at work. With ``alive`` (is this pid
    running?), a file whose writer has ended goes too, whatever its age. Blocking."""
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    for part in folder.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < cutoff or (alive is not None and writer_gone(part, alive)):
                part.unlink()
                removed += 1
    if removed:
        log.info("removed %d stale partial files under %s", removed, folder)
    return removed


def link_or_copy(source: Path, dest: Path) -> None:
    """Put a copy of ``source`` at ``dest`` (a hard link when the filesystem allows), keeping ``source``."""
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, dest)


def atomic_write_text(final: Path, text: str) -> None:
    """Write a text file so readers see the old or the new version, never half of one."""
    temp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.part")  # unique: writers may overlap
    temp.write_text(text, encoding="utf-8")
    fsync_and_replace(temp, final)


class MediaStore:
    """Media files under ``root/<story_id>/<uuid>.<ext>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def story_dir(self, story_id: str) -> Path:
        if not STORY_ID.fullmatch(story_id):
            raise MediaError(f"story id must be lowercase hex, got {story_id[:40]!r}")
        return self.root / story_id

    def path_for(self, story_id: str, ext: str) -> Path:
        """A fresh final path for a new file; creates the story's directory."""
        ext = ext.lstrip(".").lower()
        if not EXTENSION.fullmatch(ext):
            raise MediaError(f"file extension must be 1-8 letters or digits, got {ext[:20]!r}")
        directory = self.story_dir(story_id)
        directory.mkdir(parents=True, exist_ok=True)
        return directory / f"{uuid.uuid4().hex}.{ext}"

    @staticmethod
    def temp_path(final: Path) -> Path:
        return temp_path_for(final)

    async def write_bytes(self, story_id: str, data: bytes, ext: str) -> StoredFile:
        final = self.path_for(story_id, ext)
        return await asyncio.to_thread(self._write_sync, data, final)

    @staticmethod
    def _write_sync(data: bytes, final: Path) -> StoredFile:
        temp = temp_path_for(final)
        try:
            with temp.open("xb") as handle:
                handle.write(data)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise write_error("write", final, exc) from exc
        fsync_and_replace(temp, final)
        return StoredFile(final, len(data), hashlib.sha256(data).hexdigest(), mime_for(final))

    async def commit(self, temp: Path, final: Path) -> StoredFile:
        """Make a finished temp file (e.g. a download) durable at ``final`` and describe it."""
        return await asyncio.to_thread(self._commit_sync, temp, final)

    @staticmethod
    def _commit_sync(temp: Path, final: Path) -> StoredFile:
        if temp.parent != final.parent:
            raise MediaError("a temp file must sit next to its final path so the rename is atomic")
        try:
            digest, size = sha256_file(temp), temp.stat().st_size
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise write_error("read", temp, exc) from exc
        fsync_and_replace(temp, final)
        return StoredFile(final, size, digest, mime_for(final))

    def sweep_partials(
        self, older_than_s: float, now: float | None = None, *, alive: Callable[[int], bool] | None = None
    ) -> int:
        """Remove ``.part`` files older than ``older_than_s``, or (given ``alive``) whose writer has ended,
        under the store; returns how many. Blocking."""
        return sweep_partials(self.root, "*/.*.part", older_than_s, now, alive=alive)
