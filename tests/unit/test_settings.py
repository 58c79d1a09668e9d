from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.domain import Modality
from bot.errors import ConfigError
from bot.routing.registry import Registry
from bot.settings import DEFAULT_ROUTING, MASK, Settings, load_settings, redact

SECRET = "sk-very-secret-123"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env and no inherited setting variables."""
    monkeypatch.chdir(tmp_path)
    setting_names = {name.upper() for name in Settings.model_fields} | {"GEMINI_API_KEY", "GOOGLE_API_KEY"}
    for name in list(os.environ):
        if name.upper() in setting_names or name.upper().startswith("ROUTING__"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.discord_token is None
    assert settings.openai_api_key is None and settings.xai_api_key is None and settings.gemini_api_key is None
    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert settings.database_path == Path("./data/storybot.db")
    assert settings.models_file is None
    assert settings.routing == DEFAULT_ROUTING
    # Real providers first; the router itself ends every chain with the local model.
    assert settings.routing[Modality.IMAGE].chain == ["gpt-image-1.5", "gemini-3.1-flash-image", "grok-imagine-image"]
    assert settings.routing[Modality.IMAGE].max_retries == 3
    assert settings.routing[Modality.IMAGE].retry_delay_ms == 1000
    assert (settings.worker_concurrency, settings.video_duration_s, settings.log_level) == (4, 4, "WARNING")


def test_keys_from_the_environment_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET + "-openai")
    monkeypatch.setenv("XAI_API_KEY", SECRET + "-xai")
    monkeypatch.setenv("GEMINI_API_KEY", SECRET + "-gemini")
    monkeypatch.setenv("DISCORD_TOKEN", SECRET + "-discord")
    settings = load_settings()
    for field in ("openai_api_key", "xai_api_key", "gemini_api_key", "discord_token"):
        value = getattr(settings, field)
        assert isinstance(value, SecretStr)
        assert value.get_secret_value().startswith(SECRET)
    for rendering in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert SECRET not in rendering


def test_key_for_maps_registry_env_names() -> None:
    settings = load_settings(openai_api_key="o", xai_api_key="x", gemini_api_key="g")
    assert settings.key_for("OPENAI_API_KEY").get_secret_value() == "o"
    assert settings.key_for("XAI_API_KEY").get_secret_value() == "x"
    assert settings.key_for("GEMINI_API_KEY").get_secret_value() == "g"
    assert settings.key_for("GOOGLE_API_KEY").get_secret_value() == "g"
    assert settings.key_for("SOMETHING_ELSE") is None


def test_google_api_key_is_a_fallback_for_gemini(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google")
    assert load_settings().gemini_api_key.get_secret_value() == "from-google"
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini")
    assert load_settings().gemini_api_key.get_secret_value() == "from-gemini"  # GEMINI_API_KEY wins


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("XAI_API_KEY=from-dotenv\nWORKER_CONCURRENCY=7\n", encoding="utf-8")
    settings = load_settings()
    assert settings.xai_api_key.get_secret_value() == "from-dotenv"
    assert settings.worker_concurrency == 7


def test_environment_beats_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\n", encoding="utf-8")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_routing_override_from_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING__IMAGE__PRIMARY_MODEL", "gpt-image-1.5")
    monkeypatch.setenv("ROUTING__IMAGE__FALLBACKS", '["grok-imagine-image", "local-sketch"]')
    monkeypatch.setenv("ROUTING__IMAGE__MAX_RETRIES", "5")
    routing = load_settings().routing
    image = routing[Modality.IMAGE]
    assert image.primary_model == "gpt-image-1.5"
    assert image.fallbacks == ["grok-imagine-image", "local-sketch"]
    assert image.chain == ["gpt-image-1.5", "grok-imagine-image", "local-sketch"]
    assert image.max_retries == 5
    assert image.retry_delay_ms == 1000  # untouched fields keep their defaults
    assert routing[Modality.TEXT] == DEFAULT_ROUTING[Modality.TEXT]
    assert routing[Modality.VIDEO] == DEFAULT_ROUTING[Modality.VIDEO]


def test_partial_routing_override_keeps_the_default_primary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING__VIDEO__RETRY_DELAY_MS", "250")
    video = load_settings().routing[Modality.VIDEO]
    assert (video.primary_model, video.retry_delay_ms) == ("grok-imagine-video", 250)


def test_overriding_only_the_primary_drops_it_from_the_default_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING__IMAGE__PRIMARY_MODEL", "gemini-3.1-flash-image")
    image = load_settings().routing[Modality.IMAGE]
    assert image.chain == ["gemini-3.1-flash-image", "grok-imagine-image"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ROUTING__IMAGE__MAX_RETRIES", "0"),
        ("ROUTING__IMAGE__MAX_RETRIES", "11"),
        ("ROUTING__TEXT__RETRY_DELAY_MS", "99"),
        ("ROUTING__TEXT__RETRY_DELAY_MS", "10001"),
        ("WORKER_CONCURRENCY", "abc"),
        ("WORKER_CONCURRENCY", "0"),
        ("VIDEO_DURATION_S", "6"),
        ("DEV_GUILD_ID", "0"),
        ("LOG_LEVEL", "loud"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid setting {variable}: ")
    assert "\n" not in message


def test_log_level_error_says_what_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="^invalid setting LOG_LEVEL: must be DEBUG, INFO, WARNING or ERROR$"):
        load_settings()


def test_primary_model_repeated_in_fallbacks_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING__IMAGE__PRIMARY_MODEL", "gpt-image-1.5")
    monkeypatch.setenv("ROUTING__IMAGE__FALLBACKS", '["local-sketch", "gpt-image-1.5"]')
    with pytest.raises(
        ConfigError, match=r"^invalid setting ROUTING__IMAGE: .*repeats the primary model 'gpt-image-1\.5'"
    ):
        load_settings()


def test_default_primary_repeated_in_fallbacks_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING__IMAGE__FALLBACKS", '["gpt-image-1.5"]')
    with pytest.raises(ConfigError, match="ROUTING__IMAGE"):
        load_settings()


def test_keyword_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match="^invalid setting WORKER_CONCURRENCY: "):
        load_settings(worker_concurrency=65)
    assert load_settings(worker_concurrency=64).worker_concurrency == 64


def test_config_error_never_echoes_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("PROVIDER_TIMEOUT_S", SECRET)  # a secret pasted into the wrong variable
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith("invalid setting PROVIDER_TIMEOUT_S: ")
    assert SECRET not in str(caught.value)


def test_fallbacks_that_are_not_json_raise_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING__IMAGE__FALLBACKS", "grok-imagine-image,local-sketch")
    with pytest.raises(ConfigError, match="ROUTING"):
        load_settings()


REPOSITORY = Path(__file__).resolve().parents[2]
DOCUMENTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)


def test_every_setting_is_documented_in_env_example() -> None:
    example = (REPOSITORY / ".env.example").read_text(encoding="utf-8")
    missing = [
        name.upper() for name in Settings.model_fields if name != "routing" and f"{name.upper()}=" not in example
    ]
    assert missing == [], f"add these to .env.example: {missing}"


def test_every_value_in_env_example_is_the_real_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting any variable to the value .env.example shows changes nothing: the file shows the defaults."""
    documented = DOCUMENTED.findall((REPOSITORY / ".env.example").read_text(encoding="utf-8"))
    known = {name.upper() for name in Settings.model_fields} | {"GOOGLE_API_KEY"}
    assert len(documented) > 40
    defaults = load_settings().model_dump()
    for name, value in documented:
        assert name in known or re.fullmatch(r"ROUTING__(TEXT|IMAGE|VIDEO)__[A-Z_]+", name), name
        with monkeypatch.context() as env:
            env.setenv(name, value)
            shown = load_settings().model_dump()
        changed = {field: (shown[field], defaults[field]) for field in defaults if shown[field] != defaults[field]}
        assert changed == {}, f".env.example shows {name}={value}, which is not the default: {changed}"
    shown_routes = {name for name, _ in documented if name.startswith("ROUTING__")}
    assert {f"ROUTING__{m.name}__{f}" for m in Modality for f in ("PRIMARY_MODEL", "FALLBACKS")} <= shown_routes


