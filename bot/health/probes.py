"""Availability probes: one cheap listing request per model (provider-apis.md s12), never a generation.

``probe`` never raises: every outcome, a bug included, becomes a ``Probe`` the checker can store.
200 means ok (a shutdown date on or before today means retired), 404 means retired, and anything else
is not ok with the adapter's classified ``ErrorKind`` and a line of plain words for ``/status``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime

from bot.errors import PLAIN_WORDS, ErrorKind, ProviderError
from bot.health.model import Probe
from bot.providers import ProviderSet
from bot.providers.base import ModelLister, ModelListing
from bot.routing.catalog import ModelSpec

log = logging.getLogger(__name__)

# A listing answers in well under a second; a probe that waits longer says more by failing.
PROBE_TIMEOUT_S = 10.0
PROBE_CONCURRENCY = 8

Prober = Callable[[ModelSpec, float], Awaitable[Probe]]


async def probe(providers: ProviderSet, spec: ModelSpec, now: float, *, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    """Ask ``spec``'s provider whether the model still exists. ``now`` stamps the probe and dates shutdowns."""
    today = _day(now)
    if spec.provider == "local":
        return Probe(spec.key, ok=True, checked_at=now)
    if spec.is_retired(today):
        return _retired(spec, now, 0.0, f"retired on {spec.retired_on}")
    if spec.api_key_env is not None and not _has_key(providers, spec.api_key_env):
        return _not_ok(spec, now, 0.0, ErrorKind.AUTH, f"{spec.key}: no key set (set {spec.api_key_env})")
    started = time.perf_counter()
    try:
        adapter = providers.adapter(spec.provider)
        if not isinstance(adapter, ModelLister):
            return Probe(spec.key, ok=True, checked_at=now, detail="this provider has no listing to check")
        async with asyncio.timeout(timeout_s):
            listing = await adapter.describe_model(spec.api_model, spec.modality)
    except ProviderError as exc:
        return _failed(spec, now, _elapsed_ms(started), exc)
    except TimeoutError:
        detail = f"{spec.key} did not answer the availability check within {timeout_s:g} s"
        return _not_ok(spec, now, _elapsed_ms(started), ErrorKind.TRANSIENT, detail)
    except Exception as exc:  # a bug must not stop the health loop; the log keeps the traceback
        log.exception("availability check of %s crashed", spec.key)
        detail = f"the availability check of {spec.key} failed ({type(exc).__name__})"
        return _not_ok(spec, now, _elapsed_ms(started), ErrorKind.TRANSIENT, detail)
    return _from_listing(spec, now, _elapsed_ms(started), listing, today)


async def probe_many(
    prober: Prober, specs: Iterable[ModelSpec], now: float, *, concurrency: int = PROBE_CONCURRENCY
) -> list[Probe]:
    """Probe every spec, at most ``concurrency`` at a time; the probes come back in the order given."""
    gate = asyncio.Semaphore(max(concurrency, 1))

    async def one(spec: ModelSpec) -> Probe:
        async with gate:
            return await prober(spec, now)

    return list(await asyncio.gather(*(one(spec) for spec in specs)))


def _from_listing(spec: ModelSpec, now: float, latency_ms: float, listing: ModelListing, today: date) -> Probe:
    if not listing.found:
        return _retired(spec, now, latency_ms, "the provider no longer lists it")
    shutdown = listing.shutdown_date
    if shutdown is not None and shutdown <= today:
        return _retired(spec, now, latency_ms, f"the provider shut it down on {shutdown.isoformat()}", shutdown)
    detail = f"the provider will shut {spec.key} down on {shutdown.isoformat()}" if shutdown else ""
    return Probe(
        spec.key,
        ok=True,
        checked_at=now,
        latency_ms=latency_ms,
        shutdown_date=shutdown.isoformat() if shutdown else None,
        detail=detail,
    )


def _retired(spec: ModelSpec, now: float, latency_ms: float, why: str, shutdown: date | None = None) -> Probe:
    detail = f"{spec.key} has been retired ({why})"
    if spec.successor:
        detail += f"; use {spec.successor} instead"
    return Probe(
        spec.key,
        ok=False,
        checked_at=now,
        latency_ms=latency_ms,
        retired=True,
        shutdown_date=shutdown.isoformat() if shutdown else None,
        error_kind=ErrorKind.MODEL_RETIRED,
        detail=detail,
    )


def _failed(spec: ModelSpec, now: float, latency_ms: float, error: ProviderError) -> Probe:
    if error.kind is ErrorKind.MODEL_RETIRED:  # a 404 the adapter raised rather than listed
        return _retired(spec, now, latency_ms, "the provider no longer lists it")
    detail = PLAIN_WORDS[error.kind].format(model=spec.key)
    if error.status is not None:
        detail += f" (HTTP {error.status})"
    return _not_ok(spec, now, latency_ms, error.kind, detail)


def _not_ok(spec: ModelSpec, now: float, latency_ms: float, kind: ErrorKind, detail: str) -> Probe:
    return Probe(spec.key, ok=False, checked_at=now, latency_ms=latency_ms, error_kind=kind, detail=detail)


def _has_key(providers: ProviderSet, env_name: str) -> bool:
    secret = providers.settings.key_for(env_name)
    return secret is not None and bool(secret.get_secret_value().strip())


def _day(now: float) -> date:
    return datetime.fromtimestamp(now, tz=UTC).date()


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
