"""Scale: the claim query and ``/story list`` with 100,000 stories and 1,000,000 jobs, against 1,000 and 10,000.

Two databases (``--quick``: 10,000 / 100,000 for the large one) get the real migrations, then a bulk
fill by this file's own SQL (one ``executemany`` per table, synchronous=OFF). Both hold the same live
work: the newest QUEUED jobs are queued (due now, mixed providers and users), every other job is
finished, as in a bot that has run for a long time. Users own about 20 stories each in one of 10
servers; one heavy user owns 1 % of all stories. Scenes and media rows are left out (never read here).

Each database is filled in its own process. Then, three times, a fresh process opens both and runs
every measure on each in alternating blocks of 20 calls (so load drift on a shared machine hits both
alike), pinned to one core; the median of the runs' p50 and p99 is reported, large against small:
claim:      ``JobQueue.claim`` as a worker calls it (its own BEGIN IMMEDIATE ... COMMIT, synchronous=FULL),
            cycling through no exclusions, one excluded provider, and two providers plus two users.
statement:  the same ``storage.jobs.claim`` inside a savepoint that is rolled back: the UPDATE ...
            RETURNING alone, without the fsync of a commit.
list:       ``storage.stories.list_for_owner`` (the first page of ``/story list``, 10 rows) for random
            users, and for the heavy user.
The plans come from EXPLAIN QUERY PLAN on the statements actually executed (captured with SQLite's
trace callback); each must search its index (jobs_ready, stories_by_owner) with no temp b-tree.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import emit, machine, ratio, run_mode
from bot.clock import SystemClock
from bot.jobs import JobQueue
from storage import jobs as job_rows
from storage import stories as story_rows
from storage.sqlite import SqliteDatabase

SIZES = {"small": (1_000, 10_000), "large": (100_000, 1_000_000)}
QUICK_LARGE = (10_000, 100_000)
QUEUED = 4_000  # enough for every run's claims, a third of which only a delivery job can satisfy
STORIES_PER_USER = 20
GUILDS = 10
HEAVY_OWNER = 999  # owns every hundredth story, in guild 1
BLOCK, BLOCKS, RUNS = 20, 10, 3  # per run: 200 calls of each measure per database
QUICK_BLOCKS, QUICK_RUNS = 5, 1
EXCLUSIONS: list[tuple[list[str], list[int]]] = [([], []), (["openai"], []), (["openai", "xai"], [1_000, 1_001])]
# Ten jobs per story, as a 4-scene story with video makes (its deliveries folded into one).
JOB_KINDS = [("write_story", "openai"), *[("render_image", "openai")] * 4, *[("render_video", "xai")] * 4,
             ("deliver", None)]  # fmt: skip

# --- the bulk fill (the bench's own SQL) ---------------------------------------------------------

_STORY_SQL = (
    "INSERT INTO stories (id, guild_id, channel_id, owner_id, prompt, title, text_model, image_model, video_model, "
    "video_mode, scene_count, status, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, 'gpt-5-mini', 'gpt-image-1.5', 'grok-imagine-video', 1, 4, 'complete', ?, ?)"
)
_JOB_SQL = (
    "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_after, idempotency_key, story_id, "
    "user_id, provider, result, created_at, updated_at, finished_at) "
    "VALUES (?, ?, ?, ?, 1, 5, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _owner(index: int, users: int) -> tuple[int, int]:
    """(guild_id, owner_id) of the index-th story."""
    if index % 100 == 0:
        return 1, HEAVY_OWNER
    owner = 1_000 + index % users
    return 1 + owner % GUILDS, owner


def _stories(count: int, now: float, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    users = max(count // STORIES_PER_USER, 1)
    for index in range(count):
        guild, owner = _owner(index, users)
        created = now - (count - index) * 60.0
        yield (f"{rng.getrandbits(128):032x}", guild, 10_000 + guild, owner, "a lighthouse keeper befriends a storm",
               "The Lantern Keeper", created, created + 30.0)  # fmt: skip


def _jobs(
    story_rows: list[tuple[str, int, float]], total: int, now: float, rng: random.Random
) -> Iterator[tuple[Any, ...]]:
    per_story = max(total // len(story_rows), 1)
    first_queued = len(story_rows) * per_story - QUEUED
    for number, (story_id, owner, created) in enumerate(story_rows):
        for step in range(per_story):
            kind, provider = JOB_KINDS[step % len(JOB_KINDS)]
            position = number * per_story + step
            queued = position >= first_queued
            payload = json.dumps({"story_id": story_id, "scene_id": f"{rng.getrandbits(128):032x}"})
            run_after = now - 5.0 + (position - first_queued) * 1e-4 if queued else created + step
            result = None if queued else '{"model_used": "gpt-image-1.5", "path": "data/media/x/y.png"}'
            yield (f"{rng.getrandbits(128):032x}", kind, payload, "queued" if queued else "succeeded", run_after,
                   f"{kind}:{story_id}:{step}", story_id, owner, provider, result, created, run_after,
                   None if queued else run_after + 1.0)  # fmt: skip


def fill(path: Path, stories: int, jobs: int) -> float:
    """Create the schema with the real migrations, then bulk-insert; returns the seconds it took."""
    started = time.perf_counter()

    async def migrate() -> None:
        async with SqliteDatabase(path):
            pass

    asyncio.run(migrate())
    rng, now = random.Random(stories), time.time()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("BEGIN")
        conn.executemany(_STORY_SQL, _stories(stories, now, rng))
        rows = [(r[0], r[1], r[2]) for r in conn.execute("SELECT id, owner_id, created_at FROM stories ORDER BY rowid")]
        conn.executemany(_JOB_SQL, _jobs(rows, jobs, now, rng))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - started


# --- the measured process ------------------------------------------------------------------------

METRICS = ("claim", "statement", "list_user", "list_heavy")


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": statistics.median(ordered), "p99": ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)]}


class _Probe:
    """The measured calls against one database, each timed alone, in milliseconds."""

    def __init__(self, db: SqliteDatabase, stories: int) -> None:
        self.db, self.stories = db, stories
        self.users = max(stories // STORIES_PER_USER, 1)
        self.queue = JobQueue(db, SystemClock())
        self.rng = random.Random(7)

    async def claim(self, index: int, conn: Any = None) -> None:
        providers, users = EXCLUSIONS[index % len(EXCLUSIONS)]
        if await self.queue.claim("bench:1:a", exclude_providers=providers, exclude_users=users) is None:
            raise SystemExit("the queue ran dry; raise QUEUED")

    async def statement(self, index: int, conn: Any = None) -> None:
        providers, users = EXCLUSIONS[index % len(EXCLUSIONS)]
        await conn.execute("SAVEPOINT probe")
        try:
            await job_rows.claim(conn, owner="bench:1:b", now=time.time(), lease_s=60.0,
                                 exclude_providers=providers, exclude_users=users)  # fmt: skip
        finally:
            await conn.execute("ROLLBACK TO probe")
            await conn.execute("RELEASE probe")

    async def list_user(self, index: int, conn: Any = None) -> None:
        story = self.rng.randrange(self.stories)
        guild, owner = _owner(story + 1 if story % 100 == 0 else story, self.users)
        if not await story_rows.list_for_owner(self.db, guild, owner, limit=10, offset=0):
            raise SystemExit(f"user {owner} in guild {guild} has no stories")

    async def list_heavy(self, index: int, conn: Any = None) -> None:
        await story_rows.list_for_owner(self.db, 1, HEAVY_OWNER, limit=10, offset=0)

    async def block(self, metric: str, start: int, count: int) -> list[float]:
        call = getattr(self, metric)
        samples = []
        async with contextlib.AsyncExitStack() as stack:
            # The rolled-back statement runs inside one open transaction; BEGIN and COMMIT are not timed.
            conn = await stack.enter_async_context(self.db.transaction()) if metric == "statement" else None
            for index in range(start, start + count):
                started = time.perf_counter()
                await call(index, conn)
                samples.append((time.perf_counter() - started) * 1000)
        return samples


async def _measure(databases: dict[str, tuple[str, int]], blocks: int) -> dict[str, Any]:
    """Every metric on every database, in alternating blocks of BLOCK calls, so load drift hits all alike."""
    samples: dict[str, dict[str, list[float]]] = {name: {m: [] for m in METRICS} for name in databases}
    async with contextlib.AsyncExitStack() as stack:
        probes = {}
        for name, (path, stories) in databases.items():
            probes[name] = _Probe(await stack.enter_async_context(SqliteDatabase(path)), stories)
        for number in range(blocks):
            order = list(probes.items()) if number % 2 == 0 else list(probes.items())[::-1]
            for metric in METRICS:
                for name, probe in order:
                    samples[name][metric] += await probe.block(metric, number * BLOCK, BLOCK)
        plans = {}
        for name, probe in probes.items():
            async with probe.db.transaction() as conn:
                claim_plan = await _plans(probe.db, probe.statement(len(EXCLUSIONS) - 1, conn))
            plans[name] = {"claim": claim_plan, "list": await _plans(probe.db, probe.list_user(0))}
    return {name: {m: _percentiles(v) for m, v in by_metric.items()} | {"plans": plans[name]}
            for name, by_metric in samples.items()}  # fmt: skip


async def _plans(db: SqliteDatabase, call: Awaitable[Any]) -> list[str]:
    """EXPLAIN QUERY PLAN of every SELECT/UPDATE the call ran (expanded SQL from the trace callback)."""
    executed: list[str] = []
    await db.conn.raw.set_trace_callback(executed.append)
    try:
        await call
    finally:
        await db.conn.raw.set_trace_callback(None)  # type: ignore[arg-type]  # sqlite3 takes None to stop tracing
    details = []
    for sql in executed:
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
            async with db.conn.raw.execute(f"EXPLAIN QUERY PLAN {sql}") as cursor:
                details += [str(row["detail"]) for row in await cursor.fetchall()]
    return details


# --- the report ----------------------------------------------------------------------------------


def _plan_verdict(details: list[str], index: str) -> str:
    uses = any(index in detail for detail in details)
    sorts = any("TEMP B-TREE" in detail for detail in details)
    verdict = "uses" if uses and not sorts else "DOES NOT use"
    return f"{verdict} {index}{' (sorts in a temp b-tree)' if sorts else ''}: {' | '.join(details)}"


def _pin_to_one_core() -> None:
    """Keep the event loop and both aiosqlite threads on one core: a hand-off to a thread on another
    (virtual) core costs a wake-up of a few hundred microseconds, which would land on whichever
    database's thread the scheduler happened to place there and swamp the difference measured."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(argv)
    if args.mode == "fill":
        emit({"fill_s": fill(Path(args.db), args.stories, args.jobs)})
        return
    if args.mode == "measure":
        _pin_to_one_core()
        emit(asyncio.run(_measure(json.loads(args.databases), args.blocks)))
        return
    sizes = dict(SIZES, large=QUICK_LARGE) if args.quick else SIZES
    blocks, runs = (QUICK_BLOCKS, QUICK_RUNS) if args.quick else (BLOCKS, RUNS)
    (s_stories, s_jobs), (l_stories, l_jobs) = sizes.values()
    print(f"scale: {l_stories:,} stories / {l_jobs:,} jobs against {s_stories:,} / {s_jobs:,} "
          f"({machine()}; median of {runs})", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        databases = {name: (str(Path(tmp) / f"{name}.sqlite"), stories) for name, (stories, _) in sizes.items()}
        for name, (stories, jobs) in sizes.items():
            path = databases[name][0]
            seconds = run_mode("bench.scale", "fill", "--db", path, "--stories", str(stories), "--jobs", str(jobs))
            built = f"{stories:,} stories, {jobs:,} jobs, {Path(path).stat().st_size / 2**20:.0f} MiB"
            print(f"  built {name}: {built} in {seconds['fill_s']:.1f} s", flush=True)
        options = ("--databases", json.dumps(databases), "--blocks", str(blocks))
        results = [run_mode("bench.scale", "measure", *options) for _ in range(runs)]
    _report(sizes, results, blocks * BLOCK)


def _report(sizes: dict[str, tuple[int, int]], results: list[dict[str, Any]], calls: int) -> None:
    small, large = sizes
    print(f"  {calls} calls of each per database and run, in alternating blocks of {BLOCK}; large vs small:")
    labels = {
        "claim": "claim (JobQueue.claim, committed)",
        "statement": "claim statement (rolled back)",
        "list_user": "/story list page 1, a user",
        "list_heavy": "/story list page 1, heavy user",
    }
    for key, label in labels.items():
        line = f"  {label:<34}"
        for stat in ("p50", "p99"):
            base = statistics.median(run[small][key][stat] for run in results)
            value = statistics.median(run[large][key][stat] for run in results)
            line += f"  {stat} {value:7.3f} ms vs {base:7.3f} ms = {ratio(value, base):>6}"
        print(line)
    plans = results[0][large]["plans"]
    print(f"  plan, claim (large): {_plan_verdict(plans['claim'], 'jobs_ready')}")
    print(f"  plan, list (large):  {_plan_verdict(plans['list'], 'stories_by_owner')}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench scale")
    parser.add_argument("--quick", action="store_true", help="10,000 stories / 100,000 jobs for the large database")
    parser.add_argument("--mode", choices=("fill", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--stories", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--databases", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", type=int, default=BLOCKS, help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main(sys.argv[1:])
