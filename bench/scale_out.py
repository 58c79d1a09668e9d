"""Scale-out (issue #14): jobs/s with 1, 2 and 4 worker processes on one PostgreSQL database, against one
SQLite process.

Each configuration gets a fresh database holding N jobs, enqueued first; then its worker processes (fresh
``python -m bench.scale_out --child`` processes, each the real JobQueue and Worker) are started, wait until
all are ready, and are let go together. Wall time runs from that start to the last settle committed.

noop:     handlers that return at once; concurrency 8 per process.
latency:  handlers that await 200 ms of fake provider latency (asyncio.sleep), every job of provider "fake"
          with a provider limit of 8 and concurrency 16 per process. The limit holds across processes (each
          claim counts the jobs running everywhere), so 8 / 0.2 s = 40 jobs/s is the cap whatever the number
          of processes: the figure is the share of that cap reached.

Configurations: sqlite x1, the baseline (one process, a SQLite file in a temp dir, synchronous=FULL as in
production), and postgresql x1, x2, x4 (one database, a fresh schema per run, durable as in production:
fsync, full_page_writes and synchronous_commit on). The PostgreSQL cluster is a throwaway one, started with
tests/support/postgres.py in a temp dir and stopped at the end, also on Ctrl-C.

Checked after every run: each job succeeded on its first attempt; its handler ran exactly once, in the
process whose pid its result names (each process lists the jobs it ran); the workers' stats add up; for the
latency jobs, at most 8 handlers ran at once across all processes (a sweep over their start and end times).
Measured in each process: every ``settle_then_claim`` that claims (the transaction in which a worker settles
its jobs and claims their successors, or claims for free slots) and, on PostgreSQL, the wait for the
per-schema advisory write lock and how long it is held (from granted to COMMIT's answer, as the client sees
it). Also CPU: the workers' own, the PostgreSQL server's (postmaster and backends) and the whole machine's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from bench.common import emit, machine
from bot.clock import SystemClock
from bot.domain import GenerationJob, JobKind
from bot.errors import BadJobRow
from bot.jobs import JobContext, JobOutcome, JobQueue, Worker
from storage.db import Database, loads
from storage.engines import database_for
from storage.jobs import Statement, Successors

NOOP, LATENCY = "noop", "latency"
WORKLOADS = (NOOP, LATENCY)
JOBS = {NOOP: 3_000, LATENCY: 240}
QUICK_JOBS = {NOOP: 200, LATENCY: 24}
CONCURRENCY = {NOOP: 8, LATENCY: 16}
KINDS = {NOOP: JobKind.DELIVER, LATENCY: JobKind.RENDER_IMAGE}
PROVIDER = "fake"
PROVIDER_LIMIT = 8
LATENCY_S = 0.2
CAP = PROVIDER_LIMIT / LATENCY_S  # jobs/s the provider limit allows, however many processes
SQLITE, POSTGRES = "sqlite", "postgresql"
CONFIGS = ((SQLITE, 1), (POSTGRES, 1), (POSTGRES, 2), (POSTGRES, 4))
QUICK_CONFIGS = ((SQLITE, 1), (POSTGRES, 1), (POSTGRES, 4))
RUNS = 1
CHILD_TIMEOUT_S = 180
LOCK_SQL = "SELECT pg_advisory_xact_lock"  # storage/postgres.py: the first statement of every write transaction
DURABLE = ("fsync", "full_page_writes", "synchronous_commit")  # the tests' cluster turns these off
ROOT = Path(__file__).resolve().parent.parent


def _label(engine: str, processes: int) -> str:
    return f"{engine} x{processes}"


def _database(engine: str, target: str) -> Database:
    """The database a configuration runs on: a PostgreSQL URL (its schema first on the search_path) or a file."""
    return database_for(target, Path()) if engine == POSTGRES else database_for(None, Path(target))


def _percentile_ms(values: Sequence[float], q: float) -> float | None:
    """The q-quantile of seconds, in ms; None without values (SQLite has no advisory lock to time)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000


