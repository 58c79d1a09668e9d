"""What a test must not inherit from the developer's machine: provider keys, a Discord token, endpoint and
routing overrides, the paths of a real database. Without them nothing can reach a real API by accident."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LEAKY_PREFIXES = ("ROUTING__", "AWS_")  # AWS_*: obstore, boto3 and moto read them
LEAKY_NAMES = frozenset({
    "DISCORD_TOKEN", "DEV_GUILD_ID", "DISCORD_API_BASE", "DISCORD_GATEWAY_URL",
    "OPENAI_API_KEY", "XAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "OPENAI_BASE_URL", "XAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "GOOGLE_GENAI_API_VERSION",
    "DATABASE_PATH", "DATABASE_URL", "SHARD_COUNT", "MEDIA_DIR", "MODELS_FILE",
    "MEDIA_URL", "MEDIA_ENDPOINT_URL", "MEDIA_REGION", "MEDIA_ACCESS_KEY_ID", "MEDIA_SECRET_ACCESS_KEY",
})  # fmt: skip


def isolate(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Drop the leaky variables and work in ``folder`` (so no `.env` is read), until ``monkeypatch`` undoes it.
    The autouse fixture does this per test; a module-scoped fixture calls it with its own MonkeyPatch."""
    for name in list(os.environ):
        if name in LEAKY_NAMES or name.startswith(LEAKY_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(folder)
