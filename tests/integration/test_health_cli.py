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
from bot.domain import CallRecord
from bot.errors import ErrorKind
from bot.health.model import Probe
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
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
    health, queue_line, counts = result.stdout.strip().split("\n\n")
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
