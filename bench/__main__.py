"""Run the benchmarks: ``python -m bench`` runs every one in turn, ``python -m bench NAME...`` only those."""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = ("offline_story", "queue_overhead", "router", "download_memory")


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in BENCHES]
    if unknown:
        print(f"unknown bench {', '.join(unknown)}; choose from: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    for index, name in enumerate(argv or BENCHES):
        if index:
            print()
        started = time.perf_counter()
        importlib.import_module(f"bench.{name}").main()
        print(f"  [{name} took {time.perf_counter() - started:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
