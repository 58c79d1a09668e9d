"""All configuration, from the environment (and ``.env``), validated once at start-up.

A bad value becomes a ConfigError whose one-line message names the variable and what is allowed;
the CLI prints it and exits 2.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from bot.domain import Modality, RoutingConfig
from bot.errors import ConfigError

# S3's rule for bucket names (AWS, R2 and MinIO agree): what may follow s3:// in MEDIA_URL.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

# Real providers first, in this order; a model without its key is skipped, and the router always
# ends a chain with the local model, so a fresh checkout with no keys renders offline.
DEFAULT_ROUTING: dict[Modality, RoutingConfig] = {
    Modality.TEXT: RoutingConfig(primary_model="gpt-5-mini", fallbacks=["gemini-3-flash", "grok-4-fast"]),
    Modality.IMAGE: RoutingConfig(
        primary_model="gpt-image-1.5", fallbacks=["gemini-3.1-flash-image", "grok-imagine-image"]
    ),
    Modality.VIDEO: RoutingConfig(primary_model="grok-imagine-video"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        validate_default=True,
        env_ignore_empty=True,
    )

    # Discord
    discord_token: SecretStr | None = None
    dev_guild_id: int | None = Field(default=None, gt=0)
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    shard_count: int | None = Field(default=None, ge=1)  # gateway shards; None: as many as Discord recommends

    # Provider keys and base URLs
    openai_api_key: SecretStr | None = None
    xai_api_key: SecretStr | None = None
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    openai_base_url: str = "https://api.openai.com/v1"
    xai_base_url: str = "https://api.x.ai/v1"
    google_gemini_base_url: str = "https://generativelanguage.googleapis.com"
    provider_timeout_s: float = Field(default=120.0, gt=0, le=900)  # a whole call, first byte to last

    # Storage
    database_path: Path = Path("./data/storybot.db")
    # postgresql://user:password@host/dbname selects PostgreSQL instead of SQLite at database_path
    database_url: SecretStr | None = None
    media_dir: Path = Path("./data/media")
    # s3://bucket/prefix: media in S3-compatible object storage, readable by every worker on every host; MEDIA_DIR
    # is then this host's working copy and cache. Unset: MEDIA_DIR alone, as before.
    media_url: str | None = None
    media_endpoint_url: str | None = None  # R2, MinIO...: their S3 endpoint; unset: AWS S3 in media_region
    media_region: str = "us-east-1"
    media_access_key_id: SecretStr | None = None
    media_secret_access_key: SecretStr | None = None
    models_file: Path | None = None  # TOML that adds or overrides models

    # Routing: one config per modality, e.g. ROUTING__IMAGE__PRIMARY_MODEL=gpt-image-1.5
    routing: dict[Modality, RoutingConfig] = Field(default_factory=lambda: dict(DEFAULT_ROUTING))

    # Work limits
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    provider_concurrency: int = Field(default=2, ge=1, le=64)
    user_concurrency: int = Field(default=2, ge=1, le=64)
    job_max_attempts: int = Field(default=5, ge=1, le=50)
    job_lease_s: float = Field(default=60.0, ge=5, le=3600)
    video_duration_s: int = Field(default=4, ge=3, le=5)
    video_poll_s: float = Field(default=5.0, ge=0.0, le=60.0)  # between polls of a provider's render
    max_reference_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=50 * 1024 * 1024)
    max_clip_bytes: int = Field(default=200 * 1024 * 1024, ge=1024 * 1024, le=4 * 1024**3)  # a download stops here
    max_running_stories: int = Field(default=2, ge=1, le=20)  # per user, across servers

    # Model health (checks use each provider's model listing, never a generation)
    health_check_interval_s: float = Field(default=60.0, ge=5, le=3600)
    health_cache_s: float = Field(default=30.0, ge=1, le=3600)
    metrics_aggregate_s: float = Field(default=300.0, ge=10, le=3600)
    metrics_retention_days: int = Field(default=30, ge=1, le=365)
    alert_unavailable_s: float = Field(default=300.0, ge=0)  # a primary model down for longer than this
    alert_fallback_rate: float = Field(default=0.10, gt=0, le=1)  # over the last hour
    alert_error_rate: float = Field(default=0.05, gt=0, le=1)  # over the last 10 minutes
    alert_slow_call_s: float = Field(default=30.0, gt=0)  # one response slower than this
    health_http_host: str = "127.0.0.1"
    health_http_port: int = Field(default=8080, ge=0, le=65535)  # 0 turns /health and /metrics off

    # Quiet by default (the bot still says when it is ready); INFO shows each job, DEBUG everything we do.
    log_level: str = "WARNING"

    @field_validator("routing", mode="before")
    @classmethod
    def _merge_routing_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        merged: dict[str, Any] = {m.value: cfg.model_dump() for m, cfg in DEFAULT_ROUTING.items()}
        for key, cfg in value.items():
            base = dict(merged.get(str(key), {}))
            if isinstance(cfg, dict) and "primary_model" in cfg and "fallbacks" not in cfg:
                base["fallbacks"] = [m for m in base.get("fallbacks", []) if m != cfg["primary_model"]]
            merged[str(key)] = {**base, **cfg} if isinstance(cfg, dict) else cfg
        return merged

    @field_validator(
        "discord_token", "openai_api_key", "xai_api_key", "gemini_api_key", "database_url",
        "media_access_key_id", "media_secret_access_key", mode="before",
    )  # fmt: skip
    @classmethod
    def _trimmed_secret(cls, value: Any) -> Any:
        # The whitespace an .env file or a shell leaves around a key is not part of it (a trailing newline in
        # an HTTP header is refused, and would be logged); a value of only whitespace is no value: with no
        # token the bot runs offline.
        if isinstance(value, str):
            return value.strip() or None
        return value

    def model_post_init(self, context: Any, /) -> None:
        register_secrets(secret.get_secret_value() for secret in self._secrets())

    def _secrets(self) -> list[SecretStr]:
        found = [self.discord_token, self.openai_api_key, self.xai_api_key, self.gemini_api_key, self.database_url]
        found += [self.media_access_key_id, self.media_secret_access_key]
        if self.database_url is not None:  # the password alone, as a driver's message might quote it
            password = urlsplit(self.database_url.get_secret_value()).password
            found.append(SecretStr(password) if password else None)
        return [secret for secret in found if secret is not None]

    @field_validator("media_url", mode="before")
    @classmethod
    def _object_storage_url(cls, value: Any) -> Any:
        # The messages never quote the value: a URL pasted with its keys in it must not be echoed.
        if not isinstance(value, str) or not value.strip():
            return None if isinstance(value, str) else value
        parts = urlsplit(value.strip())
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("must look like s3://bucket or s3://bucket/prefix")
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "must be only s3://bucket/prefix: the keys go in MEDIA_ACCESS_KEY_ID and MEDIA_SECRET_ACCESS_KEY"
            )
        if not BUCKET_NAME.fullmatch(parts.netloc):
            raise ValueError("names a bucket S3 does not allow: 3-63 lowercase letters, digits, dots and hyphens")
        prefix = "/".join(segment for segment in parts.path.split("/") if segment)
        if any(segment in (".", "..") for segment in prefix.split("/")):
            raise ValueError("the prefix may not contain . or .. segments")
        return f"s3://{parts.netloc}/{prefix}" if prefix else f"s3://{parts.netloc}"

    @field_validator("media_endpoint_url", mode="before")
    @classmethod
    def _endpoint_url(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            return None if isinstance(value, str) else value
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://ACCOUNT.r2.cloudflarestorage.com")
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "must be only scheme, host and port: the keys go in MEDIA_ACCESS_KEY_ID and MEDIA_SECRET_ACCESS_KEY"
            )
        return value.strip().rstrip("/")

    @field_validator("media_access_key_id", "media_secret_access_key")
    @classmethod
    def _needed_with_media_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None and info.data.get("media_url"):
            raise ValueError("must be set when MEDIA_URL is (the object storage's access key and its secret)")
        return value

    def database_url_value(self) -> str | None:
        return None if self.database_url is None else self.database_url.get_secret_value()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return level

    def key_for(self, env_name: str) -> SecretStr | None:
        """The secret named by a registry spec's ``api_key_env`` (e.g. ``OPENAI_API_KEY``)."""
        return {
            "OPENAI_API_KEY": self.openai_api_key,
            "XAI_API_KEY": self.xai_api_key,
            "GEMINI_API_KEY": self.gemini_api_key,
            "GOOGLE_API_KEY": self.gemini_api_key,
        }.get(env_name)


