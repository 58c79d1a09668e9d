"""Every test runs isolated from the developer's machine: no provider keys, no Discord token, no
routing overrides, and no `.env` (each test starts in its own empty folder), so nothing can reach
a real API by accident. Every test can run beside any other (pytest-xdist): its own folder, port 0 or
a ``reserved_port``, nothing written in the repository."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.environment import isolate

# Throwaway servers for the whole run: PostgreSQL and the `postgres_url` fixture (an empty schema of it), and an
# S3-compatible one (moto) and the `s3_bucket` fixture (an empty bucket of it).
pytest_plugins = ["tests.support.postgres", "tests.support.s3"]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def reserved_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that no other test (or xdist worker) is handed while this test runs.

    Servers the tests start bind port 0 and report their port. The bot's /health server cannot:
    ``HEALTH_HTTP_PORT=0`` means "off". So this binds a socket to port 0 with SO_REUSEADDR and holds it,
    not listening, until the test ends. Meanwhile the kernel hands the port to no other ``bind()`` to port 0,
    and a connection to it is refused; a server that also sets SO_REUSEADDR (asyncio's, and so aiohttp's,
    default on POSIX) can still bind and listen on it, since the holder does not listen. The port serves as
    "nothing listens here" and as the port to give the bot, with no window in which another test can take it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: without it (-p no:xdist) there is nothing to answer
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (as ``make test`` runs) starts one worker more than there are CPUs: many tests spend much of
    their time waiting on a subprocess, a socket or a timer. PYTEST_XDIST_AUTO_NUM_WORKERS still decides."""
    if chosen := os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(chosen)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cpus + 1
