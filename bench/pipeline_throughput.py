"""Pipeline throughput: 100 stories of 4 scenes with video through the fake providers, against the lower bound.

The fake provider server runs in its own process (``bench.fake_server``) with fixed latencies: every
OpenAI chat answer (the story text) and image answer (generation or edit) is delayed by 200 ms, and an
xAI clip is pending until 2 s after its submit (``FakeProviders.video_render_s``), polled every
VIDEO_POLL_S. The bot's own models are the defaults: gpt-5-mini (text) and gpt-image-1.5 (images),
both OpenAI, and grok-imagine-video (xAI). Limits: 4 worker slots, 2 calls at once per provider.

pipeline: the real ``Runtime`` (bot/runtime.py) with the real adapters and SDKs: every story is
          created through ``StoryService.create`` (each with its own user, in one server), then
          ``run_until_empty`` drains the durable queue. Every state change is a committed SQLite
          transaction with synchronous=FULL; media go to disk and deliveries to the offline publisher.
          Wall time runs from the first create to the drained queue; afterwards every story must be
          complete with every scene's image and clip.
direct:   the same provider calls (story, anchor image, the other images as edits with it, one clip
          per scene: submit, poll every VIDEO_POLL_S, download) through the same adapters under the
          same limits (asyncio semaphores), with no queue, database or publisher: what the fake
          server, the SDKs and this machine allow, shown so the pipeline's own share of the gap is
          visible.

The lower bound those limits allow (S stories, N scenes, latencies t_text, t_image, render time
t_video, W worker slots, P calls per provider):

    bound = max(S * (t_text + N * t_image) / min(P, W) + t_video,  t_text + 2 * t_image + t_video)

Text and images are all OpenAI calls, so at most min(P, W) of them run at once and they take
S * (t_text + N * t_image) / min(P, W) however they are ordered; the last of them is an image, whose
clip still needs t_video to render. (A clip holds no slot while it renders: the job waits in the
queue between polls.) The second term is one story's critical path (text, anchor image, another
image, its clip), which only matters for a handful of stories. Efficiency = bound / wall; the goal
is at least 0.9. Polling adds up to one VIDEO_POLL_S to the last clip; the bound leaves it out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import emit, machine, run_mode
from bench.fake_server import FakeSetup, fake_server

STORIES, SCENES, RUNS = 100, 4, 1
QUICK_STORIES = 8
TEXT_S, IMAGE_S, VIDEO_RENDER_S, VIDEO_POLL_S = 0.2, 0.2, 2.0, 1.0
WORKERS, PER_PROVIDER = 4, 2
GOAL = 0.9
PROMPT = "a lighthouse keeper befriends a storm"
GUILD, CHANNEL, FIRST_OWNER = 1, 10, 1_000


def openai_phase(stories: int, scenes: int) -> float:
    """The least time every text and image call can take: all OpenAI, min(P, W) at once."""
    return stories * (TEXT_S + scenes * IMAGE_S) / min(PER_PROVIDER, WORKERS)


def lower_bound(stories: int, scenes: int) -> float:
    throughput = openai_phase(stories, scenes) + VIDEO_RENDER_S
    critical_path = TEXT_S + (2 if scenes > 1 else 1) * IMAGE_S + VIDEO_RENDER_S
    return max(throughput, critical_path)


async def _warm_up(openai: Any, xai: Any, scenes: int) -> None:
    """One call of each kind before the clock starts: the SDKs' first call pays for lazy imports and a
    connection (about a second here), which a long-running bot pays once at start-up."""
    from bot.providers.base import ImageRequest, ReferenceImage, StoryRequest, VideoRequest

    await openai.write_story(StoryRequest(model="gpt-5-mini", prompt=PROMPT, scene_count=scenes))
    image = await openai.generate_image(ImageRequest(model="gpt-image-1.5", prompt=PROMPT))
    reference = ReferenceImage(data=image.data, mime_type=image.mime_type)
    await openai.generate_image(ImageRequest(model="gpt-image-1.5", prompt=PROMPT, references=[reference]))
    clip = VideoRequest(model="grok-imagine-video", prompt=PROMPT, image=reference)
    await xai.poll_video(await xai.submit_video(clip))


def _settings(url: str, root: Path, poll_s: float) -> Any:
    from bot.settings import load_settings

    return load_settings(
        openai_api_key="sk-bench0123456789", xai_api_key="xai-bench0123456789",
        openai_base_url=f"{url}/v1", xai_base_url=f"{url}/xai/v1",
        database_path=root / "storybot.db", media_dir=root / "media", video_poll_s=poll_s,
        worker_concurrency=WORKERS, provider_concurrency=PER_PROVIDER, provider_timeout_s=60.0,
    )  # fmt: skip


# --- pipeline: the real Runtime ----------------------------------------------------------------


async def _pipeline(url: str, root: Path, stories: int, scenes: int, poll_s: float) -> dict[str, Any]:
    from bot.domain import ImageStatus, StoryStatus, VideoStatus
    from bot.runtime import Runtime
    from bot.services.stories import StoryOptions
    from storage import jobs as job_rows
    from storage import scenes as scene_rows
    from storage import stories as story_rows

    async with Runtime(_settings(url, root, poll_s), out_dir=root / "out") as rt:
        await _warm_up(rt.providers.adapter("openai"), rt.providers.adapter("xai"), scenes)
        started, started_at = time.perf_counter(), rt.clock.now()
        ids = []
        for n in range(stories):
            options = StoryOptions(prompt=PROMPT, scenes=scenes, video=True, guild_id=GUILD, channel_id=CHANNEL,
                                   owner_id=FIRST_OWNER + n)  # fmt: skip
            ids.append((await rt.stories.create(options)).id)
        created = time.perf_counter()
        stats = await rt.run_until_empty()
        wall = time.perf_counter() - started
        openai_done = 0.0
        for story_id in ids:
            jobs = await job_rows.list_for_story(rt.db, story_id)
            openai_done = max([openai_done, *(j.finished_at or 0.0 for j in jobs if j.provider == "openai")])
            story = await story_rows.get(rt.db, story_id)
            rows = await scene_rows.list_for_story(rt.db, story_id)
            done = [r for r in rows if (r.image_status, r.video_status) == (ImageStatus.COMPLETE, VideoStatus.COMPLETE)]
            if story is None or story.status is not StoryStatus.COMPLETE or len(done) != scenes:
                raise SystemExit(f"story {story_id} did not complete: {story and story.status}, {len(done)} scenes")
    return {
        "wall_s": wall,
        "create_s": created - started,
        "openai_done_s": openai_done - started_at,
        "jobs": stats.succeeded,
        "polls": stats.rescheduled,
        "retried": stats.retried,
        "failed": stats.failed + stats.dead,
    }


# --- direct: the same calls under the same limits, nothing persisted ----------------------------


class _Limits:
    """W worker slots and P calls per provider, as Worker enforces them."""

    def __init__(self) -> None:
        self.workers = asyncio.Semaphore(WORKERS)
        self.providers: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(PER_PROVIDER))

    @contextlib.asynccontextmanager
    async def slot(self, provider: str) -> AsyncIterator[None]:
        async with self.providers[provider], self.workers:
            yield


async def _direct(url: str, root: Path, stories: int, scenes: int, poll_s: float) -> dict[str, Any]:
    from bot.providers.base import ImageRequest, ReferenceImage, StoryRequest, VideoRequest, VideoState
    from bot.providers.openai import OpenAIAdapter
    from bot.providers.xai.adapter import XAIAdapter
    from bot.routing.registry import Registry

    settings = _settings(url, root, poll_s)
    registry = Registry.load(settings)
    openai, xai = OpenAIAdapter(settings, registry), XAIAdapter(settings, registry)
    text_model, image_model, video_model = (
        registry.resolve(key).api_model for key in ("gpt-5-mini", "gpt-image-1.5", "grok-imagine-video")
    )
    limits = _Limits()
    root.joinpath("media").mkdir(parents=True, exist_ok=True)

    async def clip(name: str, prompt: str, image: ReferenceImage) -> None:
        request = VideoRequest(model=video_model, prompt=prompt, image=image, duration_s=settings.video_duration_s)
        async with limits.slot("xai"):
            remote = await xai.submit_video(request)
        while True:
            async with limits.slot("xai"):
                poll = await xai.poll_video(remote)
                if poll.state is VideoState.DONE:
                    await xai.download_video(poll, remote, root / "media" / f"{name}.mp4")
                    return
                if poll.state is VideoState.FAILED:
                    raise SystemExit(f"clip {name} failed: {poll.error}")
            await asyncio.sleep(poll_s)

    async def story(n: int) -> None:
        async with limits.slot("openai"):
            draft = await openai.write_story(StoryRequest(model=text_model, prompt=PROMPT, scene_count=scenes))
        prompts = [f"{draft.bible}\n\nScene {i + 1}: {text}" for i, text in enumerate(draft.scenes)]
        async with limits.slot("openai"):
            first = await openai.generate_image(ImageRequest(model=image_model, prompt=prompts[0]))
        anchor = ReferenceImage(data=first.data, mime_type=first.mime_type)

        async def scene(i: int) -> None:
            image = anchor
            if i:
                async with limits.slot("openai"):
                    drawn = await openai.generate_image(
                        ImageRequest(model=image_model, prompt=prompts[i], references=[anchor])
                    )
                image = ReferenceImage(data=drawn.data, mime_type=drawn.mime_type)
            await asyncio.to_thread(root.joinpath("media", f"{n}-{i}.png").write_bytes, image.data)
            await clip(f"{n}-{i}", prompts[i], image)

        await asyncio.gather(*(scene(i) for i in range(scenes)))

    try:
        await _warm_up(openai, xai, scenes)
        started = time.perf_counter()
        await asyncio.gather(*(story(n) for n in range(stories)))
    finally:
        await openai.aclose()
        await xai.aclose()
    return {"wall_s": time.perf_counter() - started}


# --- the report ----------------------------------------------------------------------------------


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(argv)
    stories = QUICK_STORIES if args.quick else args.stories
    if args.mode:
        run = _pipeline if args.mode == "pipeline" else _direct
        with tempfile.TemporaryDirectory() as tmp:
            emit(asyncio.run(run(args.url, Path(tmp), stories, args.scenes, args.poll_s)))
        return
    latency = {"openai.chat": TEXT_S, "openai.images.generate": IMAGE_S, "openai.images.edit": IMAGE_S}
    sizes = ("--stories", str(stories), "--scenes", str(args.scenes), "--poll-s", str(args.poll_s))
    results: dict[str, list[dict[str, Any]]] = {"direct": [], "pipeline": []}
    with fake_server(FakeSetup(latency_s=latency, video_render_s=VIDEO_RENDER_S)) as url:
        for _ in range(args.runs):  # interleaved, so drift on a shared machine hits both alike
            for mode in results:
                results[mode].append(run_mode("bench.pipeline_throughput", mode, "--url", url, *sizes))
    _report(stories, args.scenes, args.poll_s, args.runs, results)


def _report(stories: int, scenes: int, poll_s: float, runs: int, results: dict[str, list[dict[str, Any]]]) -> None:
    bound = lower_bound(stories, scenes)
    pipeline = statistics.median(run["wall_s"] for run in results["pipeline"])
    direct = statistics.median(run["wall_s"] for run in results["direct"])
    last = results["pipeline"][-1]
    print(f"pipeline throughput: {stories} stories x {scenes} scenes with video ({machine()}; median of {runs})")
    print(f"  limits: {WORKERS} worker slots, {PER_PROVIDER} calls per provider; latencies: text {TEXT_S:.2f} s, "
          f"image {IMAGE_S:.2f} s, clip render {VIDEO_RENDER_S:.2f} s polled every {poll_s:g} s")  # fmt: skip
    print(f"  lower bound  {bound:7.2f} s = max({stories} x ({TEXT_S:g} + {scenes} x {IMAGE_S:g}) / "
          f"{min(PER_PROVIDER, WORKERS)} + {VIDEO_RENDER_S:g}, one story's critical path)")  # fmt: skip
    verdict = "meets" if bound / pipeline >= GOAL else "MISSES"
    print(f"  pipeline     {pipeline:7.2f} s   efficiency {bound / pipeline:.3f} ({verdict} the goal of {GOAL})"
          f"  [{last['jobs']} jobs, {last['polls']} polls, {last['retried']} retries, "
          f"creating the stories took {last['create_s']:.2f} s]")  # fmt: skip
    phase = statistics.median(run["openai_done_s"] for run in results["pipeline"])
    ideal = openai_phase(stories, scenes)
    extra_ms = (phase - ideal) * min(PER_PROVIDER, WORKERS) / (stories * (1 + scenes)) * 1000
    print(f"    text and images done at {phase:.2f} s (ideal {ideal:.2f} s: {extra_ms:.0f} ms of slot time per OpenAI "
          f"job beyond its latency); last clip {pipeline - phase:.2f} s later (ideal {VIDEO_RENDER_S:g})")  # fmt: skip
    print(f"  direct       {direct:7.2f} s   efficiency {bound / direct:.3f}  (same calls and limits, no persistence)")
    gap_ms = (pipeline - direct) / (stories * scenes) * 1000
    print(f"  pipeline / direct  {pipeline / direct:.2f}x  ({gap_ms:.1f} ms of wall time per scene for the queue, "
          "the database, media checks and delivery)")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench pipeline_throughput")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STORIES} stories instead of --stories")
    parser.add_argument("--stories", type=int, default=STORIES, help=f"stories to run (default {STORIES})")
    parser.add_argument("--scenes", type=int, default=SCENES, help=f"scenes per story (default {SCENES})")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"interleaved runs of each mode (default {RUNS})")
    parser.add_argument("--poll-s", type=float, default=VIDEO_POLL_S, help=f"VIDEO_POLL_S (default {VIDEO_POLL_S})")
    parser.add_argument("--mode", choices=("pipeline", "direct"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main(sys.argv[1:])
