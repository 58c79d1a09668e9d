"""Peak memory while the xAI adapter streams a 200 MB clip to disk.

The fake provider server runs in its own process (``bench.fake_server``), so its buffers never count
against the downloader; only the downloader's process is measured.

download: a fresh process builds the adapter, submits a clip and polls it to done, then measures
          ``XAIAdapter.download_video`` into a temp file: peak RSS (VmHWM) after the download
          minus the resident set just before it (an upper bound on the growth), then a second
          download under tracemalloc for the peak of Python allocations.
baseline: a fresh process doing everything except the downloads (adapter, submit, poll).
Both run three times, interleaved; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench.common import emit, machine, peak_rss_mib, ratio, run_mode
from bench.fake_server import FakeSetup, fake_server

MiB = 1024 * 1024
CLIP_BYTES = 200 * MiB
RUNS = 3
XAI_KEY = "xai-benchkey0123456789"


def current_rss_mib() -> float:
    """The resident set right now (Linux /proc; elsewhere the peak so far, which overstates it)."""
    try:
        resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_rss_mib()
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / MiB


# --- the measured process ------------------------------------------------------------------------


async def _measure(url: str, download: bool) -> dict[str, Any]:
    from bot.providers.base import ReferenceImage, VideoRequest, VideoState
    from bot.providers.xai.adapter import XAIAdapter
    from bot.routing.registry import Registry
    from bot.settings import load_settings
    from tests.fakes.providers import png_bytes

    settings = load_settings(xai_api_key=XAI_KEY, xai_base_url=f"{url}/xai/v1", provider_timeout_s=60.0)
    adapter = XAIAdapter(settings, Registry.load(settings))
    image = ReferenceImage(data=png_bytes(seed="frame"), mime_type="image/png")
    request = VideoRequest(model="grok-imagine-video", prompt="slow push-in", image=image, duration_s=5)
    result: dict[str, Any] = {}
    try:
        remote_id = await adapter.submit_video(request)
        poll = await adapter.poll_video(remote_id)
        if poll.state is not VideoState.DONE:
            raise SystemExit(f"the fake's clip is not done: {poll}")
        if download:
            with tempfile.TemporaryDirectory() as tmp:
                dest = Path(tmp) / "clip.mp4"
                gc.collect()
                rss_before, peak_before = current_rss_mib(), peak_rss_mib()
                started = time.perf_counter()
                await adapter.download_video(poll, remote_id, dest)
                seconds = time.perf_counter() - started
                peak_after = peak_rss_mib()
                size = dest.stat().st_size
                dest.unlink()
                gc.collect()
                tracemalloc.start()
                try:
                    await adapter.download_video(poll, remote_id, dest)
                    _, traced_peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
            if size != CLIP_BYTES:
                raise SystemExit(f"downloaded {size} bytes, expected {CLIP_BYTES}")
            result = {
                "clip_bytes": size,
                "download_s": seconds,
                "rss_before_mib": rss_before,
                "peak_before_mib": peak_before,
                "peak_after_mib": peak_after,
                "rss_growth_mib": peak_after - rss_before,
                "tracemalloc_peak_mib": traced_peak / MiB,
            }
    finally:
        await adapter.aclose()
    return result | {"peak_rss_mib": peak_rss_mib()}


def _child(mode: str, url: str | None) -> None:
    if url is None:
        raise SystemExit("--url is required")
    emit(asyncio.run(_measure(url, download=mode == "download")))


def main() -> None:
    results: dict[str, list[dict[str, Any]]] = {"baseline": [], "download": []}
    with fake_server(FakeSetup(clip_bytes=CLIP_BYTES)) as url:
        for _ in range(RUNS):  # interleaved, so drift on a shared machine hits both alike
            for mode in results:
                results[mode].append(run_mode("bench.download_memory", mode, "--url", url))

    def med(mode: str, key: str) -> float:
        return statistics.median(run[key] for run in results[mode])

    clip_mib = CLIP_BYTES / MiB
    growth, traced = med("download", "rss_growth_mib"), med("download", "tracemalloc_peak_mib")
    peak, base_peak = med("download", "peak_rss_mib"), med("baseline", "peak_rss_mib")
    seconds = med("download", "download_s")
    print(f"xAI download_video of a {clip_mib:.0f} MiB clip ({machine()}; median of {RUNS})")
    print(f"  fake server in its own process; download took {seconds:.2f} s ({clip_mib / seconds:.0f} MiB/s)")
    print(f"  RSS growth during download  {growth:7.1f} MiB  = {growth / clip_mib:6.2%} of the clip")
    print(f"  tracemalloc peak            {traced:7.1f} MiB  = {traced / clip_mib:6.2%} of the clip")
    print(f"  process peak RSS  download {peak:7.1f} MiB  baseline (no download) {base_peak:7.1f} MiB"
          f"  ratio {ratio(peak, base_peak)}  (+{peak - base_peak:.1f} MiB)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("download", "baseline"))
    parser.add_argument("--url")
    args = parser.parse_args()
    _child(args.mode, args.url) if args.mode else main()
