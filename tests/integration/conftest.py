from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import FakeClock
from storage.db import Database
from tests.fakes.providers import FakeProviders


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "storybot.db"


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = await Database(db_path).open()
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
