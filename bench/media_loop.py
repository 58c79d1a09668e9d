"""Bystanders' interaction acks while the bot checks a 15 s 1080p clip and six 39 MP references at once.

Measured through the whole bot: the real StoryBot (local models, SQLite in a temp dir, workers running)
logged into the fake Discord (tests/fakes/discord.py) on 127.0.0.1, as in ``discord_ack``. During a window
of at least WINDOW_S, bystanders send an autocomplete on /story new every BYSTANDER_EVERY_S (the fake's
own measure of each ack: dispatch to callback), and a ticker coroutine wakes every 10 ms and records how
late it woke (what any interaction waiting on the loop would see). Modes, each a fresh process:

idle:    nothing else runs: the baseline.
checks:  0.3 s into the window, six members run `/story new` at once, each attaching a different
         39 MP JPEG reference (7200x5400, about 7 MB: downloaded from the fake, decoded and checked by
         the real cog and ``StoryService``, the story then stored and rendered by the local models), while
         a 15 s 1080p H.264 clip is checked by the real path a finished clip takes
         (``ProviderSet.video("local").download_video``: link, then ``check_clip``).
on-loop: the same work done as before this change, for comparison: each reference check decoding on
         the event loop (the old code did it three times per command; replayed here twice) and the clip
         decoded in full on the loop (``probe_video``, what the video stage used to call).
Three runs of each, interleaved; each figure is the median of the runs. The window lasts until the heavy
work is done plus 0.5 s. The fake shares the bot's loop, so serving the six attachments counts too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import io
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Coroutine
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench.common import emit, machine, ratio, run_mode

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from tests.fakes.discord import FakeDiscord

T = TypeVar("T")

RUNS = 3
WINDOW_S = 4.0
HEAVY_AT_S = 0.3
BYSTANDER_EVERY_S = 0.025
TICK_S = 0.010
REFERENCES = 6
REFERENCE_SIZE = (7200, 5400)  # 38.9 megapixels, under the 40 MP cap
CLIP_SIZE, CLIP_FPS, CLIP_SECONDS = (1920, 1080), 24, 15
BYSTANDER, HEAVY, WARMUP = 10_000, 20_000, 30_000
MODES = ("idle", "checks", "on-loop")
RUN_BUDGET_S = 180.0  # one mode's whole run; past it the run fails instead of hanging the bench


# --- the media, made once per bench run --------------------------------------------------------


def make_assets(folder: Path) -> None:
    import av
    from PIL import Image, ImageChops, ImageDraw

    width, height = REFERENCE_SIZE
    channels = [Image.linear_gradient("L"), Image.radial_gradient("L"), Image.linear_gradient("L").rotate(90)]
    base = Image.merge("RGB", [channel.resize(REFERENCE_SIZE) for channel in channels])
    grain = Image.effect_noise((width // 4, height // 4), 30).convert("RGB").resize(REFERENCE_SIZE)
    photo = ImageChops.add(base, grain, scale=1.5)
    for index in range(REFERENCES):  # each one different, so no check can reuse another's
        copy = photo.copy()
        ImageDraw.Draw(copy).rectangle((index * 500, 200, index * 500 + 400, 600), fill=(index * 40, 30, 200))
        copy.save(folder / f"reference-{index}.jpg", format="JPEG", quality=85)
    wide = (CLIP_SIZE[0] * 2, CLIP_SIZE[1])
    frame_base = ImageChops.add(
        Image.merge("RGB", [channel.resize(wide) for channel in channels]),
        Image.effect_noise(wide, 90).convert("RGB"),
        scale=1.3,
    )
    with av.open(str(folder / "clip.mp4"), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = CLIP_SIZE[0], CLIP_SIZE[1], "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20"}  # the preset storybot encodes with
        for index in range(CLIP_FPS * CLIP_SECONDS):
            left = index * 4 % CLIP_SIZE[0]
            frame = av.VideoFrame.from_image(frame_base.crop((left, 0, left + CLIP_SIZE[0], CLIP_SIZE[1])))
            frame.pts, frame.time_base = index, Fraction(1, CLIP_FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# --- the measured process ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _storybot(fake: FakeDiscord, folder: Path) -> AsyncIterator[Runtime]:
    from bench.discord_ack import _ready
    from bot.app import StoryBot, build_runtime, discord_endpoints
    from bot.settings import load_settings

    settings = load_settings(
        database_path=folder / "db.sqlite",
        media_dir=folder / "media",
        discord_token=fake.token,
        discord_api_base=fake.base_url,
        discord_gateway_url=fake.gateway_url,
        video_poll_s=0,
        health_http_port=0,
    )
    runtime = build_runtime(settings)
    with discord_endpoints(settings):
        await runtime.open()
        bot = StoryBot(runtime, guild_ready_timeout=0.1, chunk_guilds_at_startup=False)
        start = asyncio.create_task(bot.start(fake.token))
        try:
            await _ready(start, bot.ready_once.wait())
            yield runtime
        finally:
            await bot.close()
            await asyncio.wait_for(start, 60)
            await runtime.close()


def _decode_on_the_loop() -> None:
    """Put back the old behaviour: every reference check decodes, on the event loop."""
    from bot.services.stories import ReferenceVerdict, StoryService

    async def on_loop(self: StoryService, data: bytes) -> ReferenceVerdict:
        return self.judge_reference(data)

    StoryService.reference_verdict = on_loop  # type: ignore[method-assign]


def _stage_clip(rt: Runtime, assets: Path) -> str:
    """Put the clip where the local provider keeps a finished render; returns its render id."""
    remote_id = uuid.uuid4().hex
    staging = rt.settings.media_dir / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(assets / "clip.mp4", staging / f"{remote_id}.mp4")
    return remote_id


async def _check_clip(rt: Runtime, remote_id: str, on_loop: bool) -> None:
    from bot.media.probe import probe_video
    from bot.providers.base import VideoPoll, VideoState

    dest = rt.settings.media_dir / f"{remote_id}.mp4"
    poll = VideoPoll(state=VideoState.DONE, progress=100)
    if on_loop:
        await rt.providers.adapter("local").download_video(poll, remote_id, dest)
        probe_video(dest)  # what the video stage called, on the loop
    else:
        await rt.providers.video("local").download_video(poll, remote_id, dest)


class FakeOnItsOwnLoop:
    """The fake Discord on its own thread and event loop, as Discord is outside the bot: an interaction is
    dispatched (and its latency clock started) on time even while the bot's loop is blocked."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-discord", daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _start_fake() -> FakeDiscord:
    from tests.fakes.discord import FakeDiscord

    fake = FakeDiscord()
    await fake.start()
    for user in [*range(BYSTANDER, BYSTANDER + 200), *range(HEAVY, HEAVY + REFERENCES), WARMUP]:
        fake.add_member(user, f"member-{user}")
    return fake


