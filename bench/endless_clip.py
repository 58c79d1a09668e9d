"""Refusing a clip URL that never ends: seconds, bytes taken and peak memory, against MAX_CLIP_BYTES.

The fake provider server runs in its own process (``bench.fake_server``, a fresh one per run so its count
of bytes sent is that run's), its clip download answering ``Fault.bad_media("endless")``: a clip's first
bytes, then zeros for as long as anyone reads, with no Content-Length. Each mode is a fresh process that
builds the providers, submits a clip and polls it to done (MAX_CLIP_BYTES and PROVIDER_TIMEOUT_S at their
defaults, 200 MiB and 120 s):

refuse:   ``ProviderSet.video("xai").download_video`` as the pipeline calls it, which must end in
          UnusableAnswer. Measured: seconds to refuse, bytes written to disk (``wchar`` of /proc/self/io:
          what the download kept before it stopped), bytes the server sent (an upper bound on what reached
          the process), RSS growth (peak VmHWM after minus the resident set before) and the process's peak.
baseline: the same process without the download: its peak RSS is what the refusal is compared with.
Three runs of each, interleaved; the median is reported. Before this guard the same URL was read without
end (issue #11: 7.5 GiB in 28 s), and read again on every retry.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, machine, peak_rss_mib, ratio, run_mode
from bench.download_memory import current_rss_mib
from bench.fake_server import FakeSetup, fake_server

MiB = 1024 * 1024
RUNS = 3


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


async def _measure(url: str, refuse: bool) -> dict[str, Any]:
    from bot.errors import UnusableAnswer
    from bot.providers import ProviderSet
    from bot.providers.base import ReferenceImage, VideoRequest
    from bot.routing.registry import Registry
    from bot.settings import load_settings
    from tests.fakes.providers import png_bytes

    settings = load_settings(xai_api_key="xai-bench", xai_base_url=f"{url}/xai/v1")
    providers = ProviderSet(settings, Registry.load(settings))
    video = providers.video("xai")
    frame = ReferenceImage(data=png_bytes(seed="frame"), mime_type="image/png")
    request = VideoRequest(model="grok-imagine-video", prompt="slow push-in", image=frame, duration_s=4)
    result: dict[str, Any] = {"cap_bytes": settings.max_clip_bytes, "timeout_s": settings.provider_timeout_s}
    try:
        request_id = await video.submit_video(request)
        poll = await video.poll_video(request_id)
        if refuse:
            with tempfile.TemporaryDirectory(prefix="bench-endless-") as tmp:
                dest = Path(tmp) / "clip.mp4.part"
                gc.collect()
                rss_before, written_before = current_rss_mib(), _written()
                started = time.perf_counter()
                try:
                    await video.download_video(poll, request_id, dest)
                except UnusableAnswer as exc:
                    result["refusal"] = str(exc)
                else:
                    raise SystemExit("the endless clip was accepted")
                result |= {
                    "seconds": time.perf_counter() - started,
                    "written_bytes": _written() - written_before,
                    "rss_growth_mib": peak_rss_mib() - rss_before,
                    "left_on_disk": dest.exists(),
                }
    finally:
        await providers.aclose()
    return result | {"peak_rss_mib": peak_rss_mib()}


def main() -> None:
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "refuse": []}
    setup = FakeSetup(faults={"xai.videos.download": ["bad_media", "endless"]})
    for index in range(RUNS):
        for mode in ("baseline", "refuse") if index % 2 == 0 else ("refuse", "baseline"):
            counters: dict[str, int] = {}
            with fake_server(setup, counters) as url:
                runs[mode].append(run_mode("bench.endless_clip", mode, "--url", url))
            runs[mode][-1]["server_sent_bytes"] = counters.get("clip_bytes_sent", 0)

    def med(mode: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[mode])

    cap = runs["refuse"][0]["cap_bytes"]
    sent, written = med("refuse", "server_sent_bytes"), med("refuse", "written_bytes")
    peak, base_peak = med("refuse", "peak_rss_mib"), med("baseline", "peak_rss_mib")
    print(f"refusing a clip download that never ends, MAX_CLIP_BYTES={cap / MiB:.0f} MiB ({machine()}; "
          f"median of {RUNS})")  # fmt: skip
    print(f"  refused after            {med('refuse', 'seconds'):7.2f} s  (PROVIDER_TIMEOUT_S "
          f"{runs['refuse'][0]['timeout_s']:g} s): {runs['refuse'][0]['refusal']}")  # fmt: skip
    print(f"  written to disk          {written / MiB:7.1f} MiB = {ratio(written, cap)} the cap (then deleted: "
          f"left on disk in {sum(r['left_on_disk'] for r in runs['refuse'])} of {RUNS} runs)")  # fmt: skip
    print(f"  sent by the server       {sent / MiB:7.1f} MiB = {ratio(sent, cap)} the cap (all the process "
          "could have read: the cap, one read chunk, socket buffers)")  # fmt: skip
    print(f"  RSS growth while reading {med('refuse', 'rss_growth_mib'):7.1f} MiB = "
          f"{med('refuse', 'rss_growth_mib') * MiB / cap:.2%} of the cap")  # fmt: skip
    print(f"  process peak RSS  refuse {peak:7.1f} MiB  baseline (no download) {base_peak:7.1f} MiB  "
          f"ratio {ratio(peak, base_peak)}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("refuse", "baseline"))
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.mode:
        emit(asyncio.run(_measure(args.url, refuse=args.mode == "refuse")))
    else:
        main()
