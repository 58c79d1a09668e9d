"""ModelRouter: choose a model, retry it, fall back along the chain, and say what happened.

The chain for a request is the requested model, then the modality's configured fallbacks, then
the local model as the last resort. A model is skipped when it is unusable (no key, retired,
cooling down), cannot do the job (reference images, duration) or its breaker is open. The
decision reads only memory.

Errors arrive classified (``ProviderError.kind``):
- rate_limited / transient: retried on the same model with exponential backoff and jitter
  (tenacity, on the injected clock), honouring the provider's Retry-After; a wait longer than
  ``max_inline_wait_s`` is not slept through: the router moves on to the next model.
- content_policy: raised at once, no retry and no fallback, so the user can rephrase.
- auth / quota_exhausted / model_retired: the model is benched (cooldown), then fallback.
- bad_request: fallback (another API may accept the request).
When every model is unusable only for a while (breaker open, long Retry-After), the router raises
ModelUnavailableError with ``retry_after`` so the queue defers the job without spending an attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from bot.clock import Clock
from bot.domain import CallRecord, Modality, RoutingConfig
from bot.errors import ErrorKind, ModelUnavailableError, ProviderError
from bot.routing.breaker import Breakers, Cooldowns
from bot.routing.catalog import LOCAL_MODELS
from bot.routing.registry import ModelSpec, Registry

log = logging.getLogger(__name__)

T = TypeVar("T")

VERB = {Modality.TEXT: "written", Modality.IMAGE: "drawn", Modality.VIDEO: "animated"}


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


CallListener = Callable[[CallRecord], None]


@dataclass
class _Tally:
    tries: int = 0


class ModelRouter:
    def __init__(
        self,
        registry: Registry,
        routing: dict[Modality, RoutingConfig],
        clock: Clock,
        *,
        breakers: Breakers | None = None,
        cooldowns: Cooldowns | None = None,
        max_inline_wait_s: float = 20.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.registry = registry
        self.routing = routing
        self.clock = clock
        self.breakers = breakers or Breakers(clock)
        self.cooldowns = cooldowns or Cooldowns(clock)
        self.max_inline_wait_s = max_inline_wait_s
        self.max_backoff_s = max_backoff_s
        self.listeners: list[CallListener] = []
        registry.set_cooldown_hook(self.cooldowns.remaining)

    def chain(
        self,
        requested: str,
        modality: Modality,
        *,
        needs_references: bool = False,
        duration_s: int | None = None,
        routing: RoutingConfig | None = None,
    ) -> list[ModelSpec]:
        """Usable models able to do this job, in the order they will be tried (breakers aside):
        the requested model, the configured real ones (``routing``, e.g. a server's own, or the
        operator's), then local models last."""
        config = routing or self.routing[modality]
        configured = [key for key in config.chain if self.registry.get(key) is not None]
        real = [key for key in configured if self.registry.resolve(key).provider != "local"]
        local = [key for key in configured if key not in real]
        keys = [self.registry.canonical(requested), *real, *local, LOCAL_MODELS[modality]]
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
        routing: RoutingConfig | None = None,
    ) -> Routed[T]:
        requested_key = self.registry.canonical(requested)
        config = routing or self.routing[modality]
        chain = self.chain(
            requested, modality, needs_references=needs_references, duration_s=duration_s, routing=config
        )
        warnings: list[str] = []
        waits: list[float] = []  # how long until a skipped model could be tried again
        last_error: ProviderError | None = None
        attempts = 0
        for spec in chain:
            if not self.breakers.allow(spec.key):
                waits.append(self.breakers.reopen_in(spec.key))
                warnings.append(f"{spec.key} is paused after repeated failures")
                continue
            fallback = spec.key != requested_key
            tally = _Tally()
            try:
                value, latency_ms = await self._try_model(spec, config, invoke, fallback, tally)
            except ProviderError as exc:
                attempts += tally.tries
                last_error = exc
                if exc.kind is ErrorKind.CONTENT_POLICY:
                    raise
                if exc.retry_after is not None and exc.kind.retry_same_model:
                    waits.append(exc.retry_after)
                warnings.append(exc.plain())
                continue
            attempts += tally.tries
            if fallback:
                reason = "; ".join(warnings) or f"{requested_key} was unavailable"
                warnings = [f"{reason}; {VERB[modality]} with {spec.key} instead"]
            return Routed(value, requested_key, spec.key, attempts, latency_ms, warnings)
        if waits and (last_error is None or last_error.kind.retry_same_model):
            raise ModelUnavailableError(
                f"no {modality.value} model can take this job right now ({'; '.join(warnings)})",
                retry_after=max(min(waits), 1.0),
            )
        if last_error is not None:
            raise last_error
        raise ModelUnavailableError(f"no {modality.value} model can do this job right now")

    async def _try_model(
        self,
        spec: ModelSpec,
        config: RoutingConfig,
        invoke: Callable[[ModelSpec], Awaitable[T]],
        fallback: bool,
        tally: _Tally,
    ) -> tuple[T, float]:
        """Call one model with up to ``config.max_retries`` tries; return (value, latency_ms)."""
        backoff = wait_exponential_jitter(initial=config.retry_delay_ms / 1000, max=self.max_backoff_s)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ProviderError) and exc.retry_after is not None:
                return exc.retry_after
            return float(backoff(state))

        def retryable(exc: BaseException) -> bool:
            if not isinstance(exc, ProviderError) or not exc.kind.retry_same_model:
                return False
            if exc.retry_after is not None and exc.retry_after > self.max_inline_wait_s:
                return False  # not worth holding a worker: fall back, or defer the job
            return self.breakers.allow(spec.key)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(config.max_retries),
            wait=wait,
            retry=retry_if_exception(retryable),
            sleep=self.clock.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                tally.tries += 1
                value, latency_ms = await self._once(spec, invoke, fallback)
        return value, latency_ms

    async def _once(
        self, spec: ModelSpec, invoke: Callable[[ModelSpec], Awaitable[T]], fallback: bool
    ) -> tuple[T, float]:
        started_at, started = self.clock.now(), time.perf_counter()
        try:
            value = await invoke(spec)
        except ProviderError as exc:
            exc.model = exc.model or spec.key
            latency_ms = (time.perf_counter() - started) * 1000
            self.breakers.record_failure(spec.key, exc.kind)
            if exc.kind.disables_model:
                seconds = self.cooldowns.bench(spec.key, exc.kind)
                log.warning("%s benched for %.0f s: %s", spec.key, seconds, exc.kind.value)
            log.warning("%s failed (%s): %s", spec.key, exc.kind.value, exc)
            self._emit(CallRecord(spec.key, started_at, latency_ms, exc.kind, fallback))
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        self.breakers.record_success(spec.key)
        self._emit(CallRecord(spec.key, started_at, latency_ms, None, fallback))
        return value, latency_ms

    def _emit(self, record: CallRecord) -> None:
        for listener in self.listeners:
            try:
                listener(record)
            except Exception:  # a metrics hook must never break a generation
                log.exception("call listener failed")