async def _warm_up(fake: FakeDiscord) -> None:
    """Not counted: connections, the cog's first command, Pillow's JPEG plugin, a first render."""
    from PIL import Image

    await fake.autocomplete(WARMUP, "story", "new", focused="image_model", options={"prompt": "x"})
    small = io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, format="JPEG")
    warm = fake.upload("warm.jpg", small.getvalue(), "image/jpeg")
    handle = await fake.slash(WARMUP, "story", "new", options={"prompt": "warm", "scenes": 1, "reference": warm})
    await fake.wait_until(lambda: handle.original and handle.original.embeds, 60, "the warm-up storyboard")


async def _six_commands(fake: FakeDiscord, assets: Path) -> tuple[float, int]:
    """Six members run /story new at once, each with its own 39 MP reference; waits until all have settled.
    Returns the slowest of their own acks in seconds (the cog checks the reference before it defers) and
    how many of those missed Discord's deadline (the member then sees "The application did not respond")."""
    references = [
        fake.upload(f"reference-{i}.jpg", (assets / f"reference-{i}.jpg").read_bytes(), "image/jpeg")
        for i in range(REFERENCES)
    ]
    handles = await asyncio.gather(
        *(
            fake.slash(HEAVY + i, "story", "new", options={"prompt": f"a fox, take {i}", "scenes": 1, "reference": ref})
            for i, ref in enumerate(references)
        )
    )
    records = await asyncio.gather(*(handle.ack(timeout_s=60) for handle in handles))
    late = sum(record.status != 200 for record in records)

    def settled() -> bool:  # each command has shown its storyboard, refused, or missed its deadline
        return all(r.status != 200 or r.type == 4 or bool(h.original and h.original.embeds)
                   for h, r in zip(handles, records, strict=True))  # fmt: skip

    await fake.wait_until(settled, 60, "the six commands settled")
    refused = [r for r in records if r.status == 200 and r.type == 4]
    if refused:
        raise SystemExit(f"{len(refused)} of the six /story new were refused: {refused[0]}")
    return max(record.elapsed_s for record in records), late


