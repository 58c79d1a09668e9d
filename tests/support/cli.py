"""The real ``storybot`` command in a subprocess: its command line, an environment of the test's own paths,
and the checks on what it prints."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path

STORYBOT = [sys.executable, "-m", "bot.cli"]
PROMPT = "a fox who learns to fly"


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without provider keys, token, routing or worker settings; the test's paths,
    and /health off unless ``extra`` gives it a port (two bots in parallel tests would both want 8080)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "DISCORD_TOKEN"}
    env = {k: v for k, v in env.items() if not k.startswith(("ROUTING__", "WORKER_"))}
    env.update({"DATABASE_PATH": str(tmp_path / "storybot.db"), "MEDIA_DIR": str(tmp_path / "media")})
    env["HEALTH_HTTP_PORT"] = "0"
    env.update(extra)
    return env


def storybot(
    tmp_path: Path, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STORYBOT, *map(str, args)],
        env=cli_env(tmp_path, **(env or {})), cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """Exit 2 with exactly one 'storybot: ...' line on stderr that contains every phrase."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("storybot: "), lines[0]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert result.returncode == 2, (result.returncode, lines[0])
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def read_until(stream: asyncio.StreamReader, needle: str, seen: list[str], timeout_s: float) -> None:
    """Read lines (kept in ``seen``) until one contains ``needle``; fail if the process ends first."""

    async def scan() -> None:
        while True:
            line = (await stream.readline()).decode(errors="replace")
            if not line:
                raise AssertionError(f"the bot exited before printing {needle!r}:\n{''.join(seen)}")
            seen.append(line)
            if needle in line:
                return

    await asyncio.wait_for(scan(), timeout_s)
