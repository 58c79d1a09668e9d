"""Seconds until a server that drips its answer (one byte every 0.5 s) is given up on, against PROVIDER_TIMEOUT_S.

The fake provider server runs in its own process (``bench.fake_server``) with ``Fault.drip(0.5)`` on five
routes: OpenAI chat (a story), OpenAI images, Gemini generateContent (a picture), xAI images and the xAI clip
download (submit and poll answer at once; only the download drips). Each run is a fresh process that makes
the five calls at once, with PROVIDER_TIMEOUT_S = 4 s:

guarded:  through ``ProviderSet.text/image/video``, as the pipeline calls them (the whole-call deadline).
baseline: the bare adapters (``ProviderSet.adapter``), i.e. the SDKs' and httpx's own timeouts alone, which
          bound each read, not the call: watched for three times PROVIDER_TIMEOUT_S, then abandoned.
Three runs of each, interleaved; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import emit, machine, run_mode
from bench.fake_server import FakeSetup, fake_server

TIMEOUT_S = 4.0
DRIP_S = 0.5
OBSERVE_S = 3 * TIMEOUT_S
RUNS = 3
ROUTES = {
    "OpenAI story (chat)": "openai.chat",
    "OpenAI picture": "openai.images.generate",
    "Gemini picture": "google.generate_content",
    "xAI picture": "xai.images.generate",
    "xAI clip download": "xai.videos.download",
}


async def _measure(url: str, guarded: bool) -> dict[str, Any]:
    from bot.errors import ProviderError, ProviderTimeout
    from bot.providers import ProviderSet
    from bot.providers.base import ImageRequest, ReferenceImage, StoryRequest, VideoRequest
    from bot.routing.registry import Registry
    from bot.settings import load_settings
    from tests.fakes.providers import png_bytes

    settings = load_settings(
        openai_api_key="sk-bench", openai_base_url=f"{url}/v1",
        gemini_api_key="gemini-bench", google_gemini_base_url=url,
        xai_api_key="xai-bench", xai_base_url=f"{url}/xai/v1",
        provider_timeout_s=TIMEOUT_S,
    )  # fmt: skip
    providers = ProviderSet(settings, Registry.load(settings))
    for provider in ("openai", "google", "xai"):  # SDK imports take a second: not the figure measured
        providers.adapter(provider)

    def role(provider: str, kind: str) -> Any:
        return getattr(providers, kind)(provider) if guarded else providers.adapter(provider)

    def image(provider: str, model: str) -> Callable[[], Awaitable[Any]]:
        request = ImageRequest(model=model, prompt="a lighthouse at dusk")
        return lambda: role(provider, "image").generate_image(request)

    frame = ReferenceImage(data=png_bytes(seed="frame"), mime_type="image/png")
    clip = VideoRequest(model="grok-imagine-video", prompt="slow push-in", image=frame, duration_s=4)
    video = role("xai", "video")
    request_id = await video.submit_video(clip)
    poll = await video.poll_video(request_id)
    folder = Path(tempfile.mkdtemp(prefix="bench-drip-"))  # the clip never arrives: nothing is left in it
    story = StoryRequest(model="gpt-5-mini", prompt="a fox", scene_count=3)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "OpenAI story (chat)": lambda: role("openai", "text").write_story(story),
        "OpenAI picture": image("openai", "gpt-image-1.5"),
        "Gemini picture": image("google", "gemini-3.1-flash-image"),
        "xAI picture": image("xai", "grok-imagine-image"),
        "xAI clip download": lambda: video.download_video(poll, request_id, folder / "clip.mp4"),
    }

    async def timed(call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        pending = call()
        started = time.perf_counter()
        try:
            await asyncio.wait_for(pending, OBSERVE_S)
        except ProviderError as exc:
            outcome = "deadline" if isinstance(exc, ProviderTimeout) else f"{exc.kind.value}: {exc}"
            return {"seconds": time.perf_counter() - started, "outcome": outcome[:60]}
        except TimeoutError:
            return {"seconds": None, "outcome": f"still receiving after {OBSERVE_S:g} s"}
        return {"seconds": time.perf_counter() - started, "outcome": "finished"}

    try:
        results = await asyncio.gather(*(timed(call) for call in calls.values()))
    finally:
        await providers.aclose()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()
    return dict(zip(calls, results, strict=True))


def main() -> None:
    runs: dict[str, list[dict[str, Any]]] = {"guarded": [], "baseline": []}
    started = time.perf_counter()
    setup = FakeSetup(faults={route: ["drip", DRIP_S] for route in ROUTES.values()})
    with fake_server(setup) as url:
        for index in range(RUNS):
            for mode in ("guarded", "baseline") if index % 2 == 0 else ("baseline", "guarded"):
                runs[mode].append(run_mode("bench.drip_deadline", mode, "--url", url))
    print(f"giving up on a server that drips one byte every {DRIP_S:g} s, PROVIDER_TIMEOUT_S={TIMEOUT_S:g} "
          f"({machine()}; median of {RUNS})")  # fmt: skip
    print(f"  {'call':<22} {'guarded: gave up after':>23} {'x timeout':>10}   baseline (per-read timeouts only)")
    for name in ROUTES:
        guarded = [run[name] for run in runs["guarded"]]
        baseline = [run[name] for run in runs["baseline"]]
        seconds = statistics.median(r["seconds"] for r in guarded if r["seconds"] is not None)
        outcomes = {r["outcome"] for r in guarded}
        base_seconds = [r["seconds"] for r in baseline if r["seconds"] is not None]
        if len(base_seconds) == len(baseline):
            base = f"gave up after {statistics.median(base_seconds):.2f} s ({baseline[0]['outcome']})"
        else:
            base = baseline[0]["outcome"] if not base_seconds else f"{len(base_seconds)} of {len(baseline)} gave up"
        note = "" if outcomes == {"deadline"} else f"  [guarded outcome: {', '.join(sorted(outcomes))}]"
        print(f"  {name:<22} {seconds:20.2f} s {seconds / TIMEOUT_S:9.2f}x   {base}{note}")
    print(f"  [whole run {time.perf_counter() - started:.0f} s]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("guarded", "baseline"))
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.mode:
        emit(asyncio.run(_measure(args.url, guarded=args.mode == "guarded")))
    else:
        main()
