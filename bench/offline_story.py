"""Wall time and peak memory of the offline 4-scene story with video.

pipeline: the whole story through the durable queue, SQLite (synchronous=FULL), the router and the
          offline publisher, exactly as `storybot story --video` runs it.
direct:   the same local provider calls (text, 4 images, 4 clips) with the same concurrency, no
          queue, no database, no publisher: the floor the pipeline is measured against.
Each mode runs in its own process, three times; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import emit, machine, peak_rss_mib, ratio, run_mode

SCENES = 4
PROMPT = "a lighthouse keeper befriends a storm"
RUNS = 3


async def _pipeline(root: Path) -> float:
    from bot.runtime import Runtime
    from bot.settings import load_settings
    from bot.stories import StoryOptions

    settings = load_settings(database_path=root / "db.sqlite", media_dir=root / "media")
    started = time.perf_counter()
    async with Runtime(settings, out_dir=root / "out") as rt:
        await rt.stories.create(StoryOptions(prompt=PROMPT, scenes=SCENES, video=True))
        stats = await rt.run_until_empty()
        assert stats.failed == 0 and stats.dead == 0
    return time.perf_counter() - started


async def _direct(root: Path) -> float:
    from bot.providers.local import LocalProvider

    from bot.providers.base import ImageRequest, ReferenceImage, StoryRequest, VideoRequest
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


def _child(mode: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wall = asyncio.run(_pipeline(Path(tmp)) if mode == "pipeline" else _direct(Path(tmp)))
    emit({"wall_s": wall, "peak_rss_mib": peak_rss_mib()})


def main() -> None:
    results: dict[str, list[dict[str, float]]] = {"direct": [], "pipeline": []}
    for _ in range(RUNS):  # interleaved, so drift on a shared machine hits both alike
        for mode in results:
            results[mode].append(run_mode("bench.offline_story", mode))
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "peak_rss_mib")} for m, rs in results.items()}
    print(f"offline {SCENES}-scene story with video ({machine()}; median of {RUNS})")
    for key, unit in (("wall_s", "s"), ("peak_rss_mib", "MiB")):
        base, value = med["direct"][key], med["pipeline"][key]
        print(f"  {key:<13} pipeline {value:8.2f} {unit:<3}  direct {base:8.2f} {unit:<3}  ratio {ratio(value, base)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("pipeline", "direct"))
    args = parser.parse_args()
    _child(args.mode) if args.mode else main()
