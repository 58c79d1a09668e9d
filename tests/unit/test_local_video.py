"""The Ken Burns clips (``local-kenburns``): the caption band stays whole and still, the camera glides.

Every test decodes the encoded MP4, so it holds for what a viewer sees, compression included.
"""

from __future__ import annotations

import io
import math
import random
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from bot.media.probe import MediaLimits, check_clip
from bot.providers.base import ImageRequest
from bot.providers.local.image import LocalImageProvider
from bot.providers.local.video import FPS, KenBurns, KenBurnsFrames, band_height, encode_ken_burns, output_size

# Long enough to wrap over the caption's full width, so its first and last words touch the margins.
LONG_PROMPT = (
    "Wren the lighthouse keeper climbs the spiral stairs at dusk, lights the great lamp and waits, "
    "listening, while the storm rolls in over the grey water and knocks politely at the glass"
)


class ScriptedRandom(random.Random):
    """``random()`` answers from a script (``uniform`` is built on it), so a test picks the camera's path."""

    def __init__(self, values: Iterable[float]) -> None:
        super().__init__(0)
        self.script = iter(values)

    def random(self) -> float:
        return next(self.script)


# Zoom in (0.2 < 0.5) while the view drifts from the centre (x 0, y 0) to the right (x +0.9, y +0.2) of
# the growing slack: every point left of the centre moves left on screen all the way, the centre fastest
# at about 3 px a frame.
ZOOM_IN_PAN_RIGHT = (0.2, 0.5, 0.5, 0.95, 0.6)
# Zoom out (0.8) from the bottom left of the slack (x -0.9, y +0.8) to its top right (x +0.9, y -0.8).
ZOOM_OUT_FROM_BOTTOM_LEFT = (0.8, 0.05, 0.9, 0.95, 0.1)


def decoded_luma(path: Path) -> list[Image.Image]:
    """Every frame's Y plane, as the player decodes it."""
    with av.open(str(path)) as container:
        planes = [frame.planes[0] for frame in container.decode(video=0)]
        return [Image.frombuffer("L", (p.width, p.height), bytes(p), "raw", "L", p.line_size, 1).copy() for p in planes]


def decoded_rgb(path: Path, indices: Iterable[int]) -> dict[int, Image.Image]:
    wanted = set(indices)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return {i % len(frames): frames[i].to_image() for i in wanted}


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / len(a.getbands())


def expected_band(source: Image.Image, size: tuple[int, int]) -> Image.Image:
    """The picture's bottom rows, as many as the clip's band holds, scaled to the clip's width: what a
    viewer should see under every frame."""
    width, height = size
    band = band_height(height)
    top = source.height * (1 - band / height)
    return source.resize((width, band), Image.Resampling.LANCZOS, box=(0, top, source.width, source.height))


async def local_picture(aspect: str) -> Image.Image:
    request = ImageRequest(model="local-sketch", prompt=LONG_PROMPT, aspect_ratio=aspect, seed="kb")
    image = await LocalImageProvider().generate_image(request)
    with Image.open(io.BytesIO(image.data)) as opened:
        return opened.convert("RGB")