def _describe(error: Mapping[str, Any]) -> str:
    loc = [str(p) for p in error.get("loc", ()) if not str(p).startswith("function-") and str(p) != "[key]"]
    name = "__".join(loc).upper() or "SETTINGS"
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    return f"{name}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment; raise ConfigError with one readable line on failure."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"invalid setting {_describe(first)}") from None
    except SettingsError:
        raise ConfigError(f"invalid setting {_unparsable_variable()}: {JSON_HINT}") from None


JSON_HINT = "list values must be JSON, e.g. ROUTING__IMAGE__FALLBACKS='[\"gemini-3.1-flash-image\"]'"


def _unparsable_variable() -> str:
    """pydantic-settings reports only the field ("routing"); find the environment variable to blame."""
    for name, value in sorted(os.environ.items()):
        if name.upper().startswith("ROUTING"):
            try:
                json.loads(value) if name.upper().endswith(("__FALLBACKS", "ROUTING")) else None
            except ValueError:
                return name.upper()
    return "ROUTING"


# -- secrets out of logs and stored errors ----------------------------------------------------------


MASK = "[redacted]"
MIN_SECRET_CHARS = 8  # a shorter value would mask ordinary words; no real key or token is that short


def forms_of(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a text: as set, trimmed, percent-encoded (path and form style),
    and escaped inside a JSON string."""
    core = secret.strip()
    if len(core) < MIN_SECRET_CHARS:
        return set()
    found = {core, quote(core, safe=""), quote(core), quote_plus(core), json.dumps(core)[1:-1]}
    if secret != core:
        found.add(secret)
    return {form for form in found if len(form) >= MIN_SECRET_CHARS}


class Redactor:
    def __init__(self) -> None:
        self._forms: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            known = set(self._forms)
            for secret in secrets:
                known |= forms_of(secret)
            self._forms = tuple(sorted(known, key=len, reverse=True))  # longest first: a form inside another

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


REDACTOR = Redactor()
_installed = False


def redact(text: str) -> str:
    """``text`` with every form of every registered secret masked."""
    return REDACTOR(text)


def register_secrets(secrets: Iterable[str]) -> None:
    """Mask these from now on, in every log record and every ``redact``ed text of this process."""
    REDACTOR.add(secrets)
    _install_record_hook()


def _install_record_hook() -> None:
    """Mask records as they are made, so every handler (files, stderr, pytest's) gets them masked."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)  # type: ignore[arg-type]
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: logging reports that itself when it emits
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = redact(text)
            if clean != text:  # the formatter prints exc_text instead of formatting the exception itself
                record.exc_text = clean
        return record

    logging.setLogRecordFactory(masked_record)
