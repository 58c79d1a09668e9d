"""Encoding H.264 clips and re-encoding one to fit under an upload limit (lower bitrate, then resolution).

Kept apart from the store and the probes because it is the only code that encodes video: the PyAV output
settings Discord plays inline and the search over bitrate/resolution steps. Results are committed through
bot.media's atomic writes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av

from bot.errors import MediaError
from bot.media.probe import probe_video
from bot.media.store import fsync_and_replace, temp_path_for

if TYPE_CHECKING:
    from av.container import OutputContainer
    from av.video.stream import VideoStream

log = logging.getLogger(__name__)

H264_PRESET = "veryfast"


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
