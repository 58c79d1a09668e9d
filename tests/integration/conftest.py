from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from storage.db import Database
from tests.fakes.providers import FakeProviders
from tests.support.cli_main import Storybot, run_main, use_cli_env
from tests.support.database import open_database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "storybot.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that uses the database runs on both engines."""
    return str(request.param)


@pytest.fixture
def database_url(engine: str, request: pytest.FixtureRequest) -> str | None:
    """DATABASE_URL for the engine: an empty schema of the test server for PostgreSQL, None for SQLite."""
    return str(request.getfixturevalue("postgres_url")) if engine == "postgresql" else None


@pytest.fixture
async def db(database_url: str | None, db_path: Path) -> AsyncIterator[Database]:
    database = await open_database(database_url, db_path)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    """The fake OpenAI / Gemini / xAI server on 127.0.0.1."""
    async with FakeProviders() as server:
        yield server


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Storybot:
    """``cli(*args, env={...})``: ``storybot *args`` in this process, in ``tmp_path``, with ``cli_env``'s
    environment plus ``env`` for this one run."""
    use_cli_env(monkeypatch, tmp_path)

    def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        with monkeypatch.context() as scoped:
            for name, value in (env or {}).items():
                scoped.setenv(name, value)
            return run_main(capsys, *args)

    return run
