"""Shared pieces of the fault campaign: the fake providers, a provider environment, log capture."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes.providers import FakeProviders

# Every level of our own code, and the SDKs and HTTP clients below it (where a key could leak).
WATCHED_LOGGERS = ("bot", "storage", "cogs", "openai", "httpx", "httpcore", "google_genai", "discord")


def fault_seed(default: int) -> int:
    """FAULT_SEED from the environment (to replay a run), else the test's fixed seed."""
    return int(os.environ.get("FAULT_SEED", default))


@pytest.fixture
async def providers() -> AsyncIterator[FakeProviders]:
    """The fake OpenAI / Gemini / xAI server on 127.0.0.1."""
    async with FakeProviders() as server:
        yield server


def provider_env(fake: FakeProviders, tmp_path: Path, **keys: str) -> dict[str, str]:
    """Settings that point every provider at the fake, with short timeouts and retry delays."""
    env = {
        "OPENAI_API_KEY": "sk-fault", "XAI_API_KEY": "xai-fault", "GEMINI_API_KEY": "gemini-fault",
        "OPENAI_BASE_URL": fake.openai_base_url, "XAI_BASE_URL": fake.xai_base_url,
        "GOOGLE_GEMINI_BASE_URL": fake.gemini_base_url,
        "DATABASE_PATH": str(tmp_path / "storybot.db"), "MEDIA_DIR": str(tmp_path / "media"),
        "VIDEO_POLL_S": "0.02", "VIDEO_DURATION_S": "3",
        "ROUTING__IMAGE__RETRY_DELAY_MS": "100", "ROUTING__TEXT__RETRY_DELAY_MS": "100",
        "ROUTING__VIDEO__RETRY_DELAY_MS": "100",
    }  # fmt: skip
    env.update(keys)
    return env


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
