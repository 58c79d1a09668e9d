"""Queue overhead: 2,000 no-op jobs through the durable queue against the same no-ops without persistence.

durable: JobQueue + WorkerPool (concurrency 4) over a real SQLite file in a temp dir, synchronous=FULL
         as in production: enqueue 2,000 jobs one commit each, then run_until_empty. The figure is
         enqueue + drain; both phases are also shown on their own.
plain:   the floor: an asyncio.Queue, 2,000 put_nowait, 4 consumer tasks running the same no-op.
normal:  the durable run with synchronous=NORMAL, shown for information only.
Each mode runs in its own process, three times, interleaved; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, machine, ratio, run_mode

JOBS = 2_000
CONCURRENCY = 4
RUNS = 3
MODES = {"plain": None, "durable": "FULL", "normal": "NORMAL"}


async def _durable(root: Path, synchronous: str) -> dict[str, float]:
    from bot.clock import SystemClock
    from bot.domain import GenerationJob, JobKind
    from bot.jobs import JobContext, JobQueue, WorkerPool
    from storage.db import Database

    async def no_op(job: GenerationJob, ctx: JobContext) -> None:
        return None

    async with Database(root / "queue.sqlite", synchronous=synchronous) as db:
        queue = JobQueue(db, SystemClock())
        pool = WorkerPool(queue, {JobKind.DELIVER: no_op}, concurrency=CONCURRENCY)
        started = time.perf_counter()
        for index in range(JOBS):
            await queue.enqueue(JobKind.DELIVER, {"n": index})
        enqueued = time.perf_counter()
        stats = await pool.run_until_empty()
        drained = time.perf_counter()
    if stats.succeeded != JOBS:
        raise SystemExit(f"expected {JOBS} jobs to succeed, got {stats}")
    return {"enqueue_s": enqueued - started, "drain_s": drained - enqueued, "total_s": drained - started}


async def _plain() -> dict[str, float]:
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    done = 0

    async def no_op(payload: dict[str, Any]) -> None:
        return None

    async def consume() -> None:
        nonlocal done
        while (payload := await queue.get()) is not None:
            await no_op(payload)
            done += 1

    started = time.perf_counter()
    for index in range(JOBS):
        queue.put_nowait({"n": index})
    for _ in range(CONCURRENCY):
        queue.put_nowait(None)  # one stop marker per consumer, behind the jobs
    enqueued = time.perf_counter()
    await asyncio.gather(*(consume() for _ in range(CONCURRENCY)))
    drained = time.perf_counter()
    if done != JOBS:
        raise SystemExit(f"expected {JOBS} jobs to run, got {done}")
    return {"enqueue_s": enqueued - started, "drain_s": drained - enqueued, "total_s": drained - started}


def _child(mode: str) -> None:
    synchronous = MODES[mode]
    if synchronous is None:
        emit(asyncio.run(_plain()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        emit(asyncio.run(_durable(Path(tmp), synchronous)))


def _line(label: str, figures: dict[str, float]) -> str:
    total = figures["total_s"]
    return (
        f"  {label:<22} total {total:8.3f} s  {total / JOBS * 1000:8.4f} ms/job  {JOBS / total:10.0f} jobs/s"
        f"  (enqueue {figures['enqueue_s']:.3f} s, drain {figures['drain_s']:.3f} s)"
    )


def main() -> None:
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for _ in range(RUNS):  # interleaved, so drift on a shared machine hits every mode alike
        for mode in results:
            results[mode].append(run_mode("bench.queue_overhead", mode))
    med = {
        mode: {key: statistics.median(run[key] for run in runs) for key in ("enqueue_s", "drain_s", "total_s")}
        for mode, runs in results.items()
    }
    durable, plain, normal = med["durable"], med["plain"], med["normal"]
    print(f"queue overhead, {JOBS} no-op jobs, concurrency {CONCURRENCY} ({machine()}; median of {RUNS})")
    print(_line("durable (sync=FULL)", durable))
    print(_line("plain asyncio.Queue", plain))
    print(f"  ratio durable/plain    {ratio(durable['total_s'], plain['total_s'])}")
    print(f"  per-job overhead       {(durable['total_s'] - plain['total_s']) / JOBS * 1000:.3f} ms")
    print(_line("info: sync=NORMAL", normal))
    print(f"  ratio NORMAL/plain     {ratio(normal['total_s'], plain['total_s'])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=tuple(MODES))
    args = parser.parse_args()
    _child(args.mode) if args.mode else main()
