"""Probing media: decode an image or a video fully and describe it, or refuse it with MediaError.

Kept apart from the store because probing is about what a file *contains* (PIL and PyAV decoding), while
bot.media is about where files live and how they are written; callers probe downloads before committing them.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from bot.media import ImageTooLarge, MediaError


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