# --- a worker process ----------------------------------------------------------------------------


class _TimedQueue(JobQueue):
    """The real queue, timing each ``settle_then_claim``: (ended, seconds, settles, wanted, claimed)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, SystemClock())
        self.calls: list[tuple[float, float, int, int, int]] = []

    async def settle_then_claim(
        self, settles: Sequence[Statement], successors: Successors | None
    ) -> tuple[list[bool], list[GenerationJob | BadJobRow]]:
        started = time.monotonic()
        settled, claimed = await super().settle_then_claim(settles, successors)
        ended = time.monotonic()
        wanted = 0 if successors is None else successors.count
        self.calls.append((ended, ended - started, len(settles), wanted, len(claimed)))
        return settled, claimed


class _LockTimer:
    """Times the advisory write lock every PostgreSQL write transaction takes first: the wait for it, how long
    it is held (granted to COMMIT's answer) and the statements (round trips to the server) run meanwhile, COMMIT
    included. Wraps ``PgSync.execute``, which only the connection's own thread calls."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.holds: list[float] = []
        self.statements: list[int] = []
        self._granted: float | None = None
        self._statements = 0

    def install(self) -> None:
        from storage import postgres

        original = postgres.PgSync.execute
        timer = self

        def execute(conn: postgres.PgSync, sql: str, parameters: Any = (), /) -> Any:
            if sql.startswith(LOCK_SQL):
                asked = time.monotonic()
                cursor = original(conn, sql, parameters)
                timer._granted = time.monotonic()
                timer.waits.append(timer._granted - asked)
                timer._statements = 0
                return cursor
            if timer._granted is None:
                return original(conn, sql, parameters)
            timer._statements += 1
            if sql not in ("COMMIT", "ROLLBACK"):
                return original(conn, sql, parameters)
            try:
                return original(conn, sql, parameters)
            finally:
                timer.holds.append(time.monotonic() - timer._granted)
                timer.statements.append(timer._statements)
                timer._granted = None

        postgres.PgSync.execute = execute  # type: ignore[method-assign]


async def _work(engine: str, target: str, workload: str, out: Path) -> None:
    db = _database(engine, target)
    await db.open()
    lock = _LockTimer()
    if engine == POSTGRES:
        lock.install()
    queue = _TimedQueue(db)
    pid = os.getpid()
    ran: list[tuple[str, float, float]] = []  # job id, handler start, handler end (time.monotonic)

    async def handle(job: GenerationJob, ctx: JobContext) -> JobOutcome:
        started = time.monotonic()
        if workload == LATENCY:
            await asyncio.sleep(LATENCY_S)  # the fake provider
        ran.append((job.id, started, time.monotonic()))
        return JobOutcome(result={"pid": pid})

    worker = Worker(queue, {KINDS[workload]: handle}, concurrency=CONCURRENCY[workload], provider_limit=PROVIDER_LIMIT)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # the parent's start signal
    went = time.monotonic()
    cpu = os.times()
    stats = await worker.run_until_empty()
    done = time.monotonic()
    cpu_after = os.times()
    await db.close()
    out.write_text(
        json.dumps(
            {
                "pid": pid,
                "went": went,
                "done": done,
                "cpu_s": (cpu_after.user + cpu_after.system) - (cpu.user + cpu.system),
                "stats": vars(stats),
                "ran": ran,
                "calls": queue.calls,
                "lock_waits": lock.waits,
                "lock_holds": lock.holds,
                "lock_statements": lock.statements,
            }
        )
    )


# --- CPU -----------------------------------------------------------------------------------------


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _server_cpu_s(data: Path) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster (with the backends it has reaped) and the
    processes it runs now."""
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        elif ppid == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- the parent ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, Path, str]]:
    """A throwaway PostgreSQL cluster in a temp dir, durable as a production server: (URL, data dir, version)."""
    from tests.support.postgres import NOT_INSTALLED, find_binaries, launch

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit(f"scale_out needs PostgreSQL: {NOT_INSTALLED}")
    try:
        cluster = launch(binaries, {name: "on" for name in DURABLE})
    except RuntimeError as error:
        raise SystemExit(f"could not start PostgreSQL from {binaries}: {error}") from error
    try:
        version = _server_settings(cluster.url)
        yield cluster.url, cluster.data, version
    finally:
        cluster.stop()


def _server_settings(url: str) -> str:
    """The server's version, once it is seen to run with the durable settings."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        values = [conn.execute(f"SHOW {name}").fetchone() for name in (*DURABLE, "server_version")]
    settings = [str(row[0]) if row else "" for row in values]
    if any(value != "on" for value in settings[:-1]):
        raise SystemExit(f"PostgreSQL runs with {dict(zip(DURABLE, settings, strict=False))}, not all on")
    return settings[-1]


def _new_schema(url: str) -> str:
    """A fresh schema of the cluster, as a URL whose connections put it first on the search_path."""
    import psycopg

    from tests.support.postgres import with_search_path

    name = f"scale_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    return with_search_path(url, name)


async def _enqueue(engine: str, target: str, workload: str, jobs: int) -> list[str]:
    """A fresh database (migrated) holding ``jobs`` ready jobs, enqueued in one transaction; their ids."""
    async with _database(engine, target) as db:
        queue = JobQueue(db, SystemClock())
        provider = PROVIDER if workload == LATENCY else None
        async with db.transaction() as conn:
            return [
                (await queue.enqueue(KINDS[workload], {"n": n}, provider=provider, conn=conn)).id for n in range(jobs)
            ]


async def _stored(engine: str, target: str) -> list[tuple[str, str, int, Any]]:
    async with _database(engine, target) as db:
        rows = await db.fetchall("SELECT id, status, attempts, result FROM jobs")
    return [(str(row["id"]), str(row["status"]), int(row["attempts"]), loads(row["result"])) for row in rows]


def _peak(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end and a start at the same instant do not overlap)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _check(
    workload: str, ids: list[str], children: list[dict[str, Any]], stored: list[tuple[str, str, int, Any]]
) -> tuple[list[str], int]:
    """What is wrong with the run (nothing, we hope), and the peak number of handlers running at once."""
    problems: list[str] = []
    ran = Counter(job_id for child in children for job_id, _, _ in child["ran"])
    ran_by = {job_id: child["pid"] for child in children for job_id, _, _ in child["ran"]}
    if twice := [job_id for job_id, times in ran.items() if times > 1]:
        problems.append(f"{len(twice)} job(s) ran more than once, e.g. {twice[0]}")
    if missing := set(ids) - set(ran):
        problems.append(f"{len(missing)} job(s) never ran")
    if extra := set(ran) - set(ids):
        problems.append(f"{len(extra)} job(s) ran that were never enqueued")
    bad = [
        job_id
        for job_id, status, attempts, result in stored
        if status != "succeeded"
        or attempts != 1
        or not isinstance(result, dict)
        or result.get("pid") != ran_by.get(job_id)
    ]
    if bad:
        problems.append(f"{len(bad)} job(s) not succeeded on the first attempt by the process that ran them")
    if len(stored) != len(ids):
        problems.append(f"{len(stored)} rows in the jobs table, {len(ids)} enqueued")
    succeeded = sum(child["stats"]["succeeded"] for child in children)
    if succeeded != len(ids):
        problems.append(f"the workers counted {succeeded} successes, not {len(ids)}")
    peak = _peak([(start, end) for child in children for _, start, end in child["ran"]])
    if workload == LATENCY and peak > PROVIDER_LIMIT:
        problems.append(f"{peak} latency jobs ran at once across processes, over the provider limit {PROVIDER_LIMIT}")
    return problems, peak


def _start(engine: str, target: str, workload: str, out: Path, log: TextIO) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "bench.scale_out", "--child", "--engine", engine, "--target", target,
            "--workload", workload, "--out", str(out)]  # fmt: skip
    return subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)