async def _bystanders(fake: FakeDiscord, until: list[float]) -> int:
    """Autocompletes from bystanders, one every BYSTANDER_EVERY_S until ``until[0]`` (perf_counter, moved by
    the bot's side when its heavy work ends); returns how many were sent."""
    sent: list[asyncio.Task[Any]] = []
    while time.perf_counter() < until[0]:
        user = BYSTANDER + len(sent) % 200
        options = {"prompt": "a lighthouse", "image_model": "sketch"}
        call = fake.autocomplete(user, "story", "new", focused="image_model", options=options, timeout_s=30)
        sent.append(asyncio.create_task(call))
        await asyncio.sleep(BYSTANDER_EVERY_S)
    await asyncio.gather(*sent, return_exceptions=True)  # a late ack is counted from the fake's records
    return len(sent)


async def _ticker(stop: asyncio.Event) -> list[float]:
    lags: list[float] = []
    expected = time.perf_counter() + TICK_S
    while not stop.is_set():
        await asyncio.sleep(max(0.0, expected - time.perf_counter()))
        now = time.perf_counter()
        lags.append(now - expected)
        expected = now + TICK_S
    return lags


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


async def _measure(mode: str, assets: Path) -> dict[str, Any]:
    if mode == "on-loop":
        _decode_on_the_loop()
    side = FakeOnItsOwnLoop()
    fake = await side.run(_start_fake())
    until = [time.perf_counter() + 120.0]  # when the bystanders stop: moved once the window's length is known
    try:
        async with asyncio.timeout(RUN_BUDGET_S):
            return await _window(mode, assets, side, fake, until)
    finally:
        until[0] = 0.0
        await side.run(fake.stop())
        side.close()


