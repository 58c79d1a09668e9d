"""Media files: uuid paths, atomic writes, probing, and fitting clips under an upload limit.

Every file is written to a hidden ``.<name>.part`` sibling, fsynced, renamed over the final name
and the directory fsynced, so a crash leaves either the whole file or none (plus a stale
``.part`` that ``sweep_partials`` removes). File names are uuids: no user text reaches a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import io
import logging
import mimetypes
import os
import re
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
from PIL import Image, UnidentifiedImageError

from bot.errors import StorybotError

if TYPE_CHECKING:
    from av.container import OutputContainer
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
STORY_ID = re.compile(r"[0-9a-f]{1,64}")
EXTENSION = re.compile(r"[a-z0-9]{1,8}")
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "mp4": "video/mp4"}
H264_PRESET = "veryfast"
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class MediaError(StorybotError, ValueError):
    """A media file is not what it should be: it does not decode, is truncated, or cannot be made to fit."""


class ImageTooLarge(MediaError):
    """An image declares more pixels than allowed (found from its header, before anything was decoded)."""


class MediaWriteError(StorybotError):
    """Writing a media file failed (disk full, permissions...); nothing was left at the final path."""

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True, slots=True)
class StoredFile:
    path: Path
    bytes: int
    sha256: str
    mime_type: str


@dataclass(frozen=True, slots=True)
class ImageInfo:
    width: int
    height: int
    format: str


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    frames: int
    duration_s: float
    codec: str


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
    """A hidden sibling of ``final``: same directory, so the rename onto it is atomic."""
    return final.with_name(f".{final.name}.part")


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


def sweep_partials(folder: Path, pattern: str, older_than_s: float, now: float | None = None) -> int:
    """Remove temp files a killed writer left behind (``pattern`` under ``folder``) older than
    ``older_than_s``; a younger one may belong to a writer still at work. Blocking."""
    cutoff = (time.time() if now is None else now) - older_than_s
    removed = 0
    for part in folder.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if part.stat().st_mtime < cutoff:
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


def move_file(source: Path, dest: Path) -> None:
    """Rename ``source`` to ``dest``, copying when they sit on different filesystems."""
    try:
        os.replace(source, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        try:
            shutil.copyfile(source, dest)
            with dest.open("rb") as handle:
                os.fsync(handle.fileno())
        except OSError:
            dest.unlink(missing_ok=True)
            raise
        source.unlink()


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

    def sweep_partials(self, older_than_s: float, now: float | None = None) -> int:
        """Remove ``.part`` files older than ``older_than_s`` under the store; returns how many. Blocking."""
        return sweep_partials(self.root, "*/.*.part", older_than_s, now)

    def delete_story(self, story_id: str) -> None:
        """Remove every file of one story. Blocking."""
        shutil.rmtree(self.story_dir(story_id), ignore_errors=True)


def probe_image(source: Path | bytes) -> ImageInfo:
    """Decode an image fully (a file path or its bytes); MediaError if it does not decode."""
    name = source.name if isinstance(source, Path) else "the image"
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            image.load()
            return ImageInfo(image.width, image.height, image.format or "unknown")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"{name} is not a readable image: {exc}") from exc


def check_pixels(data: bytes, max_pixels: int) -> None:
    """ImageTooLarge ("W×H pixels") when the image declares more than ``max_pixels``, read from its header
    alone: a small file can declare a picture that takes gigabytes to decode. Bytes that are not an image
    pass (probe_image says what is wrong with them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with its size
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"over {2 * (Image.MAX_IMAGE_PIXELS or 0) // 1_000_000} megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return
    if width * height > max_pixels:
        raise ImageTooLarge(f"{width}×{height} pixels")


def probe_video(path: Path) -> VideoInfo:
    """Decode every frame (so a truncated file is caught) and describe the first video stream."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path.name} has no video stream")
            stream = container.streams.video[0]
            declared = stream.frames
            decoded = sum(1 for _ in container.decode(stream))
            rate = float(stream.average_rate or 24)
            duration = container.duration / 1_000_000 if container.duration else decoded / rate
            info = VideoInfo(
                stream.codec_context.width, stream.codec_context.height, decoded, duration, stream.codec_context.name
            )
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name} is not a readable video: {exc}") from exc
    if decoded == 0 or (declared and decoded < declared):
        raise MediaError(f"{path.name} is truncated: decoded {decoded} of {declared or '?'} frames")
    return info


def open_h264_output(
    path: Path, width: int, height: int, fps: Fraction | int, *, bit_rate: int | None = None
) -> tuple[OutputContainer, VideoStream]:
    """An MP4 container with one H.264 stream that browsers and Discord play inline."""
    container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    options: dict[str, object] = {"preset": H264_PRESET}
    if bit_rate is None:
        options["crf"] = "23"
    else:
        stream.bit_rate = bit_rate
        options |= {"maxrate": str(bit_rate), "bufsize": str(bit_rate * 2)}
    stream.options = options
    return container, stream


def even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


# (resolution scale, share of the bit budget) tried in order until the clip fits.
FIT_STEPS = ((1.0, 0.9), (1.0, 0.65), (0.75, 0.55), (0.5, 0.45), (0.35, 0.35))
CONTAINER_OVERHEAD_BYTES = 8 * 1024
AUDIO_GUESS_BPS = 128_000


async def fit_to_upload_limit(path: Path, limit_bytes: int) -> Path:
    """``path`` if it is within ``limit_bytes``, else a re-encoded sibling that is.

    Lowers the bitrate first, then the resolution. The original is left in place. Raises
    MediaError when even the smallest step does not fit.
    """
    return await asyncio.to_thread(_fit_sync, path, limit_bytes)


def _fit_sync(path: Path, limit_bytes: int) -> Path:
    size = path.stat().st_size
    if size <= limit_bytes:
        return path
    info = probe_video(path)
    duration = max(info.duration_s, 0.1)
    audio_bps = _audio_bit_rate(path)
    budget_bps = (limit_bytes - CONTAINER_OVERHEAD_BYTES) * 8 / duration - audio_bps
    if budget_bps <= 0:
        raise MediaError(f"{path.name} cannot fit in {limit_bytes} bytes")
    for scale, share in FIT_STEPS:
        width, height = even(info.width * scale), even(info.height * scale)
        final = path.with_name(f"{uuid.uuid4().hex}.mp4")
        temp = temp_path_for(final)
        try:
            _reencode(path, temp, width, height, int(budget_bps * share))
        except (av.FFmpegError, OSError) as exc:
            temp.unlink(missing_ok=True)
            raise MediaError(f"re-encoding {path.name} failed: {exc}") from exc
        new_size = temp.stat().st_size
        log.info(
            "re-encoded %s at %dx%d: %d -> %d bytes (limit %d)", path.name, width, height, size, new_size, limit_bytes
        )
        if new_size <= limit_bytes:
            fsync_and_replace(temp, final)
            return final
        temp.unlink()
    raise MediaError(f"{path.name} could not be made smaller than {limit_bytes} bytes")


def _audio_bit_rate(path: Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0
        return container.streams.audio[0].bit_rate or AUDIO_GUESS_BPS


def _reencode(source: Path, dest: Path, width: int, height: int, bit_rate: int) -> None:
    """Re-encode the video at a new size and bitrate; audio packets are copied untouched."""
    with av.open(str(source)) as inp:
        video_in = inp.streams.video[0]
        audio_in = inp.streams.audio[0] if inp.streams.audio else None
        rate = video_in.average_rate or Fraction(24)
        output, video_out = open_h264_output(dest, width, height, rate, bit_rate=bit_rate)
        with output:
            audio_out = output.add_stream_from_template(audio_in) if audio_in is not None else None
            index = 0
            for packet in inp.demux(*[s for s in (video_in, audio_in) if s is not None]):
                if packet.stream.type == "video":
                    for frame in packet.decode():
                        if not isinstance(frame, av.VideoFrame):
                            continue
                        scaled = frame.reformat(width=width, height=height, format="yuv420p")
                        scaled.pts, scaled.time_base = index, 1 / Fraction(rate)
                        index += 1
                        output.mux(video_out.encode(scaled))
                elif audio_out is not None and packet.dts is not None:
                    packet.stream = audio_out
                    output.mux(packet)
            output.mux(video_out.encode(None))