def _run(workload: str, engine: str, processes: int, jobs: int, folder: Path, url: str, data: Path) -> dict[str, Any]:
    """One configuration, start to finish: enqueue, start the processes together, wait, check; its figures.
    ``url`` and ``data`` are the PostgreSQL cluster's (a SQLite configuration leaves it idle)."""
    tag = f"{workload}-{engine}-{processes}-{uuid.uuid4().hex[:6]}"
    server = data if engine == POSTGRES else None
    target = _new_schema(url) if engine == POSTGRES else str(folder / f"{tag}.sqlite")
    ids = asyncio.run(_enqueue(engine, target, workload, jobs))
    outs = [folder / f"{tag}-{n}.json" for n in range(processes)]
    logs = [(folder / f"{tag}-{n}.log").open("w") for n in range(processes)]
    procs: list[subprocess.Popen[str]] = []
    try:
        procs = [_start(engine, target, workload, out, log) for out, log in zip(outs, logs, strict=True)]
        for proc, log in zip(procs, logs, strict=True):
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                proc.wait(timeout=10)
                raise SystemExit(f"a worker process failed to start:\n{Path(log.name).read_text()}")
        server_cpu = _server_cpu_s(server) if server else 0.0
        busy, total = _machine_ticks()
        went = time.monotonic()
        for proc in procs:  # let them go together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc, log in zip(procs, logs, strict=True):
            if proc.wait(timeout=CHILD_TIMEOUT_S) != 0:
                raise SystemExit(f"a worker process failed:\n{Path(log.name).read_text()[-4000:]}")
        busy_after, total_after = _machine_ticks()
        time.sleep(0.2)  # the backends' exits, reaped into the postmaster's children's time
        server_cpu = (_server_cpu_s(server) - server_cpu) if server else 0.0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
    children = [json.loads(out.read_text()) for out in outs]
    problems, peak = _check(workload, ids, children, asyncio.run(_stored(engine, target)))
    last_settle = max(ended for child in children for ended, _, settles, _, _ in child["calls"] if settles)
    wall = last_settle - went
    claims = [(took, settles, claimed) for child in children for _, took, settles, wanted, claimed in child["calls"]
              if wanted]  # fmt: skip
    waits = [wait for child in children for wait in child["lock_waits"]]
    holds = [hold for child in children for hold in child["lock_holds"]]
    statements = [n for child in children for n in child["lock_statements"]]
    workers_cpu = sum(child["cpu_s"] for child in children)
    return {
        "jobs": jobs,
        "wall_s": wall,
        "jobs_per_s": jobs / wall,
        "start_skew_ms": (max(child["went"] for child in children) - went) * 1000,
        "claims": len(claims),
        "claim_p50_ms": _percentile_ms([took for took, _, _ in claims], 0.5),
        "claim_p99_ms": _percentile_ms([took for took, _, _ in claims], 0.99),
        "claims_empty": sum(1 for _, settles, claimed in claims if not settles and not claimed),
        "claims_empty_per_process": [
            sum(1 for _, _, settles, wanted, claimed in child["calls"] if wanted and not settles and not claimed)
            for child in children
        ],
        "jobs_per_claim": jobs / max(len(claims), 1),
        "lock_wait_p50_ms": _percentile_ms(waits, 0.5),
        "lock_wait_p99_ms": _percentile_ms(waits, 0.99),
        "lock_hold_p50_ms": _percentile_ms(holds, 0.5),
        "lock_hold_p99_ms": _percentile_ms(holds, 0.99),
        "lock_busy": sum(holds) / wall if holds else None,
        "statements_per_transaction": statistics.mean(statements) if statements else None,
        "transactions": len(holds),
        "peak_running": peak if workload == LATENCY else None,  # a no-op handler returns at once
        "jobs_per_process": sorted(len(child["ran"]) for child in children),
        "workers_cpu_ms_per_job": workers_cpu / jobs * 1000,
        "server_cpu_ms_per_job": server_cpu / jobs * 1000,
        "machine_busy": (busy_after - busy) / max(total_after - total, 1),
        "problems": problems,
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration over its runs: medians of the figures, the highest peak, every problem."""
    if len(runs) == 1:
        return runs[0]
    merged: dict[str, Any] = {}
    for key, value in runs[0].items():
        if value is None:  # not measured here (no lock in SQLite, no peak for no-op handlers)
            merged[key] = None
        elif key == "peak_running":
            merged[key] = max(run[key] for run in runs)
        elif key == "problems":
            merged[key] = [problem for run in runs for problem in run[key]]
        elif isinstance(value, int):
            merged[key] = statistics.median_low(run[key] for run in runs)
        elif isinstance(value, float):
            merged[key] = statistics.median(run[key] for run in runs)
        else:
            merged[key] = value
    return merged


def _loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _report(
    results: dict[str, dict[str, dict[str, Any]]], runs: int, version: str, load: tuple[str, str]
) -> dict[str, Any]:
    print(f"scale-out: worker processes on one PostgreSQL database against one SQLite process ({machine()}; "
          f"{'median of ' + str(runs) if runs > 1 else 'one run'})")  # fmt: skip
    print(f"  PostgreSQL {version} (fsync, full_page_writes, synchronous_commit on) on 127.0.0.1; SQLite "
          f"synchronous=FULL; load average {load[0]} before, {load[1]} after")  # fmt: skip
    efficiency: dict[str, float] = {}
    for workload, configs in results.items():
        some = next(iter(configs.values()))
        if workload == NOOP:
            print(f"\n  {some['jobs']} no-op jobs, concurrency {CONCURRENCY[workload]} per process")
        else:
            print(f"\n  {some['jobs']} jobs of {LATENCY_S * 1000:.0f} ms fake provider latency, provider limit "
                  f"{PROVIDER_LIMIT} (cap {CAP:.0f} jobs/s), concurrency {CONCURRENCY[workload]} "
                  "per process")  # fmt: skip
        third = "vs sqlite" if workload == NOOP else "of cap"
        print(f"  {'config':<14} {'wall s':>6} {'jobs/s':>7} {third:>9}  {'claim p50/p99 ms':>16}  "
              f"{'lock wait p50/p99':>17} {'lock busy':>9} {'empty':>6} {'peak':>4}  "
              f"{'cpu ms/job wkr+srv':>18} {'machine':>7}")  # fmt: skip
        base = configs[_label(SQLITE, 1)]["jobs_per_s"]
        for label, figures in configs.items():
            rate = figures["jobs_per_s"]
            versus = f"{rate / base:.2f}x" if workload == NOOP else f"{rate / CAP:.0%}"
            lock = f"{_ms(figures['lock_wait_p50_ms'])}/{_ms(figures['lock_wait_p99_ms'])}"
            busy = "-" if figures["lock_busy"] is None else f"{figures['lock_busy']:.0%}"
            peak = "-" if figures["peak_running"] is None else str(figures["peak_running"])
            cpu = f"{figures['workers_cpu_ms_per_job']:.2f}+{figures['server_cpu_ms_per_job']:.2f}"
            print(f"  {label:<14} {figures['wall_s']:6.2f} {rate:7.1f} {versus:>9}  "
                  f"{figures['claim_p50_ms']:7.1f}/{figures['claim_p99_ms']:<8.1f}  {lock:>17} {busy:>9} "
                  f"{figures['claims_empty']:>6} {peak:>4}  {cpu:>18} "
                  f"{figures['machine_busy']:>7.0%}")  # fmt: skip
        one, four = configs.get(_label(POSTGRES, 1)), configs.get(_label(POSTGRES, 4))
        if one and four:
            efficiency[workload] = four["jobs_per_s"] / (4 * one["jobs_per_s"])
            print(f"  scaling efficiency, 4 processes against 1: {four['jobs_per_s']:.1f} / (4 x "
                  f"{one['jobs_per_s']:.1f}) = {efficiency[workload]:.2f}")  # fmt: skip
        print(f"  {'':<14} {'lock held p50/p99 ms':>20} {'statements/txn':>14} {'jobs/claim':>10}  jobs per process")
        for label, figures in configs.items():
            held = f"{_ms(figures['lock_hold_p50_ms'])}/{_ms(figures['lock_hold_p99_ms'])}"
            per_txn = figures["statements_per_transaction"]
            print(f"  {label:<14} {held:>20} {'-' if per_txn is None else f'{per_txn:.1f}':>14} "
                  f"{figures['jobs_per_claim']:>10.2f}  {'/'.join(map(str, figures['jobs_per_process']))}")  # fmt: skip
        if workload == LATENCY:
            peak = max(figures["peak_running"] for figures in configs.values())
            verdict = "held" if peak <= PROVIDER_LIMIT else "BROKEN"
            print(f"  provider limit {PROVIDER_LIMIT} across processes: {verdict} (peak {peak} handlers at once)")
    for line in (
        "",
        "claim: a settle_then_claim that claims (settles finished jobs and claims successors, or claims for free",
        "  slots): one transaction; empty: claims that found nothing; peak: handlers running at once, all processes",
        "lock: PostgreSQL's per-schema advisory write lock: the wait for it, the share of the wall time it was held,",
        "  how long each hold lasts (the client's view: granted to COMMIT's answer) and the statements run meanwhile",
        "cpu: worker processes + PostgreSQL server per job; machine: all cores busy (other users' load included)",
    ):
        print(f"  {line}" if line else "")
    problems = [f"{workload} {label}: {problem}" for workload, configs in results.items()
                for label, figures in configs.items() for problem in figures["problems"]]  # fmt: skip
    return {"efficiency_4_vs_1": efficiency, "cap_jobs_per_s": CAP, "problems": problems}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench scale_out", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test: few jobs, 1 and 4 processes, one run")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"interleaved runs of each configuration ({RUNS})")
    parser.add_argument("--noop-jobs", type=int, default=JOBS[NOOP], help=f"no-op jobs per run ({JOBS[NOOP]})")
    parser.add_argument(
        "--latency-jobs", type=int, default=JOBS[LATENCY], help=f"latency jobs per run ({JOBS[LATENCY]})"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=(SQLITE, POSTGRES), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--workload", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the worker processes are killed and the cluster stopped


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(argv)
    if args.child:
        asyncio.run(_work(args.engine, args.target, args.workload, args.out))
        return
    jobs = dict(QUICK_JOBS) if args.quick else {NOOP: args.noop_jobs, LATENCY: args.latency_jobs}
    runs, configs = (1, QUICK_CONFIGS) if args.quick else (args.runs, CONFIGS)
    if min(*jobs.values(), runs) < 1:
        raise SystemExit("--runs, --noop-jobs and --latency-jobs must be at least 1")
    load_before = _loadavg()
    previous = signal.signal(signal.SIGTERM, _interrupted)
    measured: dict[str, dict[str, list[dict[str, Any]]]] = {
        workload: {_label(*config): [] for config in configs} for workload in WORKLOADS
    }
    try:
        with _postgres() as (url, data, version), tempfile.TemporaryDirectory(prefix="storybot-scale-") as tmp:
            for _ in range(runs):  # interleaved, so drift on a shared machine hits every configuration alike
                for workload in WORKLOADS:
                    for engine, processes in configs:
                        figures = _run(workload, engine, processes, jobs[workload], Path(tmp), url, data)
                        measured[workload][_label(engine, processes)].append(figures)
    finally:
        signal.signal(signal.SIGTERM, previous)
    results = {workload: {label: _summary(runs) for label, runs in configs_.items()}
               for workload, configs_ in measured.items()}  # fmt: skip
    verdict = _report(results, runs, version, (load_before, _loadavg()))
    emit({"bench": "scale_out", "machine": machine(), "runs": runs, "postgres": version,
          "loadavg": {"before": load_before, "after": _loadavg()}, **verdict, "results": results})  # fmt: skip
    if verdict["problems"]:
        raise SystemExit("scale_out: " + "; ".join(verdict["problems"]))


if __name__ == "__main__":
    main(sys.argv[1:])
