"""Helpers shared by the benchmarks: run a mode in a fresh process and read its wall time and peak RSS."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def run_mode(module: str, mode: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module --mode mode`` in a fresh process; return its JSON plus its peak RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", module, "--mode", mode, *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{module} --mode {mode} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.setdefault("process_wall_s", wall)
    return result


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB.

    Linux's VmHWM first: ru_maxrss survives exec, so a child started by a process that was once
    larger (``python -m bench`` after a big bench) would report its parent's peak instead of its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result))


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline > 0 else "n/a"
