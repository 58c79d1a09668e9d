"""The real StoryBot (Runtime with the local models, DiscordPublisher) run against the fake Discord, and the
waits that tell when a story has been posted. The ``fake`` fixture itself is in tests/e2e/conftest.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
from PIL import Image

from bot.app import ALL, WORKER, StoryBot, build_runtime, discord_endpoints
from bot.domain import JobStatus
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import FakeMessage

OWNER = 201
CLIP_LIMIT = 90_000  # above the local pictures (~45-65 kB), below their clips (~120-180 kB): every clip is re-encoded
STORY_TIMEOUT_S = 30.0


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def make_settings(tmp_path: Path, fake: FakeDiscord, **overrides: Any) -> Settings:
    return load_settings(
        database_path=tmp_path / "db" / "storybot.db",
        media_dir=tmp_path / "media",
        discord_token=fake.token,
        discord_api_base=fake.base_url,  # without /api/v10: the bot appends it
        discord_gateway_url=fake.gateway_url,
        video_poll_s=0,
        **{"health_http_port": 0, **overrides},  # /health is tested on its own port, not 8080
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, *, role: str = ALL, **publisher_options: Any) -> AsyncIterator[StoryBot]:
    """The bot in ``role``: ``all`` and ``gateway`` connect to the fake gateway, a ``worker`` logs in over REST."""
    runtime: Runtime = build_runtime(settings, role=role)
    with discord_endpoints(settings):
        await runtime.open()
        bot = StoryBot(
            runtime,
            publisher_options=publisher_options,
            worker_options={"idle_poll_s": 0.05},
            guild_ready_timeout=0.1,
            chunk_guilds_at_startup=False,
        )
        task = asyncio.create_task(_serve(bot, settings.discord_token.get_secret_value()))  # type: ignore[union-attr]
        ready = asyncio.create_task(bot.ready_once.wait())
        try:
            done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                task.result()
            assert ready in done, "the bot never became ready"
            yield bot
        finally:
            ready.cancel()
            await bot.close()
            await asyncio.wait_for(task, timeout=15)
            await runtime.close()


async def _serve(bot: StoryBot, token: str) -> None:
    """As ``bot.app._serve`` does, without its login retries: a worker stays logged in until closed."""
    if bot.role == WORKER:
        await bot.login(token)
        await bot.stopping.wait()
    else:
        await bot.start(token)


def embed_text(message: FakeMessage) -> str:
    [embed] = message.embeds
    fields = " | ".join(f"{f['name']}: {f['value']}" for f in embed.get("fields", []))
    return f"{embed.get('title')} / {embed.get('description')} / {fields}"


def storyboard_done(fake: FakeDiscord, message_id: int, scenes: int, video: bool) -> bool:
    message = fake.messages_by_id.get(message_id)
    if message is None or not message.embeds:
        return False
    text = embed_text(message)
    expected = f"Done: drawn {scenes} of {scenes}" + (f", animated {scenes} of {scenes}" if video else "")
    return expected in text and text.count("✅ done") == scenes


def thread_complete(fake: FakeDiscord, thread_id: int, scenes: int, video: bool) -> bool:
    posted = fake.channel_messages(thread_id)
    files = [a.filename for m in posted for a in m.attachments]
    finished = any("is finished" in m.content for m in posted)
    return finished and len(files) == scenes * (2 if video else 1)


async def wait_for_story(fake: FakeDiscord, handle: Any, scenes: int, video: bool) -> FakeMessage:
    """The storyboard once it shows every scene done and the thread holds every file and the final note."""
    await fake.wait_until(lambda: handle.original and handle.original.embeds, STORY_TIMEOUT_S, "storyboard")
    board = handle.original
    await fake.wait_until(lambda: thread_complete(fake, board.id, scenes, video), STORY_TIMEOUT_S, "thread")
    await fake.wait_until(lambda: storyboard_done(fake, board.id, scenes, video), STORY_TIMEOUT_S, "storyboard done")
    return board


async def wait_until_idle(bot: StoryBot, timeout_s: float = STORY_TIMEOUT_S) -> None:
    """Until no job is queued or running and no storyboard edit is pending: the database stops changing."""
    publisher = bot.publisher
    assert publisher is not None, "the bot has not logged in: setup_hook builds the publisher"
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        counts = await bot.runtime.queue.counts()
        if counts[JobStatus.QUEUED] == counts[JobStatus.RUNNING] == 0 and publisher.updater.pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the bot was still busy after {timeout_s} s: {await bot.runtime.queue.counts()}")


def decode_clip(data: bytes) -> int:
    with av.open(io.BytesIO(data), mode="r") as container:
        return len(list(container.decode(video=0)))
