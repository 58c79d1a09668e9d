"""Settings (as environment variables) that point every provider at the fake OpenAI / Gemini / xAI server
(tests/fakes/providers.py), with the test's own paths and short timeouts and retry delays."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.providers import FakeProviders


def provider_env(fake: FakeProviders, tmp_path: Path) -> dict[str, str]:
    """For the integration tests: 5 s provider timeout, fast text and image retries."""
    return {
        "OPENAI_API_KEY": "sk-test", "XAI_API_KEY": "xai-test", "GEMINI_API_KEY": "gemini-test",
        "OPENAI_BASE_URL": fake.openai_base_url, "XAI_BASE_URL": fake.xai_base_url,
        "GOOGLE_GEMINI_BASE_URL": fake.gemini_base_url,
        "DATABASE_PATH": str(tmp_path / "storybot.db"), "MEDIA_DIR": str(tmp_path / "media"),
        "VIDEO_POLL_S": "0.02", "PROVIDER_TIMEOUT_S": "5",
        "ROUTING__IMAGE__RETRY_DELAY_MS": "100", "ROUTING__TEXT__RETRY_DELAY_MS": "100",
    }  # fmt: skip


def fault_provider_env(fake: FakeProviders, tmp_path: Path, **keys: str) -> dict[str, str]:
    """For the fault campaign: its own fake keys (``keys`` overrides them), 3 s clips, fast retries everywhere."""
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