async def _window(
    mode: str, assets: Path, side: FakeOnItsOwnLoop, fake: FakeDiscord, until: list[float]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-media-loop-") as tmp:
        async with _storybot(fake, Path(tmp)) as rt:
            await side.run(_warm_up(fake))
            remote_id = _stage_clip(rt, assets)
            await asyncio.sleep(1.0)  # the warm-up story renders before the window opens
            first = len(fake.callbacks)
            stop = asyncio.Event()
            ticker = asyncio.create_task(_ticker(stop))
            started = time.perf_counter()
            bystanders = asyncio.ensure_future(side.run(_bystanders(fake, until)))
            heavy_s, (slowest_own_ack_s, own_late) = 0.0, (0.0, 0)
            if mode != "idle":
                await asyncio.sleep(HEAVY_AT_S)
                heavy_started = time.perf_counter()
                clip = _check_clip(rt, remote_id, on_loop=mode == "on-loop")
                (slowest_own_ack_s, own_late), _ = await asyncio.gather(side.run(_six_commands(fake, assets)), clip)
                heavy_s = time.perf_counter() - heavy_started
            until[0] = max(started + WINDOW_S, time.perf_counter() + 0.5)
            sent = await bystanders
            stop.set()
            lags = await ticker
            acks = [r for r in fake.callbacks[first:] if r.type == 8]
            deadline = fake.ack_deadline_s
    ms = [r.elapsed_s * 1000 for r in acks]
    return {
        "heavy_s": heavy_s,
        "own_ack_max_ms": slowest_own_ack_s * 1000,
        "own_late": own_late,
        "window_s": time.perf_counter() - started,
        "acks": len(acks),
        "sent": sent,
        "late": sum(r.status != 200 or r.elapsed_s > deadline for r in acks) + (sent - len(acks)),
        "ack_p50_ms": statistics.median(ms),
        "ack_p99_ms": _percentile(ms, 0.99),
        "ack_max_ms": max(ms),
        "tick_p99_ms": _percentile(lags, 0.99) * 1000,
        "tick_max_ms": max(lags) * 1000,
        "deadline_s": deadline,
    }


# --- the parent ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-media-assets-") as tmp:
        assets = Path(tmp)
        make_assets(assets)
        made_s = time.perf_counter() - started
        clip_mib = (assets / "clip.mp4").stat().st_size / 2**20
        ref_mib = statistics.mean((assets / f"reference-{i}.jpg").stat().st_size for i in range(REFERENCES)) / 2**20
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for index in range(RUNS):
            order = MODES if index % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                runs[mode].append(run_mode("bench.media_loop", mode, "--assets", str(assets)))

    def med(mode: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[mode])

    width, height = REFERENCE_SIZE
    print(f"bystanders' acks while the bot checks media, whole bot on the fake Discord ({machine()}; median of {RUNS})")
    print(f"  heavy work: {REFERENCES} x /story new with a {width}x{height} JPEG reference ({ref_mib:.1f} MiB each)")
    clip = f"{CLIP_SECONDS} s {CLIP_SIZE[1]}p H.264 clip ({clip_mib:.1f} MiB)"
    print(f"    + a {clip} checked; assets made in {made_s:.0f} s")
    print(f"  {'mode':<9} {'heavy work':>10} {'their acks':>18} | bystanders: {'ack p50':>9} {'ack p99':>9} "
          f"{'ack max':>9} {'late':>5} {'p99 vs idle':>12} | ticker: {'p99':>8} {'max':>8}")  # fmt: skip
    base_p99 = med("idle", "ack_p99_ms")
    for mode in MODES:
        late = sum(run["late"] for run in runs[mode])
        acks = sum(run["acks"] for run in runs[mode])
        heavy, p50, p99, worst = (med(mode, key) for key in ("heavy_s", "ack_p50_ms", "ack_p99_ms", "ack_max_ms"))
        tick_p99, tick_max, own = med(mode, "tick_p99_ms"), med(mode, "tick_max_ms"), med(mode, "own_ack_max_ms")
        own_late = sum(run["own_late"] for run in runs[mode])
        bystanders = f"{p50:6.1f} ms {p99:6.1f} ms {worst:6.0f} ms {late:>5} {ratio(p99, base_p99):>12}"
        ticker = f"{tick_p99:5.1f} ms {tick_max:5.0f} ms"
        theirs = f"{own:7.0f} ms {own_late:>2} late"
        print(f"  {mode:<9} {heavy:8.2f} s {theirs} | {' ' * 12}{bystanders} | {' ' * 8}{ticker}  ({acks} acks)")
    print("  their acks: the slowest of the six members' own /story new acks (the cog checks the reference before")
    print(f"  it answers), and how many of those {REFERENCES * RUNS} missed the deadline")
    print(f"  late = acks past Discord's {runs['idle'][0]['deadline_s']:g} s deadline, all runs; "
          f"[whole run {time.perf_counter() - started:.0f} s]")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--assets")
    args, _ = parser.parse_known_args()
    if args.mode:
        faulthandler.dump_traceback_later(RUN_BUDGET_S + 60, exit=True)  # a stuck shutdown shows where it is
        emit(asyncio.run(_measure(args.mode, Path(args.assets))))
    else:
        main()
