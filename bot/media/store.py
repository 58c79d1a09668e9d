"""Media files: uuid paths, atomic writes and sweeping of partial files.

Every file is written to a hidden ``.<writer>.<name>.part`` sibling, fsynced, renamed over the final
name and the directory fsynced, so a crash leaves either the whole file or none (plus a stale
``.part`` that ``sweep_partials`` removes). ``<writer>`` names the process writing it, so a sweep can
remove the leftovers of a killed process at once instead of waiting for them to age. File names are
uuids: no user text reaches a path.
Probing lives in bot.media.probe and fitting clips under an upload limit in bot.media.fit.

With MEDIA_URL (bot.media.objects) the same files also go to S3-compatible object storage, so a worker on
any host can read what another wrote. MEDIA_DIR stays the working area and this host's cache:
``write_bytes`` and ``commit`` first make the file durable there as above, then put it at its key
(``<prefix>/<story id>/<uuid>.<ext>``) in one PUT or a multipart upload that only its completion makes
visible; if that fails, the local file goes too and the error says why, so nothing is half-written anywhere.
``StoredFile.ref``, what rows keep, is then ``s3://bucket/<key>`` instead of the local path. A reader turns
any row's reference into a file on this host with ``local_file``: the path itself for a local reference,
else the cached copy, streamed from the store into a ``.part`` file and renamed into the cache first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from typing import TYPE_CHECKING

from bot.errors import MediaError, MediaStoreError, MediaWriteError
from bot.media.objects import ObjectStorage, is_object_ref

if TYPE_CHECKING:
    from bot.settings import Settings

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
STORY_ID = re.compile(r"[0-9a-f]{1,64}")
EXTENSION = re.compile(r"[a-z0-9]{1,8}")
FILE_NAME = re.compile(r"[0-9a-f]{32}\.[a-z0-9]{1,8}")  # what path_for names a file
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4"}
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# This process among any that ever had its pid (a restarted container's bot often gets the same one).
_PROCESS_TOKEN = secrets.token_hex(3)
_WRITER = re.compile(r"\.(?P<pid>\d+)-(?P<token>[0-9a-f]{6})\.")


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: Path  # the file on this host
    bytes: int
    sha256: str
    mime_type: str
    ref: str = ""  # what a row keeps to name it: the path as text, or its s3:// URL with MEDIA_URL

    def __post_init__(self) -> None:
        if not self.ref:
            object.__setattr__(self, "ref", str(self.path))


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
    """Media files under ``root/<story_id>/<uuid>.<ext>``, and with ``objects`` also at the same names in
    object storage (see the module's docstring)."""

    def __init__(self, root: Path, objects: ObjectStorage | None = None) -> None:
        self.root = root
        self.objects = objects
        self._fetching: dict[Path, asyncio.Lock] = {}  # one download at a time of each file into the cache

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaStore:
        """MEDIA_DIR alone, or with MEDIA_URL the object storage it names with MEDIA_DIR as the cache."""
        objects = ObjectStorage.from_settings(settings) if settings.media_url else None
        return cls(settings.media_dir, objects)

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
        return await self._share(await asyncio.to_thread(self._write_sync, data, final))

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
        return await self._share(await asyncio.to_thread(self._commit_sync, temp, final))

    async def _share(self, stored: StoredFile) -> StoredFile:
        """With object storage: put the durable local file at its key, streamed from disk, and name it by its
        ``s3://`` URL. On failure the local file is removed too and the error raised: nothing is left half-made."""
        if self.objects is None:
            return stored
        key = self.objects.key(stored.path.parent.name, stored.path.name)
        try:
            await self.objects.upload(stored.path, key, stored.mime_type)
        except OSError as exc:
            stored.path.unlink(missing_ok=True)
            raise write_error("read", stored.path, exc) from exc
        except BaseException:
            stored.path.unlink(missing_ok=True)
            raise
        return dataclasses.replace(stored, ref=self.objects.ref(key))

    async def local_file(self, ref: str) -> Path | None:
        """A file on this host holding what a row's reference ``ref`` names.

        A local path is returned as it is (whether it still exists is the caller's to find, as before). An
        ``s3://`` reference is served from the cache under MEDIA_DIR, downloaded first when this host does not
        have it yet (streamed into a ``.part`` file, fsynced, then renamed: the cache never holds half a file);
        None when the store has no such object. MediaStoreError when the store cannot be asked.
        """
        if not is_object_ref(ref):
            return Path(ref)
        if self.objects is None:
            raise MediaStoreError("this file is in object storage, but MEDIA_URL is not set; set it to read the file")
        key = self.objects.key_of(ref)
        folder, _, name = key.rpartition("/")
        story_id = folder.rpartition("/")[2]
        if not FILE_NAME.fullmatch(name):
            raise MediaError(f"not a media file name: {name[:40]!r}")
        final = self.story_dir(story_id) / name
        if final.is_file():
            return final
        lock = self._fetching.setdefault(final, asyncio.Lock())
        try:
            async with lock:
                if not final.is_file():
                    final.parent.mkdir(parents=True, exist_ok=True)
                    if not await self._fetch(key, final):
                        return None
        finally:
            if self._fetching.get(final) is lock and not lock.locked():
                del self._fetching[final]
        return final

    async def _fetch(self, key: str, final: Path) -> bool:
        assert self.objects is not None
        temp = temp_path_for(final)
        try:
            try:
                found = await self.objects.download(key, temp)
            except OSError as exc:
                raise write_error("download", final, exc) from exc
            if found:
                await asyncio.to_thread(fsync_and_replace, temp, final)
            return found
        finally:
            temp.unlink(missing_ok=True)

    async def discard(self, stored: StoredFile) -> None:
        """Remove a file written moments ago that no row will name (its story could not be stored). Best effort."""
        stored.path.unlink(missing_ok=True)
        if self.objects is not None and is_object_ref(stored.ref):
            try:
                await self.objects.delete(self.objects.key_of(stored.ref))
            except MediaStoreError:
                log.warning("an unused file stays in object storage: %s", stored.ref)

    async def delete_story_objects(self, story_id: str) -> int:
        """Delete a story's objects from object storage (its local folder is the caller's); returns how many."""
        if self.objects is None:
            return 0
        return await self.objects.delete_under(self.story_dir(story_id).name)

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
