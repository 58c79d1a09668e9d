"""What models exist: the spec schema, the built-in catalogue (as of 2026-11-21) and the operator's TOML.

Sources: shared/reference/provider-apis.md section 0 (names and retirements) and the per-API sections
(aspect ratios, reference limits, durations). Built-ins and TOML entries go through one validation
path, ``ModelSpec``; ``api_key_env`` is filled in from the provider and ``api_model`` defaults to the key.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.domain import Modality
from bot.errors import ConfigError

Provider = Literal["openai", "google", "xai", "local"]

PROVIDER_KEY_ENV: dict[str, str | None] = {
    "openai": "OPENAI_API_KEY",
    "google": "GEMINI_API_KEY",
    "xai": "XAI_API_KEY",
    "local": None,
}
KNOWN_KEY_ENVS = frozenset({"OPENAI_API_KEY", "XAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"})
_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9._:/-]*")


def normalize_key(key: str) -> str:
    return key.strip().lower()


class ModelSpec(BaseModel):
    """One model the bot can call (or could once: retired specs still resolve)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1, max_length=100)
    display_name: str = Field(min_length=1, max_length=100)
    provider: Provider
    modality: Modality
    api_model: str = Field(min_length=1)  # the id sent to the API
    api_key_env: str | None = None
    supports_references: bool = False
    supports_input_fidelity: bool = False
    max_reference_images: int = Field(default=0, ge=0, le=64)
    aspect_ratios: tuple[str, ...] = ()
    durations_s: tuple[Annotated[int, Field(ge=1, le=600)], ...] = ()
    retired_on: date | None = None
    successor: str | None = None
    tags: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("key"), str):
            data["key"] = normalize_key(data["key"])
            data.setdefault("display_name", data["key"])
            data.setdefault("api_model", data["key"])
        if isinstance(data.get("successor"), str):
            data["successor"] = normalize_key(data["successor"])
        if "api_key_env" not in data and data.get("provider") in PROVIDER_KEY_ENV:
            data["api_key_env"] = PROVIDER_KEY_ENV[data["provider"]]
        if data.get("supports_references") is False:
            data["max_reference_images"] = 0
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if not _KEY_PATTERN.fullmatch(self.key):
            raise ValueError(f"key {self.key!r} may use only a-z, 0-9 and . _ : / -")
        if self.provider == "local" and self.api_key_env is not None:
            raise ValueError("a local model takes no api_key_env")
        if self.provider != "local" and self.api_key_env not in KNOWN_KEY_ENVS:
            raise ValueError(f"api_key_env must be one of {', '.join(sorted(KNOWN_KEY_ENVS))}")
        if self.supports_references and self.max_reference_images < 1:
            raise ValueError("supports_references needs max_reference_images of at least 1")
        if self.modality is Modality.VIDEO and not self.durations_s:
            raise ValueError("a video model needs durations_s")
        if self.successor == self.key:
            raise ValueError("a model cannot be its own successor")
        return self

    def is_retired(self, today: date) -> bool:
        return self.retired_on is not None and self.retired_on <= today


OPENAI_RATIOS = ("1:1", "3:2", "2:3")  # 1024x1024, 1536x1024, 1024x1536
GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "9:16", "16:9", "21:9")
XAI_IMAGE_RATIOS = (
    "1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20", "20:9", "1:2", "2:1", "21:9", "5:2",
)  # fmt: skip
XAI_VIDEO_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
LOCAL_RATIOS = ("1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16")
XAI_DURATIONS = tuple(range(1, 16))


def _entry(key: str, name: str, provider: str, modality: str, refs: int = 0, **fields: Any) -> dict[str, Any]:
    """One catalogue row; ``refs`` > 0 means the model takes up to that many reference images."""
    return {
        "key": key,
        "display_name": name,
        "provider": provider,
        "modality": modality,
        "supports_references": refs > 0,
        "max_reference_images": refs,
        **fields,
    }


