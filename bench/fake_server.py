"""The fake provider server in its own process, so its CPU time and buffers never count against a bench.

``with fake_server(FakeSetup(...)) as url:`` starts ``python -m bench.fake_server '<setup json>'``,
which runs ``tests.fakes.providers.FakeProviders`` configured from the setup and prints its URL;
closing its stdin stops it (it then prints what it sent, for ``counters``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_SCENES = 10


@dataclass(frozen=True)
class FakeSetup:
    clip_bytes: int | None = None  # pad every clip to this size (still a playable MP4)
    latency_s: dict[str, float] = field(default_factory=dict)  # route -> fixed delay before every answer
    video_render_s: float | None = None  # a clip is pending until this long after its submit
    video_pending_polls: int = 0  # used when video_render_s is None
    # route -> a Fault factory and its arguments, answered on every request: {"openai.chat": ["drip", 0.5]}
    faults: dict[str, list[Any]] = field(default_factory=dict)


def story_reply() -> str:
    """A chat answer with enough scenes for any story (the parser keeps the first scene_count)."""
    scenes = [f"Scene {n}: Mira follows the lantern's light a little further." for n in range(1, MAX_SCENES + 1)]
    bible = "Mira: a small girl with a red scarf and a brass lantern. Style: warm watercolour."
    return json.dumps({"title": "The Lantern Keeper", "bible": bible, "scenes": scenes})


async def _serve(setup: FakeSetup) -> None:
    from tests.fakes.providers import FakeProviders, Fault

    async with FakeProviders() as fake:
        fake.text_reply = story_reply()
        fake.video_size = setup.clip_bytes
        fake.video_render_s = setup.video_render_s
        fake.video_pending_polls = setup.video_pending_polls
        for route, seconds in setup.latency_s.items():
            fake.fail_always(route, Fault.latency(seconds))
        for route, (factory, *arguments) in setup.faults.items():
            fake.fail_always(route, getattr(Fault, factory)(*arguments))
        print(fake.url, flush=True)
        await asyncio.to_thread(sys.stdin.read)  # serve until the parent closes our stdin
        counters = {"clip_bytes_sent": fake.clip_bytes_sent, "dripped_bytes": fake.dripped_bytes}
        print(json.dumps(counters), flush=True)


@contextlib.contextmanager
def fake_server(setup: FakeSetup, counters: dict[str, int] | None = None) -> Iterator[str]:
    """Start FakeProviders in a separate process; yield its base URL. Once it has stopped, ``counters``
    (when given) holds what it sent: ``clip_bytes_sent`` and ``dripped_bytes``."""
    command = [sys.executable, "-m", "bench.fake_server", json.dumps(asdict(setup))]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"the fake provider server did not start (said {url!r})")
        yield url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if counters is not None and proc.stdout is not None:
            last = proc.stdout.read().strip().splitlines()
            counters.update(json.loads(last[-1]) if last else {})


if __name__ == "__main__":
    asyncio.run(_serve(FakeSetup(**json.loads(sys.argv[1]))))