@pytest.mark.parametrize(
    ("aspect", "path"), [("16:9", ZOOM_IN_PAN_RIGHT), ("9:16", ZOOM_OUT_FROM_BOTTOM_LEFT), ("1:1", None)]
)
async def test_the_caption_band_is_whole_and_still_in_every_frame(
    tmp_path: Path, aspect: str, path: tuple[float, ...] | None
) -> None:
    source = await local_picture(aspect)
    clip = tmp_path / "clip.mp4"
    encode_ken_burns(source, clip, 3, ScriptedRandom(path) if path else random.Random(11))
    size = output_size(*source.size)
    width, height = size
    band_box = (0, height - band_height(height), width, height)
    want = expected_band(source, size)
    frames = decoded_rgb(clip, (0, -1))
    first, last = frames[0], frames[max(frames)]
    for frame in (first, last):
        band = frame.crop(band_box)
        assert mean_difference(band, want) < 3.5  # scaling and compression; a crop or a shift costs ~30
        # The caption's first and last words live in the band's outer tenths: a crop would move them.
        for side in ((0, 0, width // 10, band.height), (width - width // 10, 0, width, band.height)):
            assert mean_difference(band.crop(side).convert("L"), want.crop(side).convert("L")) < 3.5
    moving_box = (0, 0, width, band_box[1])
    assert mean_difference(first.crop(moving_box), last.crop(moving_box)) > 5  # while the picture moved
    lumas = decoded_luma(clip)
    still = lumas[0].crop(band_box)
    assert max(mean_difference(luma.crop(band_box), still) for luma in lumas) < 0.5


def test_corner_marks_in_the_band_survive_the_zoom(tmp_path: Path) -> None:
    """White marks in the caption band's far corners (where a caption's first and last words sit) are
    in the first and the last frame, at the same place, as bright as drawn."""
    source = Image.new("RGB", (1024, 576), (30, 60, 90))
    draw = ImageDraw.Draw(source)
    for x0 in (6, 1024 - 46):
        draw.rectangle((x0, 576 - 50, x0 + 40, 576 - 10), fill=(255, 255, 255))
    clip = tmp_path / "marks.mp4"
    encode_ken_burns(source, clip, 3, ScriptedRandom(ZOOM_IN_PAN_RIGHT))
    frames = decoded_rgb(clip, (0, -1))
    scale = 960 / 1024
    for frame in frames.values():
        for x0 in (6, 1024 - 46):
            inner = (x0 + 6) * scale, (576 - 44) * scale, (x0 + 34) * scale, (576 - 16) * scale
            assert min(ImageStat.Stat(frame.crop(inner).convert("L")).mean) > 235


def dots_picture() -> tuple[Image.Image, list[tuple[float, float]]]:
    """A dark picture with soft bright dots in its moving part, and the dots' centres (continuous
    coordinates: pixel i spans i to i+1)."""
    picture = Image.new("L", (1024, 576), 0)
    draw = ImageDraw.Draw(picture)
    centres = [(412.5, 180.5), (480.5, 230.5), (450.5, 300.5)]
    for cx, cy in centres:
        draw.ellipse((cx - 8, cy - 8, cx + 8, cy + 8), fill=255)
    return picture.filter(ImageFilter.GaussianBlur(3)).convert("RGB"), centres


def centroid(luma: Image.Image, around: tuple[float, float], reach: int = 22) -> tuple[float, float]:
    """The brightness-weighted centre of the dot near ``around``, in output pixel-centre coordinates."""
    left, top = round(around[0]) - reach, round(around[1]) - reach
    window = luma.crop((left, top, left + 2 * reach + 1, top + 2 * reach + 1))
    total = sx = sy = 0.0
    for index, value in enumerate(window.tobytes()):
        weight = max(0, value - 30)  # above video black (16) and the encoder's noise around the dot
        total += weight
        sx += weight * (index % window.width)
        sy += weight * (index // window.width)
    assert total > 0, "the dot left the frame"
    return left + sx / total, top + sy / total


def luma_plane(frame: av.VideoFrame) -> Image.Image:
    plane = frame.planes[0]
    return Image.frombuffer("L", (plane.width, plane.height), bytes(plane), "raw", "L", plane.line_size, 1).copy()


@dataclass(frozen=True)
class Smoothness:
    """How closely a dot must follow the camera's float path. Whole-pixel positioning misses it by up to
    half a pixel (about 0.29 px RMS) and moves in steps like 0, 1, 0, 2 where the path moves 0.5 or 1 px a
    frame: a step off by up to a pixel."""

    max_error: float
    rms_error: float
    step_error: float  # how far one frame's move may differ from the path's
    backwards: float  # how far a step may go against the motion (noise where the motion eases to a stop)


# The frames as the encoder gets them: only rounding to 8 bits.
EXACT = Smoothness(max_error=0.05, rms_error=0.02, step_error=0.05, backwards=0.02)
# The decoded clip: the encoder's quantisation moves a dot's centroid by about 0.1 px RMS.
DECODED = Smoothness(max_error=0.4, rms_error=0.15, step_error=0.6, backwards=0.3)


def check_dot_tracks(
    frames: list[Image.Image], motion: KenBurns, top_height: int, centres: list[tuple[float, float]], limits: Smoothness
) -> None:
    width = frames[0].width
    for cx, cy in centres:
        measured, expected = [], []
        for index, luma in enumerate(frames):
            left, top, right, bottom = motion.box(index / (len(frames) - 1))
            scale_x, scale_y = width / (right - left), top_height / (bottom - top)
            want = ((cx - left) * scale_x - 0.5, (cy - top) * scale_y - 0.5)
            expected.append(want)
            measured.append(centroid(luma, want))
        errors = [math.dist(m, e) for m, e in zip(measured, expected, strict=True)]
        assert max(errors) < limits.max_error, f"dot at {cx, cy}: {max(errors):.2f} px off its path"
        assert math.sqrt(statistics.fmean(e * e for e in errors)) < limits.rms_error
        steps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(measured, measured[1:], strict=False)]
        wanted = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(expected, expected[1:], strict=False)]
        step_errors = [math.dist(step, want) for step, want in zip(steps, wanted, strict=True)]
        assert max(step_errors) < limits.step_error, f"dot at {cx, cy}: a step {max(step_errors):.2f} px off"
        # The path moves one way (left) all along, at up to 3 px a frame, where whole-pixel steps would show...
        assert all(dx < 0 for dx, _ in wanted) and min(dx for dx, _ in wanted) < -2
        # ...and so does what is seen: no standstill or step back while the path moves on.
        assert all(dx < limits.backwards for dx, _ in steps)


def test_the_camera_glides_with_sub_pixel_steps(tmp_path: Path) -> None:
    source, centres = dots_picture()
    seconds = 3
    clip = tmp_path / "dots.mp4"
    encode_ken_burns(source, clip, seconds, ScriptedRandom(ZOOM_IN_PAN_RIGHT))
    decoded = decoded_luma(clip)
    assert len(decoded) == FPS * seconds
    renderer = KenBurnsFrames(source, decoded[0].size, ScriptedRandom(ZOOM_IN_PAN_RIGHT))
    fed = [luma_plane(renderer.frame(i / (len(decoded) - 1))) for i in range(len(decoded))]
    check_dot_tracks(fed, renderer.motion, renderer.top_height, centres, EXACT)
    check_dot_tracks(decoded, renderer.motion, renderer.top_height, centres, DECODED)


async def test_the_clip_passes_the_media_checks_and_is_deterministic(tmp_path: Path) -> None:
    source = await local_picture("16:9")
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    encode_ken_burns(source, first, 4, random.Random(7))
    encode_ken_burns(source, second, 4, random.Random(7))
    info = check_clip(first, MediaLimits())
    assert (info.width, info.height, info.frames, info.codec) == (960, 540, 96, "h264")
    assert first.read_bytes() == second.read_bytes()
