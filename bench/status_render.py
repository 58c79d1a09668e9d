"""/status with 30 days of call history: 1,000,000 model_calls rows (aggregated), against 1,000.

Two databases get the real migrations, then calls spread evenly over the last 30 days across the 14
built-in models that are not retired (latencies by modality, about 4 % failures, 5 % fallbacks),
written with ``storage.health.insert_calls``. Everything older than 5 minutes is aggregated with
``bot.health.metrics.aggregate`` (its time is reported); the last 5 minutes stay raw, as between two
aggregations of a running bot. Each database is filled in its own process.

Then one fresh process opens both (a Runtime each, every provider key set, a FakeClock at the end of
the data) and measures, in alternating blocks of 10, what one ``/status`` costs: ``HealthMonitor.report()``
(states, windows from the buckets plus the raw tail, queue, chart points), the embed, the PNG chart and
the terminal table. p50 and p99 of the large database against the small one. ``--quick``: 10,000 rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import emit, machine, ratio, run_mode

NOW = 1_800_000_000.0
DAYS = 30
TAIL_S = 300.0  # not aggregated yet
SIZES = {"small": 1_000, "large": 1_000_000}
QUICK_LARGE = 10_000
BLOCK, BLOCKS, QUICK_BLOCKS, WARMUP = 10, 10, 3, 2
INSERT_CHUNK = 50_000
INTERACTIVE_MS = 1000.0  # well inside the 3 s an interaction may take before it must be acknowledged
KEYS = {"openai_api_key": "sk-bench", "gemini_api_key": "gemini-bench", "xai_api_key": "xai-bench"}
LATENCY_MS = {"text": 2_000.0, "image": 8_000.0, "video": 40_000.0}
ERRORS = [("transient", 0.025), ("rate_limited", 0.01), ("content_policy", 0.005)]


def _settings(db: Path) -> Any:
    from bot.settings import load_settings

    return load_settings(database_path=db, media_dir=db.parent / "media", health_http_port=0, **KEYS)


def _calls(rows: int, seed: int = 7) -> list[Any]:
    from bot.domain import CallRecord
    from bot.errors import ErrorKind
    from bot.routing.catalog import BUILTIN_SPECS

    rng = random.Random(seed)
    specs = [spec for spec in BUILTIN_SPECS if spec.retired_on is None]
    out = []
    for _ in range(rows):
        spec = rng.choice(specs)
        error, roll = None, rng.random()
        for kind, share in ERRORS:
            if roll < share:
                error = ErrorKind(kind)
                break
            roll -= share
        latency = rng.lognormvariate(0, 0.5) * LATENCY_MS[spec.modality.value]
        started = NOW - rng.random() * DAYS * 86_400
        out.append(CallRecord(spec.key, started, latency, error, rng.random() < 0.05))
    return sorted(out, key=lambda call: call.started_at)


async def _fill(db_path: Path, rows: int) -> dict[str, float]:
    from bot.health import metrics
    from storage import health as health_rows
    from storage.sqlite import SqliteDatabase

    calls = _calls(rows)
    old = [call for call in calls if call.started_at < NOW - TAIL_S]
    tail = calls[len(old) :]
    async with SqliteDatabase(db_path, synchronous="OFF") as db:
        started = time.perf_counter()
        for index in range(0, len(old), INSERT_CHUNK):
            async with db.transaction() as conn:
                await health_rows.insert_calls(conn, old[index : index + INSERT_CHUNK])
        inserted = time.perf_counter()
        folded = await metrics.aggregate(db)
        aggregated = time.perf_counter()
        async with db.transaction() as conn:
            await health_rows.insert_calls(conn, tail)
        if folded != len(old):
            raise SystemExit(f"aggregated {folded} calls, expected {len(old)}")
    return {"insert_s": inserted - started, "aggregate_s": aggregated - inserted, "tail": len(tail)}


async def _render_once(runtime: Any) -> float:
    from bot.health.chart import render_chart
    from bot.health.table import format_status
    from cogs.status import status_embed

    started = time.perf_counter()
    report = await runtime.health.report()
    status_embed(report)
    render_chart(report.chart)
    format_status(report)
    return (time.perf_counter() - started) * 1000


async def _measure(databases: dict[str, str], blocks: int) -> dict[str, Any]:
    from bot.clock import FakeClock
    from bot.runtime import Runtime

    runtimes = {
        name: await Runtime(_settings(Path(path)), clock=FakeClock(NOW)).open() for name, path in databases.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    calls_24h: dict[str, int] = {}
    try:
        for name, runtime in runtimes.items():
            report = await runtime.health.report()
            calls_24h[name] = sum(model.windows["24h"].calls for model in report.models)
            for _ in range(WARMUP):
                await _render_once(runtime)
        for block in range(blocks):
            order = list(runtimes) if block % 2 == 0 else list(reversed(runtimes))
            for name in order:
                for _ in range(BLOCK):
                    samples[name].append(await _render_once(runtimes[name]))
    finally:
        for runtime in runtimes.values():
            await runtime.close()
    return {
        name: {"p50_ms": statistics.median(values), "p99_ms": _percentile(values, 0.99), "calls_24h": calls_24h[name]}
        for name, values in samples.items()
    }


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench.status_render", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_LARGE:,} rows instead of 1,000,000")
    parser.add_argument("--mode", choices=("fill", "measure"), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--databases", help=argparse.SUPPRESS)
    parser.add_argument("--blocks", type=int, default=BLOCKS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(argv)
    if args.mode == "fill":
        emit(asyncio.run(_fill(Path(args.db), args.rows)))
        return
    if args.mode == "measure":
        emit(asyncio.run(_measure(json.loads(args.databases), args.blocks)))
        return
    sizes = dict(SIZES, large=QUICK_LARGE) if args.quick else SIZES
    blocks = QUICK_BLOCKS if args.quick else BLOCKS
    print(f"/status render: {sizes['large']:,} calls over {DAYS} days against {sizes['small']:,} ({machine()})")
    with tempfile.TemporaryDirectory() as tmp:
        databases = {name: str(Path(tmp) / f"{name}.sqlite") for name in sizes}
        for name, rows in sizes.items():
            filled = run_mode("bench.status_render", "fill", "--db", databases[name], "--rows", str(rows))
            size_mib = Path(databases[name]).stat().st_size / 2**20
            timings = f"insert {filled['insert_s']:.1f} s, aggregation {filled['aggregate_s']:.1f} s"
            print(f"  built {name}: {rows:,} calls ({filled['tail']} not aggregated yet), {size_mib:.1f} MiB; "
                  f"{timings}", flush=True)  # fmt: skip
        result = run_mode(
            "bench.status_render", "measure", "--databases", json.dumps(databases), "--blocks", str(blocks)
        )
    small, large = result["small"], result["large"]
    print(f"  report + embed + chart + table, {blocks * BLOCK} renders each (alternating blocks of {BLOCK})")
    for name in ("large", "small"):
        figures = result[name]
        print(f"    {name:<5}  p50 {figures['p50_ms']:7.1f} ms   p99 {figures['p99_ms']:7.1f} ms   "
              f"({figures['calls_24h']:,} calls in the last 24 h)")  # fmt: skip
    verdict = "interactive" if large["p99_ms"] < INTERACTIVE_MS else "NOT interactive"
    print(f"    ratio large/small: p50 {ratio(large['p50_ms'], small['p50_ms'])}, "
          f"p99 {ratio(large['p99_ms'], small['p99_ms'])}; p99 under {INTERACTIVE_MS:g} ms: {verdict}")  # fmt: skip


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
