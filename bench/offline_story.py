"""Wall time and peak memory of the offline 4-scene story with video, and CPU time per Ken Burns clip.

pipeline: the whole story through the durable queue, SQLite (synchronous=FULL), the router and the
          offline publisher, exactly as `storybot story --video` runs it.
before:   the same pipeline with the Ken Burns encoder as it was before issue #13 (``baseline_encode``,
          kept here so the comparison keeps running after the product code changes).
direct:   the same local provider calls (text, 4 images, 4 clips) with the same concurrency, no
          queue, no database, no publisher: the floor the pipeline is measured against.
clips:    the story's 4 pictures encoded one clip at a time by ``encode_ken_burns`` and by
          ``baseline_encode`` alternately, in one process: CPU time (the whole process, so the
          encoder's own threads count) and wall time per clip.
Each mode runs in its own process, three times, interleaved; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import random
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

from bench.common import emit, machine, peak_rss_mib, ratio, run_mode

SCENES = 4
PROMPT = "a lighthouse keeper befriends a storm"
RUNS = 3
STORY_MODES = ("direct", "pipeline", "before")

# --- the Ken Burns encoder before issue #13, frozen: a Pillow RGB resize and a colour conversion per
# frame, the whole picture (caption included) zoomed, libx264 veryfast at CRF 23 ---------------------

BASELINE_FPS = 24
BASELINE_OUTPUT_PIXELS = 960 * 540
BASELINE_MAX_ZOOM = 1.18


def _baseline_even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _baseline_output_size(source_width: int, source_height: int) -> tuple[int, int]:
    aspect = source_width / source_height
    return (
        _baseline_even(math.sqrt(BASELINE_OUTPUT_PIXELS * aspect)),
        _baseline_even(math.sqrt(BASELINE_OUTPUT_PIXELS / aspect)),
    )


class _BaselineKenBurns:
    def __init__(self, source_size: tuple[int, int], output: tuple[int, int], rng: random.Random) -> None:
        src_w, src_h = source_size
        out_aspect = output[0] / output[1]
        self.base_w = min(src_w, src_h * out_aspect)
        self.base_h = self.base_w / out_aspect
        self.center = (src_w / 2, src_h / 2)
        self.zoom_in = rng.random() < 0.5
        self.start = (rng.uniform(-1, 1), rng.uniform(-1, 1))
        self.end = (rng.uniform(-1, 1), rng.uniform(-1, 1))

    def box(self, t: float) -> tuple[float, float, float, float]:
        eased = 0.5 - 0.5 * math.cos(math.pi * t)
        progress = eased if self.zoom_in else 1 - eased
        zoom = 1 + (BASELINE_MAX_ZOOM - 1) * progress
        width, height = self.base_w / zoom, self.base_h / zoom
        slack_x, slack_y = (self.base_w - width) / 2, (self.base_h - height) / 2
        u = self.start[0] + (self.end[0] - self.start[0]) * eased
        v = self.start[1] + (self.end[1] - self.start[1]) * eased
        cx, cy = self.center[0] + u * slack_x, self.center[1] + v * slack_y
        return (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)


def baseline_encode(source: Image.Image, dest: Path, duration_s: int, rng: random.Random) -> None:
    """``bot.providers.local_video.encode_ken_burns`` as it was before issue #13 (same signature)."""
    width, height = _baseline_output_size(*source.size)
    scale = max(width * BASELINE_MAX_ZOOM / source.width, height * BASELINE_MAX_ZOOM / source.height)
    if scale < 1:
        shrunk = (math.ceil(source.width * scale), math.ceil(source.height * scale))
        source = source.resize(shrunk, Image.Resampling.BICUBIC, reducing_gap=2.0)
    motion = _BaselineKenBurns(source.size, (width, height), rng)
    frame_count = BASELINE_FPS * duration_s
    container = av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"})
    stream = container.add_stream("libx264", rate=BASELINE_FPS)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23"}
    with container:
        for index in range(frame_count):
            box = motion.box(index / max(frame_count - 1, 1))
            picture = source.resize((width, height), Image.Resampling.BILINEAR, box=box)
            frame = av.VideoFrame.from_image(picture).reformat(format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, BASELINE_FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# --- the modes ---------------------------------------------------------------------------------------


async def _pipeline(root: Path) -> float:
    from bot.runtime import Runtime
    from bot.services.stories import StoryOptions
    from bot.settings import load_settings

    settings = load_settings(database_path=root / "db.sqlite", media_dir=root / "media")
    started = time.perf_counter()
    async with Runtime(settings, out_dir=root / "out") as rt:
        await rt.stories.create(StoryOptions(prompt=PROMPT, scenes=SCENES, video=True))
        stats = await rt.run_until_empty()
        assert stats.failed == 0 and stats.dead == 0
    return time.perf_counter() - started


async def _direct(root: Path) -> float:
    from bot.providers.base import ImageRequest, ReferenceImage, StoryRequest, VideoRequest
    from bot.providers.local.adapter import LocalProvider
    from bot.settings import load_settings

    settings = load_settings()
    local = LocalProvider(root / "staging")
    gate = asyncio.Semaphore(settings.provider_concurrency)
    started = time.perf_counter()
    draft = await local.write_story(StoryRequest(model="local-template", prompt=PROMPT, scene_count=SCENES))

    async def scene(i: int, text: str) -> None:
        async with gate:
            image = await local.generate_image(ImageRequest(model="local-sketch", prompt=text, seed=f"s:{i}"))
        async with gate:
            request = VideoRequest(model="local-kenburns", prompt=text, duration_s=settings.video_duration_s,
                                   image=ReferenceImage(data=image.data, mime_type=image.mime_type))  # fmt: skip
            remote = await local.submit_video(request)
            poll = await local.poll_video(remote)
            await local.download_video(poll, remote, root / f"{i}.mp4")

    await asyncio.gather(*(scene(i, text) for i, text in enumerate(draft.scenes)))
    return time.perf_counter() - started


async def _pictures() -> list[Image.Image]:
    from bot.providers.base import ImageRequest, StoryRequest
    from bot.providers.local.adapter import LocalImageProvider, LocalTextProvider

    draft = await LocalTextProvider().write_story(
        StoryRequest(model="local-template", prompt=PROMPT, scene_count=SCENES)
    )
    pictures = []
    for i, text in enumerate(draft.scenes):
        image = await LocalImageProvider().generate_image(
            ImageRequest(model="local-sketch", prompt=text, seed=f"s:{i}")
        )
        with Image.open(io.BytesIO(image.data)) as opened:
            pictures.append(opened.convert("RGB"))
    return pictures


def _clips(root: Path) -> dict[str, Any]:
    """CPU and wall seconds per clip for both encoders, alternating which goes first per picture."""
    from bot.providers.local.video import encode_ken_burns
    from bot.settings import load_settings

    duration = load_settings().video_duration_s
    pictures = asyncio.run(_pictures())
    encoders = {"after": encode_ken_burns, "before": baseline_encode}
    encode_ken_burns(pictures[0], root / "warm.mp4", duration, random.Random(0))  # first-use costs, paid once
    cpu: dict[str, list[float]] = {name: [] for name in encoders}
    wall: dict[str, list[float]] = {name: [] for name in encoders}
    size: dict[str, list[int]] = {name: [] for name in encoders}
    for index, picture in enumerate(pictures):
        order = list(encoders) if index % 2 == 0 else list(reversed(encoders))
        for name in order:
            dest = root / f"{name}-{index}.mp4"
            cpu_started, wall_started = time.process_time(), time.perf_counter()
            encoders[name](picture, dest, duration, random.Random(index))
            cpu[name].append(time.process_time() - cpu_started)
            wall[name].append(time.perf_counter() - wall_started)
            size[name].append(dest.stat().st_size)
    return {
        **{f"{name}_cpu_s": statistics.median(values) for name, values in cpu.items()},
        **{f"{name}_wall_s": statistics.median(values) for name, values in wall.items()},
        **{f"{name}_kib": statistics.median(values) / 1024 for name, values in size.items()},
        "seconds": duration,
    }


def _child(mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if mode == "clips":
            emit(_clips(root))
            return
        if mode == "before":
            from bot.providers.local import video as local_video

            local_video.encode_ken_burns = baseline_encode  # type: ignore[assignment]
        cpu_started = time.process_time()
        wall = asyncio.run(_direct(root) if mode == "direct" else _pipeline(root))
        cpu = time.process_time() - cpu_started
    emit({"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak_rss_mib()})


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(run[key]) for run in runs)


def _row(label: str, after: float, before: float, unit: str) -> None:
    print(f"  {label:<13} after {after:8.2f} {unit:<3}  before {before:8.2f} {unit:<3}  ratio {ratio(after, before)}")


def main() -> None:
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in (*STORY_MODES, "clips")}
    for _ in range(RUNS):  # interleaved, so drift on a shared machine hits every mode alike
        for mode in results:
            results[mode].append(run_mode("bench.offline_story", mode))
    med = {mode: {k: _median(results[mode], k) for k in ("wall_s", "cpu_s", "peak_rss_mib")} for mode in STORY_MODES}
    print(f"offline {SCENES}-scene story with video ({machine()}; median of {RUNS})")
    for key, unit in (("wall_s", "s"), ("peak_rss_mib", "MiB")):
        base, value = med["direct"][key], med["pipeline"][key]
        print(f"  {key:<13} pipeline {value:8.2f} {unit:<3}  direct {base:8.2f} {unit:<3}  ratio {ratio(value, base)}")
    print("  Ken Burns clips now (after) against the encoder before issue #13 (before), in this same run")
    for key, label in (("wall_s", "story wall"), ("cpu_s", "story CPU")):
        _row(label, med["pipeline"][key], med["before"][key], "s")
    clips = results["clips"]
    seconds = int(_median(clips, "seconds"))
    for key, label, unit in (("cpu_s", "clip CPU", "s"), ("wall_s", "clip wall", "s"), ("kib", "clip size", "KiB")):
        _row(label, _median(clips, f"after_{key}"), _median(clips, f"before_{key}"), unit)
    print(f"  (a clip is {seconds} s at 24 fps, encoded alone; CPU counts every thread of the process)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=(*STORY_MODES, "clips"))
    args = parser.parse_args()
    _child(args.mode) if args.mode else main()
