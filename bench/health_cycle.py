"""One full health cycle: the availability probe of 20 remote models against the fake providers.

The 20 models are the 11 built-in remote ones plus 9 added through a MODELS_FILE (3 per provider),
each checked with its provider's listing endpoint through the real SDK (openai, google-genai, httpx).

cycle:      ``probe_many`` (8 at a time), the way the health loop runs it.
sequential: ``probe`` on each model in turn.
baseline:   the same 20 listing URLs fetched by one bare httpx client in turn (no SDK, no classification).
Each arm runs CYCLES times, interleaved, after a warm-up cycle; the median wall time is reported with the
requests the fake recorded per cycle. Two scenarios: the fake as it is on loopback (about a millisecond a
request, so the figures are the client-side cost), and the fake holding every listing for RTT_S seconds,
a stand-in for a real provider's round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import emit, machine, ratio, run_mode

if TYPE_CHECKING:
    from bot.providers import ProviderSet
    from bot.routing.catalog import ModelSpec
    from tests.fakes.providers import FakeProviders

MODELS = 20
CYCLES = 5
RTT_S = 0.05
CONCURRENCY = 8
KEYS = {"openai_api_key": "sk-bench", "gemini_api_key": "gm-bench", "xai_api_key": "xai-benchkey0123456789"}
EXTRA_MODELS = """
[[models]]
key = "bench-openai-image-{n}"
provider = "openai"
modality = "image"
api_model = "gpt-image-1.5"

[[models]]
key = "bench-gemini-image-{n}"
provider = "google"
modality = "image"
api_model = "gemini-3.1-flash-image"

[[models]]
key = "bench-grok-video-{n}"
provider = "xai"
modality = "video"
api_model = "grok-imagine-video"
durations_s = [4]
"""


def _remote_specs(providers: ProviderSet) -> list[ModelSpec]:
    specs = [spec for spec in providers.registry.specs() if spec.provider != "local" and spec.retired_on is None]
    if len(specs) != MODELS:
        raise SystemExit(f"expected {MODELS} remote models, found {len(specs)}")
    return specs


def _listing_request(fake: FakeProviders, spec: ModelSpec) -> tuple[str, dict[str, str]]:
    """What a bare client sends for the same check: URL and auth header."""
    model = spec.api_model
    if spec.provider == "openai":
        return f"{fake.openai_base_url}/models/{model}", {"Authorization": f"Bearer {KEYS['openai_api_key']}"}
    if spec.provider == "google":
        return f"{fake.gemini_base_url}/v1beta/models/{model}", {"x-goog-api-key": KEYS["gemini_api_key"]}
    listing = {"image": "image-generation-models", "video": "video-generation-models"}.get(spec.modality, "models")
    return f"{fake.xai_base_url}/{listing}/{model}", {"Authorization": f"Bearer {KEYS['xai_api_key']}"}


async def _scenario(rtt_s: float, folder: Path) -> dict[str, Any]:
    import httpx

    from bot.health.probes import probe, probe_many
    from bot.providers import ProviderSet
    from bot.routing.registry import Registry
    from bot.settings import load_settings
    from tests.fakes.providers import FakeProviders, Fault

    models_file = folder / "models.toml"
    models_file.write_text("".join(EXTRA_MODELS.format(n=n) for n in range(3)))
    async with FakeProviders() as fake:
        if rtt_s:
            for provider in ("openai", "google", "xai"):
                fake.fail_always(f"{provider}.*", Fault.latency(rtt_s))
        settings = load_settings(
            **KEYS,
            openai_base_url=fake.openai_base_url,
            google_gemini_base_url=fake.gemini_base_url,
            xai_base_url=fake.xai_base_url,
            models_file=models_file,
            provider_timeout_s=30.0,
            media_dir=folder / "media",
        )
        providers = ProviderSet(settings, Registry.load(settings))
        specs = _remote_specs(providers)
        raw_requests = [_listing_request(fake, spec) for spec in specs]
        now = time.time()

        async def cycle() -> None:
            probes = await probe_many(functools.partial(probe, providers), specs, now, concurrency=CONCURRENCY)
            if not all(result.ok for result in probes):
                raise SystemExit(f"a probe failed: {[p.detail for p in probes if not p.ok]}")

        async def sequential() -> None:
            for spec in specs:
                if not (await probe(providers, spec, now)).ok:
                    raise SystemExit(f"the probe of {spec.key} failed")

        async with httpx.AsyncClient(timeout=30.0) as client:

            async def baseline() -> None:
                for url, headers in raw_requests:
                    (await client.get(url, headers=headers)).raise_for_status()

            arms = {"cycle": cycle, "sequential": sequential, "baseline": baseline}
            for arm in arms.values():  # connections and SDK clients are set up outside the figures
                await arm()
            walls: dict[str, list[float]] = {name: [] for name in arms}
            requests: dict[str, set[int]] = {name: set() for name in arms}
            try:
                for index in range(CYCLES):
                    for name in list(arms) if index % 2 == 0 else reversed(arms):
                        before = len(fake.requests)
                        started = time.perf_counter()
                        await arms[name]()
                        walls[name].append((time.perf_counter() - started) * 1000)
                        requests[name].add(len(fake.requests) - before)
            finally:
                await providers.aclose()
    result: dict[str, Any] = {"rtt_ms": rtt_s * 1000}
    for name in arms:
        if requests[name] != {MODELS}:
            raise SystemExit(f"{name}: expected {MODELS} requests a cycle, the fake saw {sorted(requests[name])}")
        result[f"{name}_ms"] = statistics.median(walls[name])
        result[f"{name}_requests"] = MODELS
    return result


def _child(mode: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        emit(asyncio.run(_scenario(RTT_S if mode == "rtt" else 0.0, Path(folder))))


def main() -> None:
    print(f"health cycle: {MODELS} remote models, {CYCLES} cycles per arm, median ({machine()})")
    for mode, title in (("loopback", "fake on loopback"), ("rtt", f"fake holds each listing {RTT_S * 1000:g} ms")):
        result = run_mode("bench.health_cycle", mode)
        base = result["baseline_ms"]
        print(f"  {title}")
        print(f"    baseline (bare httpx GETs in turn)   {base:8.1f} ms   {result['baseline_requests']} requests")
        for name, label in (("sequential", "probe in turn"), ("cycle", f"probe_many, {CONCURRENCY} at a time")):
            wall = result[f"{name}_ms"]
            print(f"    {label:<36} {wall:8.1f} ms   {result[f'{name}_requests']} requests   {ratio(wall, base)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("loopback", "rtt"))
    args = parser.parse_args()
    _child(args.mode) if args.mode else main()
