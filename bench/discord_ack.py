"""How fast the bot acknowledges Discord interactions under a burst, against a bare discord.py bot.

storybot: the real StoryBot (local models, SQLite in a temp dir, DiscordPublisher, workers running)
          logged into the fake Discord (tests/fakes/discord.py) on 127.0.0.1.
bare:     a minimal discord.py bot on the same fake with the same /story new options, whose command only
          defers and whose autocomplete returns three fixed choices: the floor the client library sets.
Each mode runs in its own process, RUNS times interleaved (each figure is the median), with the same workload:
  autocomplete: AUTOCOMPLETE requests on /story new image_model, BATCH at a time;
  ack:          for each N in SIZES, ROUNDS bursts of N concurrent `/story new` from N distinct members.
Acknowledgement latency is the fake's own measure: from dispatching INTERACTION_CREATE to the bot's
callback reaching it (CallbackRecord.elapsed_s). The bot and the fake share one event loop, so the
figures include the fake's work; that is the same for both modes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import emit, machine, ratio, run_mode

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord, InteractionHandle

SIZES = (20, 50)
ROUNDS = 5
AUTOCOMPLETE = 200
BATCH = 50
RUNS = 3  # processes per mode, interleaved; each figure is the median of the runs
WARMUP = 5  # /story new before measuring, from members who are not used again
FIRST_MEMBER = 10_000
PROMPT = "a lighthouse keeper befriends a storm"
TYPED = ("", "sketch", "gpt", "local", "x")
READY_TIMEOUT_S = 60.0
SETTLE_TIMEOUT_S = 60.0


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"p50_ms": statistics.median(ms), "p99_ms": _percentile(ms, 0.99), "max_ms": max(ms), "n": len(ms)}


# --- the two bots ------------------------------------------------------------------------------


async def _ready(start: asyncio.Task[None], ready: Awaitable[Any]) -> None:
    waiter = asyncio.ensure_future(ready)
    done, _ = await asyncio.wait({start, waiter}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if start in done:
        start.result()  # the bot stopped: raise its error
    if waiter not in done:
        waiter.cancel()
        raise SystemExit("the bot never became ready")


@contextlib.asynccontextmanager
async def _storybot(fake: FakeDiscord, folder: Path) -> AsyncIterator[None]:
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
            yield
        finally:
            await bot.close()
            await asyncio.wait_for(start, 60)
            await runtime.close()


@contextlib.asynccontextmanager
async def _bare(fake: FakeDiscord, folder: Path) -> AsyncIterator[None]:
    import discord
    from discord import app_commands
    from discord.ext import commands

    class BareBot(commands.Bot):
        async def setup_hook(self) -> None:
            await self.tree.sync()

    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    bot = BareBot(
        command_prefix=commands.when_mentioned,
        intents=discord.Intents.default(),
        help_command=None,
        guild_ready_timeout=0.1,  # the same client options as the StoryBot above
        chunk_guilds_at_startup=False,
    )
    story = app_commands.Group(name="story", description="Stories")

    @story.command(name="new", description="Start a story")
    async def new(
        interaction: discord.Interaction, prompt: str, scenes: int = 4, image_model: str | None = None
    ) -> None:
        await interaction.response.defer()

    @new.autocomplete("image_model")
    async def models(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        keys = ("gpt-image-1.5", "gemini-3.1-flash-image", "local-sketch")
        return [app_commands.Choice(name=key, value=key) for key in keys if current.lower() in key]

    bot.tree.add_command(story)
    with fake.patch_discord():
        start = asyncio.create_task(bot.start(fake.token))
        try:
            await _ready(start, bot.wait_until_ready())
            yield
        finally:
            await bot.close()
            await asyncio.wait_for(start, 60)


# --- the workload ------------------------------------------------------------------------------


async def _autocomplete(fake: FakeDiscord, total: int, batch: int) -> list[float]:
    seen = len(fake.callbacks)
    for first in range(0, total, batch):
        await asyncio.gather(
            *(
                fake.autocomplete(FIRST_MEMBER + i % batch, "story", "new", focused="image_model",
                                  options={"prompt": PROMPT, "image_model": TYPED[i % len(TYPED)]}, timeout_s=30)
                for i in range(first, min(first + batch, total))
            )
        )  # fmt: skip
    records = [r for r in fake.callbacks[seen:] if r.type == 8 and r.status == 200]
    if len(records) != total:
        raise SystemExit(f"expected {total} autocomplete answers, the fake accepted {len(records)}")
    return [r.elapsed_s for r in records]


def _settled(handle: InteractionHandle, storybot: bool) -> bool:
    """The command has finished its visible work: storybot has shown the storyboard (or refused)."""
    ack = handle.callback
    if ack is None:
        return False
    if not storybot or ack.type == 4:
        return True
    original = handle.original
    return bool(original is not None and original.embeds)


async def _burst(fake: FakeDiscord, members: range, storybot: bool) -> tuple[list[float], int, int]:
    """N concurrent /story new; returns their ack latencies, how many missed the deadline, how many were refused."""
    handles = await asyncio.gather(
        *(fake.slash(user, "story", "new", options={"prompt": f"{PROMPT} #{user}", "scenes": 1}) for user in members)
    )
    records = await asyncio.gather(*(handle.ack(timeout_s=SETTLE_TIMEOUT_S) for handle in handles))
    await fake.wait_until(lambda: all(_settled(h, storybot) for h in handles), SETTLE_TIMEOUT_S, "commands settled")
    late = sum(record.status != 200 for record in records)
    refused = sum(record.type == 4 for record in records)
    return [record.elapsed_s for record in records], late, refused


async def _measure(mode: str, sizes: list[int], rounds: int, autocompletes: int) -> dict[str, Any]:
    from tests.fakes.discord import FakeDiscord

    members = max(BATCH, WARMUP + sum(sizes) * rounds)
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        async with FakeDiscord() as fake:
            for offset in range(members):
                fake.add_member(FIRST_MEMBER + offset, f"member-{offset}")
            bot = _storybot if mode == "storybot" else _bare
            async with bot(fake, Path(tmp)):
                # Warm-up, not counted: the first burst opens the client's connections to the fake.
                await _autocomplete(fake, BATCH, BATCH)
                await _burst(fake, range(FIRST_MEMBER, FIRST_MEMBER + WARMUP), mode == "storybot")
                result: dict[str, Any] = {"autocomplete": _summary(await _autocomplete(fake, autocompletes, BATCH))}
                next_member = FIRST_MEMBER + WARMUP
                for size in sizes:
                    samples: list[float] = []
                    late = refused = 0
                    for _ in range(rounds):
                        users = range(next_member, next_member + size)
                        next_member += size
                        elapsed, missed, said_no = await _burst(fake, users, mode == "storybot")
                        samples += elapsed
                        late, refused = late + missed, refused + said_no
                    result[f"ack_{size}"] = _summary(samples) | {"late": late, "refused": refused}
                result["deadline_s"] = fake.ack_deadline_s
    return result


# --- the parent ------------------------------------------------------------------------------------


def _median_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs; late and refused acks are added up."""
    merged: dict[str, Any] = {"deadline_s": results[0]["deadline_s"]}
    for key, first in results[0].items():
        if isinstance(first, dict):
            merged[key] = {
                stat: sum(r[key][stat] for r in results)
                if stat in ("late", "refused", "n")
                else statistics.median(r[key][stat] for r in results)
                for stat in first
            }
    return merged


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench discord_ack", description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("storybot", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="burst sizes, e.g. 20,50")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="bursts of each size")
    parser.add_argument("--autocomplete", type=int, default=AUTOCOMPLETE, help="autocomplete requests")
    parser.add_argument("--quick", action="store_true", help="sizes 5,10, one round, 50 autocompletes")
    args, _ = parser.parse_known_args(argv)  # options meant for other benches are ignored
    if args.quick:
        args.sizes, args.rounds, args.autocomplete = "5,10", 1, 50
    return args


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    options = ["--sizes", args.sizes, "--rounds", str(args.rounds), "--autocomplete", str(args.autocomplete)]
    started = time.perf_counter()
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "storybot": []}
    for index in range(RUNS):
        for mode in ("bare", "storybot") if index % 2 == 0 else ("storybot", "bare"):
            runs[mode].append(run_mode("bench.discord_ack", mode, *options))
    bare, storybot = _median_of(runs["bare"]), _median_of(runs["storybot"])
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"discord acknowledgements, fake Discord on 127.0.0.1 ({machine()})")
    print(f"  {'workload':<34} {'storybot p50':>12} {'p99':>9} {'bare p50':>10} {'p99':>9} {'p99 ratio':>10}")
    rows = [(f"autocomplete x{args.autocomplete}, {BATCH} at once", "autocomplete")]
    rows += [(f"/story new, {size} at once x{args.rounds}", f"ack_{size}") for size in sizes]
    for label, key in rows:
        mine, floor = storybot[key], bare[key]
        print(f"  {label:<34} {mine['p50_ms']:9.1f} ms {mine['p99_ms']:6.1f} ms {floor['p50_ms']:7.1f} ms "
              f"{floor['p99_ms']:6.1f} ms {ratio(mine['p99_ms'], floor['p99_ms']):>10}")  # fmt: skip
    for size in sizes:
        found = storybot[f"ack_{size}"]
        if found["late"] or found["refused"]:
            print(f"  N={size}: {found['late']} acks missed the {storybot['deadline_s']:g} s deadline, "
                  f"{found['refused']} were refusals")  # fmt: skip
    worst = max(sizes)
    mine, floor = storybot[f"ack_{worst}"], bare[f"ack_{worst}"]
    print(f"  summary: with {worst} users at once storybot acks in p99 {mine['p99_ms']:.0f} ms, "
          f"{ratio(mine['p99_ms'], floor['p99_ms'])} a bare discord.py bot's p99 on the same fake "
          f"(deadline {storybot['deadline_s']:g} s; whole run {time.perf_counter() - started:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    parsed = _arguments(None)
    if parsed.mode:
        sizes = [int(size) for size in parsed.sizes.split(",")]
        emit(asyncio.run(_measure(parsed.mode, sizes, parsed.rounds, parsed.autocomplete)))
    else:
        main()
