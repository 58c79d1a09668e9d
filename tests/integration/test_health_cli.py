"""`storybot status` prints the health the running bot stored: one row per model, then the queue; `storybot
models` says which models that health makes unusable, as the bot's own registry does."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from pathlib import Path

import pytest

from bot.cli import format_models
from bot.domain import CallRecord, ProcessBeat
from bot.errors import ErrorKind
from bot.health.model import Probe
from bot.health.table import NO_WORKER
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from storage import processes as process_rows
from storage.sqlite import SqliteDatabase
from tests.support.cli_main import run_main


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a `format_table` table, cut where the rule under the header starts each column."""
    header, rule, *body = text.splitlines()
    bounds = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]
    bounds[-1] = (bounds[-1][0], None)  # type: ignore[assignment]
    names = [header[a:b].strip() for a, b in bounds]
    return [{name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)} for line in body]


def bot_settings(db_path: Path) -> Settings:
    return load_settings(
        database_path=db_path, media_dir=db_path.parent / "media", openai_api_key="sk-test", health_http_port=0
    )


async def a_bot_ran(db_path: Path) -> None:
    """What a running bot leaves behind: four local-sketch calls (one failed) and a retired OpenAI model."""
    async with Runtime(bot_settings(db_path)) as runtime:
        now = time.time()
        for index, error in enumerate([None, None, ErrorKind.TRANSIENT, None]):
            runtime.health.recorder(CallRecord("local-sketch", now - 60 + index, 40.0 + index, error, False))
        runtime.health.book.on_probe(Probe("gpt-image-1.5", ok=False, checked_at=now, retired=True, detail="404"))


def stored_health(db_path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return conn.execute("SELECT * FROM model_health ORDER BY model_key").fetchall()


def test_status_prints_each_models_health_and_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = tmp_path / "storybot.db"
    asyncio.run(a_bot_ran(db_path))
    monkeypatch.setenv("DATABASE_PATH", str(db_path))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    stored_before = stored_health(db_path)
    result = run_main(capsys, "status")
    assert result.returncode == 0, result.stderr
    assert stored_health(db_path) == stored_before  # a read writes nothing
    health, queue_line, processes, counts = result.stdout.strip().split("\n\n")
    rows = {row["model"]: row for row in parse_table(health)}
    assert rows["local-sketch"] == {
        "model": "local-sketch", "state": "up", "success": "75 %", "p50/p95": "40 ms / 43 ms", "fallback": "0 %",
        "cooldown": "–", "last error": "local-sketch had a temporary outage",
    }  # fmt: skip
    assert rows["gpt-image-1.5"]["state"] == "retired, use gpt-image-1-mini"
    assert rows["gpt-image-1-mini"]["state"] == "up" and rows["grok-imagine-image"]["state"] == "unconfigured"
    assert "dall-e-3" not in rows  # retired in the catalogue long ago and not routed to: not listed
    assert queue_line.startswith("Queue: 0 waiting")
    assert counts.splitlines()[0].split() == ["status", "jobs"]
    assert processes == "Processes: none is running on this database"


async def processes_beat(db_path: Path, *beats: ProcessBeat) -> None:
    async with SqliteDatabase(db_path) as db:
        for beat in beats:
            await process_rows.beat(db, beat, forget_before=0.0)


@pytest.mark.parametrize("with_workers", [True, False], ids=["gateway and workers", "gateway alone"])
def test_status_lists_the_live_processes_and_says_when_none_runs_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], with_workers: bool
) -> None:
    db_path = tmp_path / "storybot.db"
    asyncio.run(a_bot_ran(db_path))
    now = time.time()
    gateway = ProcessBeat("box-a:11:aaaaaa", "gateway", "box-a", 11, "0-1 of 2", 0, now - 600, now - 2)
    workers = [
        ProcessBeat("box-b:22:bbbbbb", "worker", "box-b", 22, None, 4, now - 500, now - 1),
        ProcessBeat("box-c:33:cccccc", "worker", "box-c", 33, None, 2, now - 400, now - 3),
    ]
    gone = ProcessBeat("box-d:44:dddddd", "worker", "box-d", 44, None, 4, now - 900, now - 120)  # stopped beating
    asyncio.run(processes_beat(db_path, gateway, gone, *(workers if with_workers else [])))
    monkeypatch.setenv("DATABASE_PATH", str(db_path))

    result = run_main(capsys, "status")

    assert result.returncode == 0, result.stderr
    processes = result.stdout.strip().split("\n\n")[-2]  # between the queue line and the job counts
    headline, table = processes.split("\n", 1)
    if with_workers:
        assert headline == "Processes: 3 running"
        rows = parse_table(table)
        assert [(row["role"], row["host"], row["pid"], row["worker slots"], row["shards"]) for row in rows] == [
            ("gateway", "box-a", "11", "–", "0-1 of 2"),
            ("worker", "box-b", "22", "4", "–"),
            ("worker", "box-c", "33", "2", "–"),
        ]
        ages = [float(row["last beat"].removesuffix(" s ago")) for row in rows]
        lag = time.time() - now  # the command ran a moment after the beats were written
        assert all(beat - 0.5 <= age <= beat + lag + 0.5 for age, beat in zip(ages, (2, 1, 3), strict=True)), ages
        assert NO_WORKER not in result.stdout
    else:
        assert headline == "Processes: 1 running"
        *table_lines, last = table.splitlines()
        assert [row["role"] for row in parse_table("\n".join(table_lines))] == ["gateway"]
        assert last == "No worker is running, so stories will not start."


async def a_key_was_refused(db_path: Path, model_key: str) -> None:
    async with Runtime(bot_settings(db_path)) as runtime:
        probe = Probe(model_key, ok=False, checked_at=time.time(), error_kind=ErrorKind.AUTH, detail="401")
        runtime.health.book.on_probe(probe)


async def models_as_a_runtime_sees_them(db_path: Path) -> str:
    async with Runtime(bot_settings(db_path)) as runtime:
        return format_models(runtime.registry)


def test_models_says_what_the_stored_health_makes_unusable_as_the_runtime_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db_path = tmp_path / "storybot.db"
    asyncio.run(a_bot_ran(db_path))
    asyncio.run(a_key_was_refused(db_path, "gpt-5-mini"))
    monkeypatch.setenv("DATABASE_PATH", str(db_path))
    monkeypatch.setenv("MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    stored_before = stored_health(db_path)
    result = run_main(capsys, "models")  # builds no Runtime: the registry and the stored health only
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert stored_health(db_path) == stored_before  # a read writes nothing
    table, _aliases = result.stdout.split("\n\n")
    rows = {row["key"]: row for row in parse_table(table)}
    assert rows["gpt-image-1.5"]["status"] == "unavailable: retired by its provider; use gpt-image-1-mini instead"
    assert rows["gpt-5-mini"]["status"] == "unavailable: the provider refused its API key"
    assert rows["gpt-image-1-mini"]["status"] == "available" and rows["local-sketch"]["status"] == "available"
    assert result.stdout == asyncio.run(models_as_a_runtime_sees_them(db_path)) + "\n"
