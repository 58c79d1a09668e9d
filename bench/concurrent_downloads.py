"""Peak memory while the xAI adapter streams 20 clips of 100 MiB to disk at once.

The fake provider server runs in its own process (``bench.fake_server``), so only the downloader is
measured, each mode in a fresh process that builds the adapter, submits its clips and polls them to
done before measuring:

many:     ``XAIAdapter.download_video`` of every clip at once (``asyncio.gather``), each into its own
          temp file. Peak RSS (VmHWM) after the downloads minus the resident set just before
          them: an upper bound on what the downloads added.
one:      the same for a single clip: the per-download cost the many-clip figure is compared with.
baseline: everything except the downloads (adapter, submits, polls); its peak RSS is compared with
          the many-clip process's.
The figure is RSS growth as a share of the bytes downloaded; the goal is a small fraction (each
download holds one 1 MiB chunk at a time, so growth should scale with the clips in flight, not with
their size). ``--quick`` runs 4 clips of 16 MiB once, as a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import emit, machine, peak_rss_mib, ratio, run_mode
from bench.download_memory import XAI_KEY, current_rss_mib
from bench.fake_server import FakeSetup, fake_server

MiB = 1024 * 1024
CLIPS, CLIP_MIB, RUNS = 20, 100, 3
QUICK_CLIPS, QUICK_CLIP_MIB, QUICK_RUNS = 4, 16, 1


async def _measure(url: str, clips: int, clip_bytes: int, download: bool) -> dict[str, Any]:
    from bot.providers.base import ReferenceImage, VideoRequest, VideoState
    from bot.providers.xai.adapter import XAIAdapter
    from bot.routing.registry import Registry
    from bot.settings import load_settings
    from tests.fakes.providers import png_bytes

    settings = load_settings(xai_api_key=XAI_KEY, xai_base_url=f"{url}/xai/v1", provider_timeout_s=120.0)
    adapter = XAIAdapter(settings, Registry.load(settings))
    image = ReferenceImage(data=png_bytes(seed="frame"), mime_type="image/png")
    request = VideoRequest(model="grok-imagine-video", prompt="slow push-in", image=image, duration_s=5)
    result: dict[str, Any] = {}
    try:
        remote_ids = [await adapter.submit_video(request) for _ in range(clips)]
        polls = [await adapter.poll_video(remote_id) for remote_id in remote_ids]
        if any(poll.state is not VideoState.DONE for poll in polls):
            raise SystemExit(f"the fake's clips are not done: {polls}")
        if download:
            with tempfile.TemporaryDirectory() as tmp:
                dests = [Path(tmp) / f"clip-{n}.mp4" for n in range(clips)]
                gc.collect()
                rss_before = current_rss_mib()
                started = time.perf_counter()
                await asyncio.gather(
                    *(adapter.download_video(p, r, d) for p, r, d in zip(polls, remote_ids, dests, strict=True))
                )
                seconds = time.perf_counter() - started
                peak_after = peak_rss_mib()
                sizes = [dest.stat().st_size for dest in dests]
            if sizes != [clip_bytes] * clips:
                raise SystemExit(f"downloaded {sizes} bytes, expected {clip_bytes} each")
            result = {"download_s": seconds, "rss_before_mib": rss_before, "rss_growth_mib": peak_after - rss_before}
    finally:
        await adapter.aclose()
    return result | {"peak_rss_mib": peak_rss_mib()}


def _child(mode: str, url: str, clips: int, clip_mib: int) -> None:
    count = 1 if mode == "one" else clips
    emit(asyncio.run(_measure(url, count, clip_mib * MiB, download=mode != "baseline")))


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(argv)
    if args.mode:
        _child(args.mode, args.url, args.clips, args.clip_mib)
        return
    clips, clip_mib, runs = (QUICK_CLIPS, QUICK_CLIP_MIB, QUICK_RUNS) if args.quick else (args.clips, CLIP_MIB, RUNS)
    sizes = ("--clips", str(clips), "--clip-mib", str(clip_mib))
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "one": [], "many": []}
    with fake_server(FakeSetup(clip_bytes=clip_mib * MiB)) as url:
        for _ in range(runs):  # interleaved, so drift on a shared machine hits every mode alike
            for mode in results:
                results[mode].append(run_mode("bench.concurrent_downloads", mode, "--url", url, *sizes))

    def med(mode: str, key: str) -> float:
        return statistics.median(run[key] for run in results[mode])

    total_mib = clips * clip_mib
    many, one = med("many", "rss_growth_mib"), med("one", "rss_growth_mib")
    peak, base_peak, seconds = med("many", "peak_rss_mib"), med("baseline", "peak_rss_mib"), med("many", "download_s")
    print(f"xAI download_video of {clips} clips of {clip_mib} MiB at once ({machine()}; median of {runs})")
    print(f"  fake server in its own process; {total_mib} MiB took {seconds:.2f} s ({total_mib / seconds:.0f} MiB/s)")
    for label, growth, downloaded in ((f"{clips} at once", many, total_mib), ("one clip", one, clip_mib)):
        print(f"  RSS growth, {label:<11} {growth:7.1f} MiB = {growth / downloaded:6.2%} of the {downloaded} MiB")
    print(f"  growth {clips} at once vs one clip  ratio {ratio(many, one)}  ({(many - one) / max(clips - 1, 1):.1f} "
          "MiB per extra download in flight)")  # fmt: skip
    print(f"  process peak RSS  {clips} at once {peak:7.1f} MiB  baseline (no download) {base_peak:7.1f} MiB"
          f"  ratio {ratio(peak, base_peak)}  (+{peak - base_peak:.1f} MiB)")  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench concurrent_downloads")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CLIPS} clips of {QUICK_CLIP_MIB} MiB, one run")
    parser.add_argument("--clips", type=int, default=CLIPS, help="clips downloading at once")
    parser.add_argument("--mode", choices=("baseline", "one", "many"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--clip-mib", type=int, default=CLIP_MIB, help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main(sys.argv[1:])
