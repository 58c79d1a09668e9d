"""The embedded animator: a Ken Burns pan and zoom over the scene's image, encoded as H.264.

The picture's burned-in caption lives in its bottom ``CAPTION_BAND``; a zoom over the whole picture
would crop the caption's first and last words, so only the picture above the band moves and the band
is drawn once, scaled to the clip's width, and laid unchanged under every frame.

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

from bot.errors import ErrorKind, MediaWriteError, ProviderError
from bot.media.fit import even, open_h264_output
from bot.media.store import fsync_and_replace, link_or_copy, temp_path_for
from bot.providers.base import VideoPoll, VideoRequest, VideoState
from bot.providers.local.image import CAPTION_BAND

log = logging.getLogger(__name__)

FPS = 24
MIN_DURATION_S, MAX_DURATION_S = 3, 5
OUTPUT_PIXELS = 960 * 540  # 16:9 gives exactly 960x540; other shapes keep about the same area
MAX_ZOOM = 1.18
# A pan over a still picture is slow, uniform motion that a diamond search with one sub-pel pass finds as
# well as the preset's hexagon search does: about half the encoder's CPU at the same size and PSNR.
X264_PARAMS = "me=dia:subme=1"
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


def band_height(height: int) -> int:
    """The clip's static caption band in rows: rounded up, so it covers at least CAPTION_BAND of the
    picture, and even, so the band's chroma rows (half height in yuv420p) never mix with the moving part."""
    return min(height - 2, 2 * math.ceil(height * CAPTION_BAND / 2))


def yuv420p_planes(image: Image.Image) -> list[Image.Image]:
    """``image`` as Y, U and V planes (``L`` images, chroma at half size), converted by swscale as the
    encoder's own input would be: the colours match what an RGB frame handed to the encoder gives."""
    frame = av.VideoFrame.from_image(image).reformat(format="yuv420p")
    return [
        Image.frombuffer("L", (plane.width, plane.height), bytes(plane), "raw", "L", plane.line_size, 1)
        for plane in frame.planes
    ]


class KenBurnsFrames:
    """The clip's frames, built straight in the encoder's yuv420p planes.

    Each plane of the picture above the caption band is resampled once per frame from a float crop box
    (Pillow's resize with ``box`` weighs source pixels by their exact sub-pixel distance), so the camera
    glides without whole-pixel steps; sampling Y, U and V as 8-bit planes costs far less than an RGB
    resize followed by a colour conversion per frame. The band is converted once and sits in canvases
    that each frame's moving part is pasted over.
    """

    def __init__(self, source: Image.Image, size: tuple[int, int], rng: random.Random) -> None:
        self.width, self.height = size
        band = band_height(self.height)
        self.top_height = self.height - band
        # The source rows above the band, rounded down to even so the chroma planes split on a whole row
        # too; a picture only a row or two high still gets one row to move over.
        split = int(source.height * self.top_height / self.height) // 2 * 2 or min(source.height, 1)
        self.motion = KenBurns((source.width, split), (self.width, self.top_height), rng)
        # Cropped first so that the filter's reach at the box's bottom edge repeats the picture's last
        # row instead of bleeding the dark caption band into the moving part.
        self.sources = [
            plane.crop((0, 0, plane.width, math.ceil(split / scale)))
            for plane, scale in zip(yuv420p_planes(source), (1, 2, 2), strict=True)
        ]
        template = av.VideoFrame(self.width, self.height, "yuv420p")
        self.canvases = [Image.new("L", (plane.line_size, plane.height)) for plane in template.planes]
        if band > 0:
            # The band's exact share of the picture (not the whole rows below ``split``): scaled alike
            # in both directions, so the caption keeps its shape.
            band_box = (0, source.height * (1 - band / self.height), source.width, source.height)
            band_picture = source.resize((self.width, band), Image.Resampling.LANCZOS, box=band_box)
            for canvas, plane, scale in zip(self.canvases, yuv420p_planes(band_picture), (1, 2, 2), strict=True):
                canvas.paste(plane, (0, self.top_height // scale))

    def frame(self, t: float) -> av.VideoFrame:
        """The frame at ``t`` (0 to 1 through the clip)."""
        left, top, right, bottom = self.motion.box(t)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for source, canvas, plane, scale in zip(self.sources, self.canvases, frame.planes, (1, 2, 2), strict=True):
            box = (left / scale, top / scale, right / scale, bottom / scale)
            moving = source.resize((self.width // scale, self.top_height // scale), Image.Resampling.BILINEAR, box=box)
            canvas.paste(moving, (0, 0))
            plane.update(canvas.tobytes())
        return frame


def encode_ken_burns(source: Image.Image, dest: Path, duration_s: int, rng: random.Random) -> None:
    width, height = output_size(*source.size)
    # Shrink a large source first: each frame's resize then reads fewer pixels and aliases less.
    scale = max(width * MAX_ZOOM / source.width, height * MAX_ZOOM / source.height)
    if scale < 1:
        shrunk = (math.ceil(source.width * scale), math.ceil(source.height * scale))
        source = source.resize(shrunk, Image.Resampling.BICUBIC, reducing_gap=2.0)
    frames = KenBurnsFrames(source, (width, height), rng)
    frame_count = FPS * duration_s
    container, stream = open_h264_output(dest, width, height, FPS)
    stream.options = {**stream.options, "x264-params": X264_PARAMS}
    with container:
        for index in range(frame_count):
            frame = frames.frame(index / max(frame_count - 1, 1))
            frame.pts, frame.time_base = index, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
