"""The model registry: specs, capabilities, aliases, retirements and availability.

The spec schema and the built-in catalogue live in ``bot.catalog``; operators add or override models with a TOML file
(``MODELS_FILE``) without code changes::

    [[models]]
    key = "gpt-image-2"
    provider = "openai"
    modality = "image"
    supports_references = true
    max_reference_images = 16

    [[models]]                 # override only the fields given
    key = "gpt-image-1.5"
    retired_on = 2027-03-01
    successor = "gpt-image-2"

    [aliases]
    "house-style" = "gpt-image-2"
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from bot.clock import Clock, SystemClock
from bot.domain import HealthState, Modality, RoutingConfig
from bot.errors import ConfigError, UnknownModelError, UserInputError
from bot.routing.catalog import BUILTIN_ALIASES, BUILTIN_SPECS, ModelSpec, Provider, apply_models_file, normalize_key
from bot.settings import Settings

__all__ = ["Availability", "ModelSpec", "Provider", "Registry"]

log = logging.getLogger(__name__)

CooldownHook = Callable[[str], float | None]
KeyPresent = Callable[[str], bool]
_HINT_LIMIT = 10  # keys named in one error line


@dataclass(frozen=True)
class Availability:
    usable: bool
    reason: str | None = None
    state: HealthState = HealthState.UP


HealthHook = Callable[[str], Availability | None]  # what the health checker found (retired, key refused)


def _no_keys(_env: str) -> bool:
    return False


def _article(modality: Modality) -> str:
    return f"an {modality.value}" if modality is Modality.IMAGE else f"a {modality.value}"


def _shown(key: str) -> str:
    """A user-typed key made safe for a one-line message."""
    return " ".join(key.split())[:100]


class Registry:
    """Model lookups and availability. Reads only memory, so the router may ask it on every decision.

    ``key_present(env_name)`` says whether a provider key is configured (default: none is);
    ``cooldown(key)`` returns the seconds a model still cools down, or None; ``clock`` supplies today.
    """

    def __init__(
        self,
        specs: Iterable[ModelSpec],
        aliases: Mapping[str, str] | None = None,
        *,
        key_present: KeyPresent = _no_keys,
        cooldown: CooldownHook | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            if spec.key in self._specs:
                raise ConfigError(f"model {spec.key!r} is defined twice")
            self._specs[spec.key] = spec
        self._aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            name, canonical = normalize_key(alias), normalize_key(target)
            if name in self._specs:
                raise ConfigError(f"alias {name!r} hides the model of the same key")
            if canonical not in self._specs:
                raise ConfigError(f"alias {name!r} points to unknown model {canonical!r}")
            self._aliases[name] = canonical
        for spec in list(self._specs.values()):
            if spec.successor is None:
                continue
            successor = self.get(spec.successor)
            if successor is None or successor.modality != spec.modality:
                raise ConfigError(
                    f"model {spec.key!r} names {spec.successor!r} as successor, not a known {spec.modality} model"
                )
            if successor.key != spec.successor:
                self._specs[spec.key] = spec.model_copy(update={"successor": successor.key})
        self._key_present = key_present
        self._cooldown = cooldown
        self._health: HealthHook | None = None
        self._clock: Clock = clock or SystemClock()

    @classmethod
    def load(cls, settings: Settings, *, cooldown: CooldownHook | None = None, clock: Clock | None = None) -> Registry:
        """Built-ins plus the operator's TOML file; a bad file raises ConfigError naming it."""
        specs: dict[str, ModelSpec] = {spec.key: spec for spec in BUILTIN_SPECS}
        aliases = dict(BUILTIN_ALIASES)
        path = settings.models_file
        if path is not None:
            apply_models_file(path, specs, aliases)

        def key_present(env_name: str) -> bool:
            secret = settings.key_for(env_name)
            return secret is not None and bool(secret.get_secret_value().strip())

        try:
            registry = cls(specs.values(), aliases, key_present=key_present, cooldown=cooldown, clock=clock)
        except ConfigError as exc:
            if path is None:
                raise
            raise ConfigError(f"models file {path}: {exc}") from None
        log.debug("registry loaded: %d models, %d aliases", len(registry._specs), len(registry._aliases))
        return registry

    def set_cooldown_hook(self, cooldown: CooldownHook | None) -> None:
        """Let the router/health report how many seconds a model still cools down (None when it does not)."""
        self._cooldown = cooldown

    def set_health_hook(self, health: HealthHook | None) -> None:
        """Let the health checker mark a model unusable (retired by its provider, key refused); None when usable."""
        self._health = health

    @property
    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def get(self, key: str) -> ModelSpec | None:
        name = normalize_key(key)
        return self._specs.get(self._aliases.get(name, name))

    def resolve(self, key: str, *, modality: Modality | None = None) -> ModelSpec:
        """The spec for a key or alias; UnknownModelError suggests the closest key (of ``modality``)."""
        spec = self.get(key)
        if spec is None:
            raise UnknownModelError(self._unknown_message(key, modality))
        return spec

    def canonical(self, key: str) -> str:
        return self.resolve(key).key

    def specs(self, modality: Modality | None = None) -> list[ModelSpec]:
        return [spec for spec in self._specs.values() if modality is None or spec.modality == modality]

    def availability(self, key: str, *, today: date | None = None, consult_health: bool = True) -> Availability:
        """Usable or not, and why. ``consult_health=False`` leaves out what the health checker found."""
        spec = self.get(key)
        if spec is None:
            return Availability(False, f"unknown model '{_shown(key)}'", HealthState.UNCONFIGURED)
        if spec.is_retired(today or self._today()):
            reason = f"retired on {spec.retired_on}"
            if spec.successor:
                reason += f"; use {spec.successor} instead"
            return Availability(False, reason, HealthState.RETIRED)
        if spec.api_key_env is not None and not self._key_present(spec.api_key_env):
            return Availability(False, f"no key set (set {spec.api_key_env})", HealthState.UNCONFIGURED)
        verdict = self._health(spec.key) if self._health and consult_health else None
        if verdict is not None and not verdict.usable:
            return verdict
        left = self._cooldown(spec.key) if self._cooldown else None
        if left is not None and left > 0:
            return Availability(False, f"cooling down for {math.ceil(left)} s", HealthState.DOWN)
        return Availability(True)

    def usable(
        self,
        modality: Modality,
        *,
        needs_references: bool = False,
        duration_s: int | None = None,
        today: date | None = None,
    ) -> list[ModelSpec]:
        """Usable models of a modality that can do the job, in catalogue order."""
        day = today or self._today()
        return [
            spec
            for spec in self.specs(modality)
            if (spec.supports_references or not needs_references)
            and (duration_s is None or duration_s in spec.durations_s)
            and self.availability(spec.key, today=day).usable
        ]

    def require_usable(self, key: str, modality: Modality) -> ModelSpec:
        """The usable spec for a user's choice, or a one-line error that names the usable alternatives."""
        spec = self.get(key)
        hint = self._usable_hint(modality)
        if spec is None:
            message = self._unknown_message(key, modality, suggest_only=True)
            # "did you mean 'x'? Usable image models: ..." reads better than "?;".
            joined = f"{message} {hint[0].upper()}{hint[1:]}" if message.endswith("?") else f"{message}; {hint}"
            raise UnknownModelError(joined)
        name = _shown(normalize_key(key))
        if spec.modality != modality:
            raise UserInputError(f"'{name}' is {_article(spec.modality)} model, not {_article(modality)} model; {hint}")
        availability = self.availability(spec.key)
        if not availability.usable:
            raise UserInputError(f"'{name}' is unavailable: {availability.reason}; {hint}")
        return spec

    def validate_routing(self, routing: Mapping[Modality, RoutingConfig]) -> None:
        """Check that every routed key exists and has the right modality (retired ones just fall back)."""
        for modality, config in routing.items():
            for index, key in enumerate(config.chain):
                variable = f"ROUTING__{modality.value.upper()}__" + ("PRIMARY_MODEL" if index == 0 else "FALLBACKS")
                spec = self.get(key)
                if spec is None:
                    raise ConfigError(f"invalid setting {variable}: {self._unknown_message(key, modality)}")
                if spec.modality != modality:
                    raise ConfigError(f"invalid setting {variable}: '{key}' is {_article(spec.modality)} model")

    def _today(self) -> date:
        return datetime.fromtimestamp(self._clock.now(), tz=UTC).date()

    def _unknown_message(self, key: str, modality: Modality | None, *, suggest_only: bool = False) -> str:
        message = f"unknown model '{_shown(key)}'"
        candidates = [spec.key for spec in self.specs(modality)]
        candidates += [
            alias for alias, target in self._aliases.items() if modality in (None, self._specs[target].modality)
        ]
        close = difflib.get_close_matches(normalize_key(key), candidates, n=1, cutoff=0.6)
        if close:
            return f"{message}; did you mean '{close[0]}'?"
        if suggest_only:
            return message
        today = self._today()
        known = [spec.key for spec in self.specs(modality) if not spec.is_retired(today)]
        kind = f"{modality.value} models" if modality else "models"
        return f"{message}; known {kind}: {', '.join(known[:_HINT_LIMIT])}"

    def _usable_hint(self, modality: Modality) -> str:
        keys = [spec.key for spec in self.usable(modality)]
        if not keys:
            return f"no {modality.value} model is usable right now"
        more = ", ..." if len(keys) > _HINT_LIMIT else ""
        return f"usable {modality.value} models: {', '.join(keys[:_HINT_LIMIT])}{more}"
