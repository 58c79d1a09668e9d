"""/status, the health endpoints and the alert channel: the real StoryBot against the fake Discord."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
from PIL import Image

from bot.domain import CallRecord, GuildConfig
from bot.health.chart import HEIGHT, WIDTH
from storage import guilds
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import GUILD_ID
from tests.support.discord_harness import OWNER, make_settings, running, wait_for_story


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
        assert embed["image"]["url"] == "attachment://status.png"
        chart = Image.open(io.BytesIO(message.attachment("status.png").data))
        chart.load()
        assert (chart.format, chart.size) == ("PNG", (WIDTH, HEIGHT))

        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/health") as response:
            assert response.status == 200
            body = await response.json()
        assert body["models"]["local-sketch"]["state"] == "up"
        assert body["discord"] == {"connected": True} and body["database"] == {"ok": True}


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