BUILTIN_MODELS: list[dict[str, Any]] = [
    # image
    _entry("gpt-image-1.5", "GPT Image 1.5", "openai", "image", 16, supports_input_fidelity=True,
           aspect_ratios=OPENAI_RATIOS, tags=("refs", "hq", "fidelity")),
    # gpt-image-1-mini accepts input_fidelity=low only, so it does not count as supporting it.
    _entry("gpt-image-1-mini", "GPT Image 1 Mini", "openai", "image", 16, aspect_ratios=OPENAI_RATIOS,
           tags=("refs", "fast", "cheap")),
    # Gemini takes references as inline image parts.
    _entry("gemini-3.1-flash-image", "Gemini 3.1 Flash Image", "google", "image", 14, aspect_ratios=GEMINI_RATIOS,
           tags=("refs", "fast")),
    _entry("gemini-3-pro-image", "Gemini 3 Pro Image", "google", "image", 14, aspect_ratios=GEMINI_RATIOS,
           tags=("refs", "hq")),
    _entry("grok-imagine-image", "Grok Imagine Image", "xai", "image", 3, aspect_ratios=XAI_IMAGE_RATIOS,
           tags=("refs", "fast")),
    _entry("grok-imagine-image-2.0", "Grok Imagine Image 2.0", "xai", "image", 5, aspect_ratios=XAI_IMAGE_RATIOS,
           tags=("refs", "hq")),
    # Takes one reference so a story with a reference can still fall back to it.
    _entry("local-sketch", "Local sketch", "local", "image", 1, aspect_ratios=LOCAL_RATIOS,
           tags=("offline", "fast")),
    # video: all image-to-video, the scene's image being the one reference (the first frame)
    _entry("grok-imagine-video", "Grok Imagine Video", "xai", "video", 1, aspect_ratios=XAI_VIDEO_RATIOS,
           durations_s=XAI_DURATIONS, tags=("i2v",)),
    _entry("grok-imagine-video-1.5", "Grok Imagine Video 1.5", "xai", "video", 1, aspect_ratios=XAI_VIDEO_RATIOS,
           durations_s=XAI_DURATIONS, tags=("i2v", "hq")),
    _entry("local-kenburns", "Local Ken Burns", "local", "video", 1, aspect_ratios=("16:9", "1:1", "9:16"),
           durations_s=(3, 4, 5), tags=("i2v", "offline")),
    # text
    _entry("gpt-5-mini", "GPT-5 mini", "openai", "text", tags=("fast",)),
    _entry("gemini-3-flash", "Gemini 3 Flash", "google", "text", tags=("fast",)),
    _entry("grok-4-fast", "Grok 4 Fast", "xai", "text", tags=("fast",)),
    _entry("local-template", "Local templates", "local", "text", tags=("offline", "fast")),
    # Retired: they still resolve (stored rows keep their keys) but are never usable.
    _entry("grok-imagine-image-pro", "Grok Imagine Image Pro", "xai", "image", 3, aspect_ratios=XAI_IMAGE_RATIOS,
           retired_on=date(2026, 5, 15), successor="grok-imagine-image-2.0"),
    _entry("grok-imagine-image-quality", "Grok Imagine Image Quality", "xai", "image", 3,
           aspect_ratios=XAI_IMAGE_RATIOS, retired_on=date(2026, 11, 2), successor="grok-imagine-image-2.0"),
    _entry("dall-e-3", "DALL-E 3", "openai", "image", aspect_ratios=("1:1", "7:4", "4:7"),
           retired_on=date(2026, 5, 12), successor="gpt-image-1.5"),
    _entry("imagen-4.0-generate-001", "Imagen 4", "google", "image",
           aspect_ratios=("1:1", "3:4", "4:3", "9:16", "16:9"), retired_on=date(2026, 8, 17),
           successor="gemini-3.1-flash-image"),
    _entry("sora-2", "Sora 2", "openai", "video", 1, aspect_ratios=("16:9", "9:16"), durations_s=(4, 8, 12),
           retired_on=date(2026, 9, 24), successor="grok-imagine-video"),
]  # fmt: skip

# Legacy keys that resolve transparently to today's model.
# The embedded offline model of each modality: the last link of every fallback chain.
LOCAL_MODELS = {Modality.TEXT: "local-template", Modality.IMAGE: "local-sketch", Modality.VIDEO: "local-kenburns"}

BUILTIN_ALIASES: dict[str, str] = {
    "dalle": "gpt-image-1.5",
    "gpt-image-1": "gpt-image-1.5",
    "gemini-2.5-flash-image": "gemini-3.1-flash-image",
}

BUILTIN_SPECS: tuple[ModelSpec, ...] = tuple(ModelSpec.model_validate(entry) for entry in BUILTIN_MODELS)


def apply_models_file(path: Path, specs: dict[str, ModelSpec], aliases: dict[str, str]) -> None:
    """Merge the TOML file into ``specs`` and ``aliases`` in place."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"models file {path}: not found") from None
    except OSError as exc:
        raise ConfigError(f"models file {path}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"models file {path}: invalid TOML: {exc}") from None

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"models file {path}: {problem}")

    unknown = sorted(set(document) - {"models", "aliases"})
    if unknown:
        raise fail(f"unknown top-level key {unknown[0]!r} (expected [[models]] and [aliases])")
    entries = document.get("models", [])
    if not isinstance(entries, list):
        raise fail("'models' must be an array of tables ([[models]])")
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"models[{index}]"
        if not isinstance(entry, dict):
            raise fail(f"{where} must be a table")
        if not isinstance(entry.get("key"), str):
            raise fail(f"{where} needs a string 'key'")
        key = normalize_key(entry["key"])
        if key in seen:
            raise fail(f"{where}: model '{key}' appears twice in the file")
        seen.add(key)
        merged: dict[str, Any] = dict(entry)
        if key in specs:
            merged = {**specs[key].model_dump(), **entry}
            if "provider" in entry and "api_key_env" not in entry:
                merged.pop("api_key_env")  # recomputed from the new provider
        try:
            specs[key] = ModelSpec.model_validate(merged)
        except ValidationError as exc:
            raise fail(f"{where} ('{key}'): {_describe(exc)}") from None
        aliases.pop(key, None)  # a real model now owns this name
    extra_aliases = document.get("aliases", {})
    if not isinstance(extra_aliases, dict):
        raise fail("'aliases' must be a table of alias = \"model-key\"")
    for alias, target in extra_aliases.items():
        if not isinstance(target, str):
            raise fail(f"alias {alias!r} must map to a model key string")
        aliases[alias] = target


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
    field = ".".join(str(part) for part in error.get("loc", ()))
    return f"{field}: {message}" if field else message
