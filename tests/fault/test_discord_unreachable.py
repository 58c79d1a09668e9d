"""Issue #11, start-up without Discord: `storybot run` against a Discord that cannot be reached waits it out
(one line per attempt, with backoff, no traceback) until it is stopped; a token of spaces is no token."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from pathlib import Path
from unittest import mock

import aiohttp
import discord
import pytest

from bot.app import plain_reconnect_lines, unreachable_reason
from tests.support.cli import STORYBOT, cli_env, storybot

WAIT_S = 60.0
ATTEMPT = re.compile(r"cannot reach Discord \(connection refused; attempt (\d+)\); trying again in (\d+) s$")


async def test_run_waits_out_an_unreachable_discord_until_stopped(tmp_path: Path, reserved_port: int) -> None:
    closed = f"http://127.0.0.1:{reserved_port}"  # nothing listens there: every connection is refused
    env = cli_env(tmp_path, DISCORD_TOKEN="a.valid-looking.token", DISCORD_API_BASE=closed, HEALTH_HTTP_PORT="0")
    process = await asyncio.create_subprocess_exec(
        *STORYBOT, "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    seen: list[str] = []
    try:
        assert process.stderr is not None

        async def three_attempts() -> None:
            while sum(1 for line in seen if ATTEMPT.search(line)) < 3:
                line = (await process.stderr.readline()).decode(errors="replace")  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"storybot run exited while Discord was unreachable:\n{''.join(seen)}")
                seen.append(line)

        await asyncio.wait_for(three_attempts(), WAIT_S)
        process.send_signal(signal.SIGTERM)
        stdout, rest = await asyncio.wait_for(process.communicate(), WAIT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = ("".join(seen) + rest.decode(errors="replace")).splitlines()
    assert process.returncode == 0, log
    assert stdout == b""
    attempts = [ATTEMPT.search(line) for line in log]
    numbered = [(int(m[1]), int(m[2])) for m in attempts if m]
    assert [n for n, _ in numbered] == list(range(1, len(numbered) + 1)) and len(numbered) >= 3, log
    assert [delay for _, delay in numbered][:3] == [1, 2, 4]  # backoff
    others = [line for line, m in zip(log, attempts, strict=True) if m is None]
    assert len(others) == 1 and others[0].endswith("storybot stopped (SIGTERM); 0 jobs handed back to the queue"), log
    assert not any("Traceback" in line or "Unclosed" in line for line in log), log


def test_a_token_of_only_whitespace_runs_the_offline_demo(tmp_path: Path) -> None:
    result = storybot(tmp_path, "run", env={"DISCORD_TOKEN": "  \t "}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("No DISCORD_TOKEN set: rendering a demo story offline")
    assert "is ready. Open " in result.stdout


def _connector_error(cls: type[aiohttp.ClientConnectorError], error: OSError) -> aiohttp.ClientConnectorError:
    return cls(mock.Mock(host="discord.invalid", port=443, ssl=True), error)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (_connector_error(aiohttp.ClientConnectorError, ConnectionRefusedError(111, "Connect call failed")),
         "connection refused"),
        (_connector_error(aiohttp.ClientConnectorDNSError, OSError(-2, "Name or service not known")),
         "its address could not be looked up"),
        (_connector_error(aiohttp.ClientConnectorError, OSError(101, "Network is unreachable")),
         "network is unreachable"),
        (TimeoutError(), "no answer in time"),
        (aiohttp.ServerDisconnectedError(), "the connection failed"),
        (discord.DiscordServerError(mock.Mock(status=503, reason="Service Unavailable"), "down"),
         "Discord answered HTTP 503"),
    ],
)  # fmt: skip
def test_each_way_of_not_reaching_discord_is_said_plainly(error: BaseException, reason: str) -> None:
    assert unreachable_reason(error) == reason


def test_a_lost_gateway_connection_is_one_line_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """discord.py's own reconnect loop logs each attempt with a traceback; `storybot run` makes it one line."""
    client_log = logging.getLogger("discord.client")
    caplog.set_level(logging.WARNING, logger="discord.client")
    with plain_reconnect_lines():
        try:
            raise _connector_error(aiohttp.ClientConnectorError, ConnectionRefusedError(111, "Connect call failed"))
        except aiohttp.ClientError:
            client_log.exception("Attempting a reconnect in %.2fs", 4.2)  # as discord.Client.connect does
    [record] = caplog.records
    assert (record.levelname, record.exc_info) == ("WARNING", None)
    assert record.getMessage() == "lost the connection to Discord (connection refused); trying again in 4 s"
    assert "Traceback" not in caplog.text
