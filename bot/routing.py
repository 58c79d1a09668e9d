"""ModelRouter: pick a model for a job, call it, fall back along the chain, and say what happened.

The chain for a request is: the requested model, then the modality's configured fallbacks, then the
local model of that modality as the last resort. A model is skipped when it is unusable (no key,
retired, cooling down) or cannot do the job (reference images, duration). Errors arrive already
classified (``ProviderError.kind``); a content-policy block ends the attempt without fallback, so
the user is asked to rephrase rather than silently getting another model's interpretation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from bot.clock import Clock
from bot.domain import Modality, RoutingConfig
from bot.errors import ErrorKind, ModelUnavailableError, ProviderError
from bot.providers import ProviderSet
from bot.registry import ModelSpec, Registry

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCAL_LAST_RESORT = {Modality.TEXT: "local-template", Modality.IMAGE: "local-sketch", Modality.VIDEO: "local-kenburns"}


@dataclass
class Routed(Generic[T]):
    value: T
    model_requested: str
    model_used: str
    attempts: int
    latency_ms: float
    warnings: list[str] = field(default_factory=list)

    @property
    def fallback(self) -> bool:
        return self.model_used != self.model_requested


class ModelRouter:
    def __init__(
        self,
        registry: Registry,
        providers: ProviderSet,
        routing: dict[Modality, RoutingConfig],
        clock: Clock,
    ) -> None:
        self.registry = registry
        self.providers = providers
        self.routing = routing
        self.clock = clock

    def chain(
        self, requested: str, modality: Modality, *, needs_references: bool = False, duration_s: int | None = None
    ) -> list[ModelSpec]:
        """Usable models able to do this job, in the order they will be tried."""
        keys = [self.registry.canonical(requested), *self.routing[modality].chain, LOCAL_LAST_RESORT[modality]]
        chosen: list[ModelSpec] = []
        for key in dict.fromkeys(keys):
            spec = self.registry.get(key)
            if spec is None or spec.modality != modality or not self.registry.availability(key).usable:
                continue
            if needs_references and not spec.supports_references:
                continue
            if duration_s is not None and spec.durations_s and duration_s not in spec.durations_s:
                continue
            chosen.append(spec)
        return chosen

    async def call(
        self,
        requested: str,
        modality: Modality,
        invoke: Callable[[ModelSpec], Awaitable[T]],
        *,
        needs_references: bool = False,
        duration_s: int | None = None,
    ) -> Routed[T]:
        chain = self.chain(requested, modality, needs_references=needs_references, duration_s=duration_s)
        if not chain:
            raise ModelUnavailableError(f"no {modality.value} model can do this job right now")
        warnings: list[str] = []
        attempts = 0
        last_error: ProviderError | None = None
        for spec in chain:
            attempts += 1
            started = time.perf_counter()
            try:
                value = await invoke(spec)
            except ProviderError as exc:
                exc.model = exc.model or spec.key
                last_error = exc
                log.warning("%s failed (%s): %s", spec.key, exc.kind.value, exc)
                if exc.kind is ErrorKind.CONTENT_POLICY:
                    raise
                warnings.append(exc.plain())
                continue
            latency_ms = (time.perf_counter() - started) * 1000
            if spec.key != chain[0].key or spec.key != self.registry.canonical(requested):
                reason = "; ".join(warnings) or f"{self.registry.canonical(requested)} was unavailable"
                warnings = [f"{reason}; {_verb(modality)} with {spec.key} instead"]
            return Routed(value, self.registry.canonical(requested), spec.key, attempts, latency_ms, warnings)
        assert last_error is not None
        raise last_error


def _verb(modality: Modality) -> str:
    return {Modality.TEXT: "written", Modality.IMAGE: "drawn", Modality.VIDEO: "animated"}[modality]
