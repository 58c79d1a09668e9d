"""The fault campaign's fixtures: the fake providers and log capture. Plain helpers are in tests/support/."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.providers import FakeProviders

# Every level of our own code, and the SDKs and HTTP clients below it (where a key could leak).
WATCHED_LOGGERS = ("bot", "storage", "cogs", "openai", "httpx", "httpcore", "google_genai", "discord")


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
