"""Queue overhead: 2,000 no-op jobs through the durable queue against the same no-ops without persistence.

durable:  JobQueue + Worker (concurrency 4) over a real SQLite file in a temp dir, synchronous=FULL
          as in production: enqueue 2,000 jobs one commit each, then run_until_empty. The figure is
          enqueue + drain; both phases are also shown on their own.
baseline: (with ``--baseline DIR``) the same run with the bot and storage packages of another checkout,
          e.g. a worktree of an older main: ``git worktree add /tmp/base <commit>``. Its process puts DIR
          first on sys.path, so this file's harness drives that checkout's JobQueue and worker (WorkerPool
          before it was renamed Worker). The report gives durable's jobs/s against the baseline's.
plain:    the floor: an asyncio.Queue, 2,000 put_nowait, 4 consumer tasks running the same no-op.
normal:   the durable run with synchronous=NORMAL, shown for information only.
Each mode runs in its own process, three times, interleaved; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import emit, machine, ratio, run_mode

JOBS = 2_000
QUICK_JOBS = 200
CONCURRENCY = 4
RUNS = 3
GOAL = 1.8  # issue #12: at least this many times the jobs/s of the main it started from
MODES = {"plain": None, "durable": "FULL", "normal": "NORMAL", "baseline": "FULL"}


async def _durable(root: Path, synchronous: str, jobs: int) -> dict[str, Any]:
    import bot
    from bot import jobs as job_package
    from bot.clock import SystemClock
    from bot.domain import GenerationJob, JobKind
    from bot.jobs import JobContext, JobQueue

    try:
        from storage.sqlite import SqliteDatabase as Database
    except ImportError:  # a baseline checkout from before the second engine
        from storage.db import Database  # type: ignore[assignment]

    # A baseline checkout from before the rename has WorkerPool, with the same constructor and methods.
    worker_class = getattr(job_package, "Worker", None) or job_package.WorkerPool

    async def no_op(job: GenerationJob, ctx: JobContext) -> None:
        return None

    async with Database(root / "queue.sqlite", synchronous=synchronous) as db:
        queue = JobQueue(db, SystemClock())
        worker = worker_class(queue, {JobKind.DELIVER: no_op}, concurrency=CONCURRENCY)
        started = time.perf_counter()
        for index in range(jobs):
            await queue.enqueue(JobKind.DELIVER, {"n": index})
        enqueued = time.perf_counter()
        stats = await worker.run_until_empty()
        drained = time.perf_counter()
    if stats.succeeded != jobs:
        raise SystemExit(f"expected {jobs} jobs to succeed, got {stats}")
    return {
        "enqueue_s": enqueued - started,
        "drain_s": drained - enqueued,
        "total_s": drained - started,
        "source": str(Path(bot.__file__).resolve().parent.parent),
    }


async def _plain(jobs: int) -> dict[str, Any]:
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
    for index in range(jobs):
        queue.put_nowait({"n": index})
    for _ in range(CONCURRENCY):
        queue.put_nowait(None)  # one stop marker per consumer, behind the jobs
    enqueued = time.perf_counter()
    await asyncio.gather(*(consume() for _ in range(CONCURRENCY)))
    drained = time.perf_counter()
    if done != jobs:
        raise SystemExit(f"expected {jobs} jobs to run, got {done}")
    return {"enqueue_s": enqueued - started, "drain_s": drained - enqueued, "total_s": drained - started}


def _child(mode: str, jobs: int, source: str | None) -> None:
    synchronous = MODES[mode]
    if synchronous is None:
        emit(asyncio.run(_plain(jobs)))
        return
    if source is not None:
        sys.path.insert(0, source)  # before bot and storage are first imported: that checkout's, not ours
    with tempfile.TemporaryDirectory() as tmp:
        emit(asyncio.run(_durable(Path(tmp), synchronous, jobs)))


def _line(label: str, figures: dict[str, float], jobs: int) -> str:
    total = figures["total_s"]
    return (
        f"  {label:<22} total {total:8.3f} s  {total / jobs * 1000:8.4f} ms/job  {jobs / total:10.0f} jobs/s"
        f"  (enqueue {figures['enqueue_s']:.3f} s, drain {figures['drain_s']:.3f} s)"
    )


def _revision(source: Path) -> str:
    found = subprocess.run(
        ["git", "-C", str(source), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip()[:70] if found.returncode == 0 else "not a git checkout"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench queue_overhead", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="a checkout to measure side by side (its bot/ and storage/)"
    )
    parser.add_argument("--runs", type=int, default=RUNS, help=f"interleaved runs of each mode (default {RUNS})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_JOBS} jobs, one run: a smoke test")
    parser.add_argument("--jobs", type=int, default=JOBS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=tuple(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(argv)
    if args.mode:
        _child(args.mode, args.jobs, args.source)
        return
    jobs, runs = (QUICK_JOBS, 1) if args.quick else (args.jobs, args.runs)
    baseline: Path | None = args.baseline.resolve() if args.baseline else None
    if baseline is not None and not (baseline / "bot" / "jobs").is_dir():
        raise SystemExit(f"--baseline {baseline}: no bot/jobs package there; give the root of a storybot checkout")
    modes = [mode for mode in MODES if mode != "baseline" or baseline is not None]
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    for _ in range(runs):  # interleaved, so drift on a shared machine hits every mode alike
        for mode in modes:
            extra = ("--source", str(baseline)) if mode == "baseline" else ()
            results[mode].append(run_mode("bench.queue_overhead", mode, "--jobs", str(jobs), *extra))
    med = {
        mode: {key: statistics.median(run[key] for run in measured) for key in ("enqueue_s", "drain_s", "total_s")}
        for mode, measured in results.items()
    }
    durable, plain, normal = med["durable"], med["plain"], med["normal"]
    print(f"queue overhead, {jobs} no-op jobs, concurrency {CONCURRENCY} ({machine()}; median of {runs})")
    print(_line("durable (sync=FULL)", durable, jobs))
    if baseline is not None:
        base = med["baseline"]
        for mode, expected in (("durable", Path(__file__).resolve().parent.parent), ("baseline", baseline)):
            sources = {run["source"] for run in results[mode]}
            if sources != {str(expected)}:
                raise SystemExit(f"{mode} ran the code in {', '.join(sorted(sources))}, not {expected}")
        print(_line("baseline (sync=FULL)", base, jobs))
        print(f"  baseline checkout      {baseline} ({_revision(baseline)})")
        speedup = base["total_s"] / durable["total_s"]
        verdict = "met" if speedup >= GOAL else "NOT met"
        phases = ", ".join(
            f"{phase} {ratio(base[f'{phase}_s'], durable[f'{phase}_s'])}" for phase in ("enqueue", "drain")
        )
        print(f"  jobs/s durable/baseline {speedup:.2f}x (goal at least {GOAL:.1f}x: {verdict}); {phases}")
    print(_line("plain asyncio.Queue", plain, jobs))
    print(f"  ratio durable/plain    {ratio(durable['total_s'], plain['total_s'])}")
    print(f"  per-job overhead       {(durable['total_s'] - plain['total_s']) / jobs * 1000:.3f} ms")
    print(_line("info: sync=NORMAL", normal, jobs))
    print(f"  ratio NORMAL/plain     {ratio(normal['total_s'], plain['total_s'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
