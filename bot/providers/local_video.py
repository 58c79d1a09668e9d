"""The embedded animator: a Ken Burns pan and zoom over the scene's image, encoded as H.264.

It follows the same submit -> poll -> download contract as the remote providers. ``submit``
renders at once (in a worker thread) into ``staging_dir/<remote_id>.mp4``; ``poll`` reports it
done while that file exists, and ``download`` moves it to the caller's path. A render lost to a
restart polls as failed, so the pipeline submits again.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import math
import random
import re
import uuid
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, UnidentifiedImageError

from bot.errors import ErrorKind, ProviderError
from bot.media import MediaWriteError, fsync_and_replace, link_or_copy, temp_path_for
from bot.media_fit import even, open_h264_output
from bot.providers.base import VideoPoll, VideoRequest, VideoState

log = logging.getLogger(__name__)

FPS = 24
MIN_DURATION_S, MAX_DURATION_S = 3, 5
OUTPUT_PIXELS = 960 * 540  # 16:9 gives exactly 960x540; other shapes keep about the same area
MAX_ZOOM = 1.18
LOST_RENDER = "the local render was lost; submit again"
REMOTE_ID = re.compile(r"[0-9a-f]{32}")


def output_size(source_width: int, source_height: int) -> tuple[int, int]:
    aspect = source_width / source_height
    return even(math.sqrt(OUTPUT_PIXELS * aspect)), even(math.sqrt(OUTPUT_PIXELS / aspect))


class KenBurns:
    """A smooth zoom (in or out) with a drift across the picture, as crop boxes over the source."""

    def __init__(self, source_size: tuple[int, int], output: tuple[int, int], rng: random.Random) -> None:
        src_w, src_h = source_size
        out_aspect = output[0] / output[1]
        # The largest box with the output's shape, centred in the source.
        self.base_w = min(src_w, src_h * out_aspect)
        self.base_h = self.base_w / out_aspect
        self.center = (src_w / 2, src_h / 2)
        self.zoom_in = rng.random() < 0.5
        self.start = (rng.uniform(-1, 1), rng.uniform(-1, 1))
        self.end = (rng.uniform(-1, 1), rng.uniform(-1, 1))

    def box(self, t: float) -> tuple[float, float, float, float]:
        eased = 0.5 - 0.5 * math.cos(math.pi * t)
        progress = eased if self.zoom_in else 1 - eased
        zoom = 1 + (MAX_ZOOM - 1) * progress
        width, height = self.base_w / zoom, self.base_h / zoom
        slack_x, slack_y = (self.base_w - width) / 2, (self.base_h - height) / 2
        u = self.start[0] + (self.end[0] - self.start[0]) * eased
        v = self.start[1] + (self.end[1] - self.start[1]) * eased
        cx, cy = self.center[0] + u * slack_x, self.center[1] + v * slack_y
        return (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


class LocalVideoProvider:
    """Ken Burns clips (model key ``local-kenburns``), staged under ``staging_dir``."""

    def __init__(self, staging_dir: Path) -> None:
        self.staging_dir = staging_dir

    def staged_path(self, remote_id: str) -> Path:
        if not REMOTE_ID.fullmatch(remote_id):
            raise ProviderError(ErrorKind.BAD_REQUEST, f"not a local render id: {remote_id[:40]!r}")
        return self.staging_dir / f"{remote_id}.mp4"

    async def submit_video(self, request: VideoRequest) -> str:
        remote_id = uuid.uuid4().hex
        await asyncio.to_thread(self._render, request, remote_id)
        return remote_id

    async def poll_video(self, remote_id: str) -> VideoPoll:
        if self.staged_path(remote_id).is_file():
            return VideoPoll(state=VideoState.DONE, progress=100, url=None)
        return VideoPoll(state=VideoState.FAILED, error=LOST_RENDER)

    async def download_video(self, poll: VideoPoll, remote_id: str, dest: Path) -> None:
        """Link the staged clip to ``dest``. The staged file stays until ``sweep``, like a provider's
        hosted copy, so a crash between download and commit can download it again."""
        staged = self.staged_path(remote_id)
        try:
            await asyncio.to_thread(link_or_copy, staged, dest)
        except FileNotFoundError as exc:
            raise ProviderError(ErrorKind.BAD_REQUEST, LOST_RENDER) from exc
        except OSError as exc:
            raise ProviderError(ErrorKind.TRANSIENT, f"could not copy the local render: {exc}") from exc

    def sweep(self, older_than_s: float, now: float) -> int:
        """Delete staged clips older than ``older_than_s``; returns how many went."""
        removed = 0
        for staged in self.staging_dir.glob("*.mp4"):
            try:
                if now - staged.stat().st_mtime > older_than_s:
                    staged.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def _render(self, request: VideoRequest, remote_id: str) -> None:
        source = decode_image(request.image.data, request.model)
        duration = min(max(request.duration_s, MIN_DURATION_S), MAX_DURATION_S)
        digest = hashlib.sha256(f"{request.seed}\x1f{request.prompt}".encode("utf-8", "surrogatepass")).digest()
        rng = random.Random(int.from_bytes(digest[:16], "big"))
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        final = self.staged_path(remote_id)
        temp = temp_path_for(final)
        try:
            encode_ken_burns(source, temp, duration, rng)
            fsync_and_replace(temp, final)
        except MediaWriteError:
            temp.unlink(missing_ok=True)
            raise  # our own disk (full, read-only), not the model: the job retries with that plain message
        except (av.FFmpegError, OSError) as exc:
            temp.unlink(missing_ok=True)
            raise ProviderError(
                ErrorKind.TRANSIENT, f"the local video render failed: {exc}", model=request.model
            ) from exc
        log.info("local clip %s rendered: %d s", remote_id, duration)


def decode_image(data: bytes, model: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderError(ErrorKind.BAD_REQUEST, f"the scene image could not be decoded: {exc}", model=model) from exc


def encode_ken_burns(source: Image.Image, dest: Path, duration_s: int, rng: random.Random) -> None:
    width, height = output_size(*source.size)
    # Shrink a large source first: each frame's resize then reads fewer pixels and aliases less.
    scale = max(width * MAX_ZOOM / source.width, height * MAX_ZOOM / source.height)
    if scale < 1:
        shrunk = (math.ceil(source.width * scale), math.ceil(source.height * scale))
        source = source.resize(shrunk, Image.Resampling.BICUBIC, reducing_gap=2.0)
    motion = KenBurns(source.size, (width, height), rng)
    frame_count = FPS * duration_s
    container, stream = open_h264_output(dest, width, height, FPS)
    with container:
        for index in range(frame_count):
            box = motion.box(index / max(frame_count - 1, 1))
            picture = source.resize((width, height), Image.Resampling.BILINEAR, box=box)
            frame = av.VideoFrame.from_image(picture).reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
