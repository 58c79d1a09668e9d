"""Probing media: decode an image or a video and describe it, or refuse it with MediaError.

Kept apart from the store because probing is about what a file *contains* (PIL and PyAV decoding), while
bot.media is about where files live and how they are written; callers probe downloads before committing them.

``check_picture`` and ``check_clip`` are the gate every provider's bytes and every user's reference pass
before they are stored, with the caps in ``MediaLimits`` (one place for them all). Everything here blocks
(it decodes): async callers run it with ``off_loop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import av
from PIL import Image, UnidentifiedImageError

from bot.errors import ImageTooLarge, MediaError

if TYPE_CHECKING:
    from bot.settings import Settings

MiB = 1024 * 1024
# A few kB of PNG can declare a picture that takes gigabytes to decode; no picture we draw or take needs more.
MAX_PICTURE_MEGAPIXELS = 40
# Above the largest reference a user may upload (MAX_REFERENCE_BYTES allows up to 50 MiB).
MAX_PICTURE_BYTES = 50 * MiB
# The longest clip any provider renders (xAI: 15 s), with a second of slack for container rounding.
MAX_CLIP_SECONDS = 16.0
DEFAULT_CLIP_BYTES = 200 * MiB
# A decoder may hold back a few packets (frame reordering) before its first frame: this many at most.
FIRST_FRAME_PACKETS = 32


P = ParamSpec("P")
T = TypeVar("T")
# Decoding threads run at a lower CPU priority than the event loop's thread, so that on a busy machine the
# loop wins a core the moment it has something to do (an interaction to acknowledge) and the decoders take
# what is left; on an idle machine they run at full speed.
MEDIA_THREAD_NICE = 10


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # Linux gives each thread its own nice; elsewhere a no-op
        os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + MEDIA_THREAD_NICE)


_MEDIA_THREADS = ThreadPoolExecutor(
    max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="media", initializer=_lower_priority
)


async def off_loop(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``func`` in a media thread (see MEDIA_THREAD_NICE): decoding and hashing never run on the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_MEDIA_THREADS, functools.partial(func, *args, **kwargs))


@dataclass(frozen=True, slots=True)
class PictureFormat:
    mime_type: str
    ext: str


# The picture formats storybot stores and Discord shows inline, by Pillow's format name.
PICTURE_FORMATS: dict[str, PictureFormat] = {
    "PNG": PictureFormat("image/png", "png"),
    "JPEG": PictureFormat("image/jpeg", "jpg"),
    "WEBP": PictureFormat("image/webp", "webp"),
}
_MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """The caps a picture or a clip must be within to be stored."""

    picture_pixels: int = MAX_PICTURE_MEGAPIXELS * 1_000_000
    picture_bytes: int = MAX_PICTURE_BYTES
    clip_bytes: int = DEFAULT_CLIP_BYTES
    clip_seconds: float = MAX_CLIP_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaLimits:
        return cls(clip_bytes=settings.max_clip_bytes)


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


def decode_picture(data: bytes, limits: MediaLimits) -> ImageInfo:
    """The byte cap, the pixel cap (from the header, before decoding), then a full decode.

    MediaError (ImageTooLarge for the pixel cap) when any of them fails. Blocking.
    """
    if len(data) > limits.picture_bytes:
        raise MediaError(f"the picture is {len(data)} bytes, over the cap of {limits.picture_bytes}")
    check_pixels(data, limits.picture_pixels)
    return probe_image(data)


def check_picture(data: bytes, claimed_mime: str | None, limits: MediaLimits) -> ImageInfo:
    """``decode_picture``, then the format: one storybot stores (PNG, JPEG, WebP) and, given
    ``claimed_mime``, the one it claims to be. MediaError otherwise. Blocking."""
    info = decode_picture(data, limits)
    stored = PICTURE_FORMATS.get(info.format)
    if stored is None:
        raise MediaError(f"the picture is a {info.format} image, not PNG, JPEG or WebP")
    if claimed_mime is not None:
        claimed = claimed_mime.split(";", 1)[0].strip().lower()
        claimed = _MIME_ALIASES.get(claimed, claimed)
        if claimed != stored.mime_type:
            raise MediaError(f"the picture claims to be {claimed[:40]} but is {stored.mime_type}")
    return info


def check_clip(path: Path, limits: MediaLimits) -> VideoInfo:
    """An MP4 whose first video stream is H.264, within the byte, pixel and duration caps, whose packets are
    all there and whose first frame decodes; MediaError otherwise. Blocking.

    Reads the container's metadata and demuxes every packet (cheap: no decoding), so a cut-off file shows as
    a short packet or fewer packets than its index declares; only the first frame is decoded, never the clip.
    """
    size = path.stat().st_size
    if size > limits.clip_bytes:
        raise MediaError(f"the clip is {size} bytes, over the cap of {limits.clip_bytes}")
    with path.open("rb") as handle:
        head = handle.read(12)
    if head[4:8] != b"ftyp":  # every MP4 starts with its file-type box
        raise MediaError("the clip is not an MP4 file")
    try:
        with av.open(str(path)) as container:
            if "mp4" not in container.format.name.split(","):
                raise MediaError(f"the clip is a {container.format.name} file, not an MP4")
            if not container.streams.video:
                raise MediaError("the clip has no video stream")
            stream = container.streams.video[0]
            codec = stream.codec_context
            if codec.name != "h264":
                raise MediaError(f"the clip's video is {codec.name}, not H.264")
            width, height = codec.width, codec.height
            if width <= 0 or height <= 0 or width * height > limits.picture_pixels:
                raise MediaError(f"the clip is {width}×{height} pixels")
            duration = _duration_s(container, stream)
            if duration is None or duration <= 0:
                raise MediaError("the clip does not say how long it is")
            if duration > limits.clip_seconds:
                raise MediaError(f"the clip lasts {duration:.1f} s, over the cap of {limits.clip_seconds:g} s")
            codec.thread_count = 1  # a frame-threaded decoder holds back one packet per thread
            declared, packets, decoded = stream.frames, 0, 0
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if packet.is_corrupt:  # e.g. the last sample cut short by the end of the file
                    raise MediaError(f"the clip is cut short or damaged at packet {packets + 1} of {declared or '?'}")
                packets += 1
                if not decoded and packets <= FIRST_FRAME_PACKETS:
                    decoded = len(packet.decode())
    except av.FFmpegError as exc:
        raise MediaError(f"the clip is not a readable video: {exc}") from exc
    if not decoded:
        raise MediaError("no frame of the clip decodes")
    if declared and packets < declared:
        raise MediaError(f"the clip is truncated: {packets} of {declared} frames are there")
    return VideoInfo(width, height, packets, duration, "h264")


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if container.duration:
        return container.duration / 1_000_000
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


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
