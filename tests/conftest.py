"""Every test runs isolated from the developer's machine: no provider keys, no Discord token, no
routing overrides, and no `.env` (each test starts in its own empty folder), so nothing can reach
a real API by accident."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_LEAKY_PREFIXES = ("ROUTING__",)
_LEAKY_NAMES = {
    "DISCORD_TOKEN", "DEV_GUILD_ID", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL",
    "OPENAI_API_KEY", "XAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "OPENAI_BASE_URL", "XAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION",
    "DATABASE_PATH", "MEDIA_DIR", "MODELS_FILE",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name in _LEAKY_NAMES or name.startswith(_LEAKY_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
