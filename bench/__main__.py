"""Run the benchmarks: ``python -m bench`` runs every one in turn, ``python -m bench NAME...`` only those.

Options (``--quick``, ``--stories 20``...) go to every named bench that takes options; the others
run as they always do. ``python -m bench NAME --help`` lists a bench's options.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import time

BENCHES = (
    "offline_story",
    "queue_overhead",
    "router",
    "download_memory",
    "concurrent_downloads",
    "pipeline_throughput",
    "scale",
    "health_cycle",
    "discord_ack",
    "status_render",
    "media_loop",
    "endless_clip",
    "drip_deadline",
    "media_roundtrip",
    "scale_out",
)


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Bench names (up to the first option) and the options after them."""
    first_option = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    return argv[:first_option], argv[first_option:]


def main(argv: list[str]) -> int:
    names, options = split_argv(argv)
    unknown = [name for name in names if name not in BENCHES]
    if unknown:
        print(f"unknown bench {', '.join(unknown)}; choose from: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for index, name in enumerate(names or BENCHES):
        if index:
            print()
        started = time.perf_counter()
        bench_main = importlib.import_module(f"bench.{name}").main
        if inspect.signature(bench_main).parameters:
            bench_main(options)
        else:
            bench_main()
        print(f"  [{name} took {time.perf_counter() - started:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
