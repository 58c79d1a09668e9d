"""/status, the health endpoints and the alert channel: the real StoryBot against the fake Discord, in one
process (``all``) and as a gateway with workers on PostgreSQL."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from bot.app import GATEWAY, WORKER
from bot.domain import CallRecord, GuildConfig
from bot.health.chart import HEIGHT, WIDTH
from storage import guilds
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import GUILD_ID, FakeMessage
from tests.support.discord_harness import OWNER, make_settings, running, wait_for_story

NO_WORKER = "⚠️ No worker is running, so stories will not start."


async def status_embed(fake: FakeDiscord) -> dict[str, Any]:
    """The owner's /status answer: its one embed."""
    status = await fake.slash(OWNER, "status")
    await status.ack()

    def answered() -> FakeMessage | None:
        return status.original if status.original and status.original.embeds else None

    message = await fake.wait_until(answered, what="/status answer")
    [embed] = message.embeds
    return embed


async def fetch(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def test_status_shows_every_model_and_attaches_a_decodable_chart(
    fake: FakeDiscord, tmp_path: Path, reserved_port: int
) -> None:
    port = reserved_port
    async with running(make_settings(tmp_path, fake, health_http_port=port)):
        story = await fake.slash(OWNER, "story", "new", options={"prompt": "a heron learns to sing", "scenes": 1})
        await story.ack()
        await wait_for_story(fake, story, scenes=1, video=False)

        status = await fake.slash(OWNER, "status")
        ack = await status.ack()
        assert (ack.type, ack.status, ack.ephemeral) == (5, 200, True)
        message = await fake.wait_until(
            lambda: status.original if status.original and status.original.embeds else None, what="/status answer"
        )
        [embed] = message.embeds
        fields = {field["name"]: field["value"] for field in embed["fields"]}
        assert fields["🟢 local-template"].startswith("up · success 100 % · p50/p95 ")
        assert fields["🟢 local-sketch"].startswith("up · success 100 % · p50/p95 ")
        assert fields["⚪ gpt-image-1.5"] == "unconfigured"
        assert fields["🟢 local-kenburns"] == "up"  # never called: no figures
        assert embed["description"].startswith("Queue: 0 waiting")
        assert "No worker" not in embed["description"]
        [process] = fields["Processes: 1 running"].splitlines()  # this one process, its workers and its shard
        assert process.startswith("**all** · ") and " · 4 worker slots · shards 0 of 1 · beat " in process, process
        assert embed["fields"][-1]["name"] == "Processes: 1 running"
        assert embed["image"]["url"] == "attachment://status.png"
        chart = Image.open(io.BytesIO(message.attachment("status.png").data))
        chart.load()
        assert (chart.format, chart.size) == ("PNG", (WIDTH, HEIGHT))

        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/health") as response:
            assert response.status == 200
            body = await response.json()
        assert body["models"]["local-sketch"]["state"] == "up"
        assert body["discord"] == {"connected": True} and body["database"] == {"ok": True}
        process = body["process"]
        assert (process["role"], process["shards"], process["worker_slots"]) == ("all", "0 of 1", 4)
        _, text = await fetch(port, "/metrics")
        assert process_labels(text) == {("all", "0 of 1")}  # on every metric


async def test_an_alert_reaches_the_servers_alert_channel_once(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, fake, health_http_port=0)) as bot:
        health = bot.runtime.health
        await health.stop()  # the test ticks by hand
        async with bot.runtime.db.transaction() as conn:
            await guilds.upsert(conn, GuildConfig(guild_id=GUILD_ID, alert_channel_id=fake.channel_id))
        health.recorder(CallRecord("local-sketch", health.clock.now(), 31_000.0, None, False))  # one slow answer
        await health.tick()
        await health.tick()
        alerts = [m for m in fake.channel_messages() if "Alert" in m.content]
        assert [m.content for m in alerts] == ["🚨 Alert: local-sketch took 31 s to answer a call (the limit is 30 s)"]
        assert alerts[0].allowed_mentions is not None and alerts[0].allowed_mentions["parse"] == []


async def test_a_gateways_status_lists_its_workers_and_says_when_none_runs(
    fake: FakeDiscord, tmp_path: Path, postgres_url: str, reserved_port: int
) -> None:
    settings = make_settings(tmp_path, fake, database_url=postgres_url)
    with_health = make_settings(tmp_path, fake, database_url=postgres_url, health_http_port=reserved_port)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(running(settings, role=GATEWAY))

        embed = await status_embed(fake)  # a gateway alone: it queues, and nothing would render
        assert embed["description"].splitlines()[-1] == NO_WORKER
        [alone] = fields_of(embed)["Processes: 1 running"].splitlines()
        assert alone.startswith("**gateway** · ") and re.search(r" · shards 0 of 1 · beat \d s ago$", alone), alone

        first = await stack.enter_async_context(running(with_health, role=WORKER))
        await stack.enter_async_context(running(settings, role=WORKER))
        embed = await status_embed(fake)

        assert "No worker" not in embed["description"]
        lines = fields_of(embed)["Processes: 3 running"].splitlines()
        assert sorted(line.split(" · ")[0] for line in lines) == ["**gateway**", "**worker**", "**worker**"]
        workers = [line for line in lines if line.startswith("**worker**")]
        assert all(" · 4 worker slots · beat " in line and "shards" not in line for line in workers), workers

        status, text = await fetch(reserved_port, "/health")  # the first worker's
        process = json.loads(text)["process"]
        assert status == 200, text
        assert (process["role"], process["shards"], process["id"]) == ("worker", None, first.runtime.process_id)
        _, text = await fetch(reserved_port, "/metrics")
        assert process_labels(text) == {("worker", "none")}


def fields_of(embed: dict[str, Any]) -> dict[str, str]:
    return {field["name"]: field["value"] for field in embed["fields"]}


def process_labels(metrics: str) -> set[tuple[str, str]]:
    """The (role, shard) labels of every sample in a /metrics answer."""
    families = text_string_to_metric_families(metrics)
    return {(sample.labels["role"], sample.labels["shard"]) for family in families for sample in family.samples}
