"""The fault campaign's fixtures: both engines, the fake providers and log capture. Plain helpers are in
tests/support/.

Every fault test runs once on SQLite and once on PostgreSQL: for PostgreSQL, DATABASE_URL names an empty
schema of the test server, so the settings a test builds, and the storybot processes it starts (they inherit
the environment), use it. A test about SQLite's own file (damaged, locked, deleted, a full disk under it) is
marked ``sqlite_only``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.providers import FakeProviders

# Every level of our own code, and the SDKs and HTTP clients below it (where a key could leak).
WATCHED_LOGGERS = ("bot", "storage", "cogs", "openai", "httpx", "httpcore", "google_genai", "discord")


ENGINES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
        metafunc.parametrize("engine", ENGINES[:1] if only_sqlite else ENGINES, indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _on_engine(engine: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "postgresql":
        monkeypatch.setenv("DATABASE_URL", str(request.getfixturevalue("postgres_url")))


@pytest.fixture
async def providers() -> AsyncIterator[FakeProviders]:
    """The fake OpenAI / Gemini / xAI server on 127.0.0.1."""
    async with FakeProviders() as server:
        yield server


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG for our code and every library below it."""
    previous = {name: logging.getLogger(name).level for name in WATCHED_LOGGERS}
    for name in WATCHED_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)
