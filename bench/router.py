"""The model router: how long a routing decision takes, and what routing adds to a real adapter call.

decision: ModelRouter's in-memory decision for one request (canonical key, ``chain(...)`` with
          capability filters, one breaker check per model in the chain), 10,000 times, alternating
          requests with and without reference images; p50/p99 against the seed's goal of < 10 ms.
          Also ``ModelRouter.call`` around an invoke that returns at once: everything the router adds
          to a call (decision, tenacity's retry loop, breaker bookkeeping), with no I/O at all.
overhead: 300 xAI image generations through ``ModelRouter.call -> XAIAdapter.generate_image``
          against FakeProviders on 127.0.0.1, versus 300 calls to the adapter directly, interleaved
          in blocks of 30 (each block's order alternates); per-call p50 of each and their ratio.
Each mode runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import TYPE_CHECKING, Any

from bench.common import emit, machine, ratio, run_mode

if TYPE_CHECKING:
    from bot.routing.registry import Registry
    from bot.routing.router import ModelRouter
    from bot.settings import Settings

DECISIONS = 10_000
CALLS = 300
BLOCK = 30
WARMUP = 10
GOAL_MS = 10.0
ALL_KEYS = {"OPENAI_API_KEY", "GEMINI_API_KEY", "XAI_API_KEY"}
XAI_KEY = "xai-benchkey0123456789"


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * fraction), len(ordered) - 1)]


def _router(settings: Settings, registry: Registry, primary: str, fallbacks: list[str]) -> ModelRouter:
    from bot.clock import SystemClock
    from bot.domain import Modality, RoutingConfig
    from bot.routing.router import ModelRouter

    routing = dict(settings.routing)
    routing[Modality.IMAGE] = RoutingConfig(primary_model=primary, fallbacks=fallbacks)
    return ModelRouter(registry, routing, SystemClock())


def _decision() -> dict[str, Any]:
    from bot.domain import Modality
    from bot.routing.registry import Registry
    from bot.settings import load_settings

    settings = load_settings()
    loaded = Registry.load(settings)
    registry = Registry(loaded.specs(), loaded.aliases, key_present=lambda env: env in ALL_KEYS)
    router = _router(settings, registry, "gpt-image-1.5", ["gemini-3.1-flash-image", "grok-imagine-image"])
    samples_us: list[float] = []
    chain_lengths: set[int] = set()
    for index in range(DECISIONS):
        started = time.perf_counter_ns()
        requested = registry.canonical("dalle")  # an alias, as a user might type it
        chain = router.chain(requested, Modality.IMAGE, needs_references=index % 2 == 1)
        allowed = [spec.key for spec in chain if router.breakers.allow(spec.key)]
        samples_us.append((time.perf_counter_ns() - started) / 1000)
        chain_lengths.add(len(allowed))
    return {
        "p50_us": statistics.median(samples_us),
        "p99_us": _percentile(samples_us, 0.99),
        "max_us": max(samples_us),
        "chain_lengths": sorted(chain_lengths),
        "call_p50_us": asyncio.run(_instant_calls(router)),
    }


async def _instant_calls(router: ModelRouter) -> float:
    from bot.domain import Modality
    from bot.routing.registry import ModelSpec

    async def instant(spec: ModelSpec) -> str:
        return spec.key

    samples_us: list[float] = []
    for _ in range(DECISIONS):
        started = time.perf_counter_ns()
        await router.call("dalle", Modality.IMAGE, instant)
        samples_us.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(samples_us)


async def _overhead() -> dict[str, Any]:
    from bot.domain import Modality
    from bot.providers.base import ImageRequest, ImageResult
    from bot.providers.xai.adapter import XAIAdapter
    from bot.routing.registry import ModelSpec, Registry
    from bot.settings import load_settings
    from tests.fakes.providers import FakeProviders

    async with FakeProviders() as fake:
        settings = load_settings(xai_api_key=XAI_KEY, xai_base_url=fake.xai_base_url, provider_timeout_s=30.0)
        registry = Registry.load(settings)
        router = _router(settings, registry, "grok-imagine-image", ["grok-imagine-image-2.0"])
        adapter = XAIAdapter(settings, registry)

        def request(model: str) -> ImageRequest:
            return ImageRequest(model=model, prompt="a lighthouse keeper befriends a storm", aspect_ratio="16:9")

        async def direct() -> None:
            await adapter.generate_image(request("grok-imagine-image"))

        async def invoke(spec: ModelSpec) -> ImageResult:
            return await adapter.generate_image(request(spec.key))

        async def routed() -> None:
            result = await router.call("grok-imagine-image", Modality.IMAGE, invoke)
            if result.fallback:
                raise SystemExit(f"the router fell back unexpectedly: {result.warnings}")

        arms = {"direct": direct, "routed": routed}
        samples: dict[str, list[float]] = {name: [] for name in arms}
        try:
            for _ in range(WARMUP):  # connection set-up and first-call costs stay out of the figures
                for arm in arms.values():
                    await arm()
            for block in range(CALLS // BLOCK):
                order = list(arms) if block % 2 == 0 else list(reversed(arms))
                for name in order:
                    for _ in range(BLOCK):
                        started = time.perf_counter()
                        await arms[name]()
                        samples[name].append((time.perf_counter() - started) * 1000)
        finally:
            await adapter.aclose()
        sent = len(fake.calls("xai.images.generate"))
    expected = 2 * (CALLS // BLOCK * BLOCK + WARMUP)
    if sent != expected:
        raise SystemExit(f"expected {expected} image requests at the fake, saw {sent}")
    return {f"{name}_{stat}": fn(values) for name, values in samples.items() for stat, fn in _STATS.items()} | {
        "calls": CALLS // BLOCK * BLOCK
    }


_STATS = {"p50_ms": statistics.median, "p99_ms": lambda values: _percentile(values, 0.99)}


def _child(mode: str) -> None:
    emit(_decision() if mode == "decision" else asyncio.run(_overhead()))


def main() -> None:
    decision = run_mode("bench.router", "decision")
    overhead = run_mode("bench.router", "overhead")
    p50, p99 = decision["p50_us"], decision["p99_us"]
    verdict = "meets" if p99 / 1000 < GOAL_MS else "MISSES"
    share = p99 / 1000 / GOAL_MS
    print(f"model router ({machine()})")
    print(f"  decision time ({DECISIONS} decisions, chain of {'/'.join(map(str, decision['chain_lengths']))} models)")
    print(f"    p50 {p50:8.1f} us   p99 {p99:8.1f} us   max {decision['max_us']:8.1f} us")
    print(f"    goal < {GOAL_MS:g} ms: p99 {verdict} it (p99 is {share:.2%} of the budget)")
    print(f"    router.call around an instant invoke (no I/O): p50 {decision['call_p50_us']:.1f} us")
    print(f"  overhead ({overhead['calls']} xAI image calls each, FakeProviders on 127.0.0.1, blocks of {BLOCK})")
    for name in ("routed", "direct"):
        print(f"    {name:<7} p50 {overhead[f'{name}_p50_ms']:7.3f} ms   p99 {overhead[f'{name}_p99_ms']:7.3f} ms")
    extra_ms = overhead["routed_p50_ms"] - overhead["direct_p50_ms"]
    print(f"    ratio routed/direct (p50) {ratio(overhead['routed_p50_ms'], overhead['direct_p50_ms'])}"
          f"   (+{extra_ms * 1000:.0f} us per call)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("decision", "overhead"))
    args = parser.parse_args()
    _child(args.mode) if args.mode else main()