def test_a_token_of_only_whitespace_is_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", " \t ")
    assert load_settings().discord_token is None
    monkeypatch.setenv("DISCORD_TOKEN", " a.real-looking.token ")
    assert load_settings().discord_token is not None


def test_the_example_models_file_loads_through_the_real_loader() -> None:
    example = REPOSITORY / "models.example.toml"
    settings = load_settings(models_file=example, openai_api_key="sk-example")
    registry = Registry.load(settings)
    registry.validate_routing(settings.routing)
    added = registry.resolve("gpt-image-2")
    assert (added.provider, added.modality, added.max_reference_images) == ("openai", Modality.IMAGE, 16)
    assert registry.resolve("house-style") == added
    assert registry.availability("gpt-image-2").usable
    changed = registry.resolve("gemini-3-pro-image")
    assert (str(changed.retired_on), changed.successor) == ("2099-01-01", "gemini-3.1-flash-image")
    env_example = (REPOSITORY / ".env.example").read_text(encoding="utf-8")
    assert "models.example.toml" in env_example and "models.example.toml" in (REPOSITORY / "README.md").read_text()


def test_media_url_is_off_by_default_and_needs_both_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.media_url is None and settings.media_endpoint_url is None and settings.media_region == "us-east-1"
    monkeypatch.setenv("MEDIA_URL", "s3://storybot-media/prod/")
    with pytest.raises(ConfigError, match="^invalid setting MEDIA_ACCESS_KEY_ID: must be set when MEDIA_URL is"):
        load_settings()
    monkeypatch.setenv("MEDIA_ACCESS_KEY_ID", "AKIAEXAMPLEKEY123456")
    with pytest.raises(ConfigError, match="^invalid setting MEDIA_SECRET_ACCESS_KEY: must be set when MEDIA_URL is"):
        load_settings()
    monkeypatch.setenv("MEDIA_SECRET_ACCESS_KEY", f" {SECRET}-media\n")
    monkeypatch.setenv("MEDIA_ENDPOINT_URL", "http://127.0.0.1:9000/")
    settings = load_settings()
    assert (settings.media_url, settings.media_endpoint_url) == ("s3://storybot-media/prod", "http://127.0.0.1:9000")
    assert settings.media_secret_access_key is not None
    assert settings.media_secret_access_key.get_secret_value() == f"{SECRET}-media"  # trimmed, like every key
    for rendering in (repr(settings), settings.model_dump_json()):
        assert SECRET not in rendering and "AKIAEXAMPLEKEY123456" not in rendering
    assert redact(f"signed by AKIAEXAMPLEKEY123456 with {SECRET}-media") == f"signed by {MASK} with {MASK}"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MEDIA_URL", "https://storybot-media.s3.amazonaws.com", "must look like s3://bucket"),
        ("MEDIA_URL", f"s3://AKIAEXAMPLE:{SECRET}@storybot-media/prod", "the keys go in MEDIA_ACCESS_KEY_ID"),
        ("MEDIA_URL", f"s3://storybot-media/prod?secret={SECRET}", "the keys go in MEDIA_ACCESS_KEY_ID"),
        ("MEDIA_URL", "s3://Storybot_Media", "names a bucket S3 does not allow"),
        ("MEDIA_URL", "s3://storybot-media/../other", "may not contain . or .."),
        ("MEDIA_ENDPOINT_URL", "minio.internal:9000", "must be an http:// or https:// URL"),
        ("MEDIA_ENDPOINT_URL", f"https://key:{SECRET}@minio.internal", "the keys go in MEDIA_ACCESS_KEY_ID"),
    ],
)
def test_media_urls_are_checked_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"invalid setting {variable}: ") and message in str(caught.value)
    assert SECRET not in str(caught.value) and "\n" not in str(caught.value)
