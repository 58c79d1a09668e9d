"""The fake Discord driven by a real discord.py client: a throwaway bot proves each emulated behaviour."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.clock import FakeClock
from tests.fakes.discord import CallbackRejected, FakeDiscord
from tests.fakes.discord_interactions import OPTION_NUMBER, Typed, command_data
from tests.fakes.discord_state import APP_ID, GUILD_ID, PERM_MANAGE_MESSAGES, TEXT_CHANNEL_ID

OWNER, STRANGER, MODERATOR = 201, 202, 203
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x01\x02" * 700
MODELS = ["flux-dev", "flux-pro", "imagen-4", "gpt-image-1"]


class RetryButton(discord.ui.DynamicItem[discord.ui.Button], template=r"retry:scene:(?P<id>[0-9a-f]+)"):
    def __init__(self, scene_id: str) -> None:
        super().__init__(discord.ui.Button(label="Retry", custom_id=f"retry:scene:{scene_id}"))
        self.scene_id = scene_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: object
    ) -> RetryButton:
        return cls(match["id"])  # type: ignore[index]

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        assert isinstance(interaction.client, ThrowawayBot)
        interaction.client.clicks.append((interaction.user.id, self.scene_id))
        await interaction.followup.send(f"retrying {self.scene_id}", ephemeral=True)


class RedrawButton(discord.ui.DynamicItem[discord.ui.Button], template=r"redraw:scene:(?P<id>[0-9a-f]+)"):
    def __init__(self, scene_id: str) -> None:
        super().__init__(discord.ui.Button(label="Redraw", custom_id=f"redraw:scene:{scene_id}"))
        self.scene_id = scene_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item, match: object
    ) -> RedrawButton:
        return cls(match["id"])  # type: ignore[index]

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"redrawing {self.scene_id}", view=None)


def story_group() -> app_commands.Group:
    story = app_commands.Group(name="story", description="Illustrated stories")

    @story.command(name="new", description="Start a story")
    async def story_new(
        interaction: discord.Interaction,
        prompt: str,
        image_model: str | None = None,
        style: str | None = None,
        reference: discord.Attachment | None = None,
        stall_defer: bool = False,
        stall_followup: bool = False,
    ) -> None:
        bot = interaction.client
        assert isinstance(bot, ThrowawayBot)
        try:
            if stall_defer:
                await bot.release_defer.wait()
            await interaction.response.defer()
            if stall_followup:
                await bot.release_followup.wait()
            view = discord.ui.View(timeout=None)
            view.add_item(RetryButton("ab12"))
            view.add_item(RedrawButton("ab12"))
            files = [discord.File(io.BytesIO(PNG), "scene.png"), discord.File(io.BytesIO(MP4), "clip.mp4")]
            note = f" ref={len(await reference.read())}" if reference else ""
            await interaction.followup.send(f"story: {prompt}{note}", files=files, view=view)
        except discord.HTTPException as error:
            bot.http_errors.append(error)

    @story.command(name="ping", description="Answer privately, then edit the answer")
    async def story_ping(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("pong", ephemeral=True)
        await interaction.edit_original_response(content="pong!")

    @story_new.autocomplete("image_model")
    async def image_models(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=m, value=m) for m in MODELS if current in m]

    @story_new.autocomplete("style")
    async def too_many_styles(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=f"style {i}", value=f"s{i}") for i in range(30)]

    return story


class ThrowawayBot(commands.Bot):
    def __init__(self) -> None:
        intents = discord.Intents.default()
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.1, chunk_guilds_at_startup=False)
        self.clicks: list[tuple[int, str]] = []
        self.http_errors: list[discord.HTTPException] = []
        self.release_defer = asyncio.Event()
        self.release_followup = asyncio.Event()
        self.ready_event = asyncio.Event()
        self.tree.add_command(story_group())

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RetryButton, RedrawButton)
        await self.tree.sync()

    async def on_ready(self) -> None:
        self.ready_event.set()


@contextlib.asynccontextmanager
async def running(token: str) -> AsyncIterator[ThrowawayBot]:
    bot = ThrowawayBot()
    task = asyncio.create_task(bot.start(token))
    ready = asyncio.create_task(bot.ready_event.wait())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        assert ready in done, "bot never became ready"
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        await asyncio.wait_for(task, timeout=5)


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(clock=clock) as server:
        server.add_member(OWNER, "owner")
        server.add_member(STRANGER, "stranger")
        server.add_member(MODERATOR, "moderator", PERM_MANAGE_MESSAGES)
        with server.patch_discord():
            yield server


async def story_message(fake: FakeDiscord, user_id: int = OWNER, **options: object) -> int:
    handle = await fake.slash(user_id, "story", "new", options={"prompt": "a cat", **options})
    await fake.wait_until(lambda: handle.original and handle.original.attachments, what="story followup")
    assert handle.original is not None
    return handle.original.id


async def test_login_syncs_commands_and_becomes_ready(fake: FakeDiscord) -> None:
    async with running(fake.token) as bot:
        assert bot.user is not None and bot.user.id == APP_ID
        assert bot.application_id == APP_ID
        guild = bot.get_guild(GUILD_ID)
        assert guild is not None and guild.member_count == len(fake.members)
        assert "moderator-role" in [role.name for role in guild.roles]
        routes = [r.route for r in fake.requests]
        assert routes[:3] == ["get_me", "get_application", "sync_commands"]
        [story] = fake.global_commands
        assert story["id"] and [o["name"] for o in story["options"]] == ["new", "ping"]


async def test_slash_defers_and_first_followup_edits_the_loading_message(fake: FakeDiscord) -> None:
    async with running(fake.token):
        reference = fake.upload("ref.png", PNG)
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "a cat", "reference": reference})
        ack = await handle.ack()
        assert (ack.type, ack.status) == (5, 200)
        assert 0 <= ack.elapsed_s < 3
        await fake.wait_until(lambda: handle.original and not handle.original.loading, what="followup")
        original = handle.original
        assert original is not None
        assert original.content == f"story: a cat ref={len(PNG)}"
        assert handle.followups == []  # the followup replaced the loading message
        assert original.attachment("scene.png").data == PNG
        assert original.attachment("clip.mp4").data == MP4
        assert original.custom_ids == ["retry:scene:ab12", "redraw:scene:ab12"]
        assert fake.channel_messages() == [original]
        async with aiohttp.ClientSession() as session, session.get(original.attachment("clip.mp4").url) as response:
            assert await response.read() == MP4


async def test_autocomplete_returns_the_bots_choices(fake: FakeDiscord) -> None:
    async with running(fake.token):
        choices = await fake.autocomplete(OWNER, "story", "new", options={"image_model": "flux"}, focused="image_model")
        assert [c["name"] for c in choices] == ["flux-dev", "flux-pro"]


async def test_autocomplete_with_more_than_25_choices_is_refused(fake: FakeDiscord) -> None:
    async with running(fake.token):
        with pytest.raises(CallbackRejected) as refused:
            await fake.autocomplete(OWNER, "story", "new", focused="style")
        assert refused.value.error.code == 50035
        assert [e.code for e in fake.errors] == [50035]


async def test_dynamic_item_click_fires_and_survives_a_bot_restart(fake: FakeDiscord) -> None:
    async with running(fake.token) as bot:
        message_id = await story_message(fake)
        handle = await fake.click(STRANGER, message_id, "retry:scene:ab12")
        assert (await handle.ack()).type == 6
        await fake.wait_until(lambda: handle.followups, what="click followup")
        assert bot.clicks == [(STRANGER, "ab12")]
        assert handle.followups[0].ephemeral
    async with running(fake.token) as restarted:
        handle = await fake.click(OWNER, message_id, "retry:scene:ab12")
        assert (await handle.ack()).type == 6
        await fake.wait_until(lambda: restarted.clicks, what="click after restart")
        assert restarted.clicks == [(OWNER, "ab12")]
    assert fake.gateway.identifies == 2


async def test_send_message_is_ephemeral_and_edit_original_updates_it(fake: FakeDiscord) -> None:
    async with running(fake.token):
        handle = await fake.slash(OWNER, "story", "ping")
        ack = await handle.ack()
        assert (ack.type, ack.ephemeral) == (4, True)
        await fake.wait_until(lambda: handle.original and handle.original.content == "pong!", what="edit")
        assert handle.original is not None and handle.original.ephemeral


async def test_edit_message_callback_updates_the_clicked_message(fake: FakeDiscord) -> None:
    async with running(fake.token):
        message_id = await story_message(fake)
        handle = await fake.click(OWNER, message_id, "redraw:scene:ab12")
        assert (await handle.ack()).type == 7
        message = fake.message(message_id)
        assert (message.content, message.components) == ("redrawing ab12", [])
        with pytest.raises(LookupError):
            await fake.click(OWNER, message_id, "redraw:scene:ab12")


async def test_gateway_resume_keeps_the_session(fake: FakeDiscord) -> None:
    async with running(fake.token):
        await fake.restart_gateway()
        await story_message(fake)
        assert fake.gateway.identifies == 1
        assert fake.gateway.sessions[0].resumes == 1


async def test_429_with_via_header_is_retried(fake: FakeDiscord) -> None:
    fake.inject("webhook_execute", status=429, retry_after=0.05)
    async with running(fake.token) as bot:
        await story_message(fake)
        assert [r.status for r in fake.requests_to("webhook_execute")] == [429, 200]
        assert bot.http_errors == []


async def test_overlong_content_is_rejected_with_50035(fake: FakeDiscord) -> None:
    async with running(fake.token) as bot:
        channel = bot.get_channel(TEXT_CHANNEL_ID)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as rejected:
            await channel.send("x" * 2001)
        assert (rejected.value.status, rejected.value.code) == (400, 50035)
        assert fake.channel_messages() == []
        assert fake.errors[-1].errors["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"


async def test_followup_after_token_expiry_fails(fake: FakeDiscord, clock: FakeClock) -> None:
    async with running(fake.token) as bot:
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "slow", "stall_followup": True})
        assert (await handle.ack()).type == 5
        clock.advance(fake.token_ttl_s + 1)
        bot.release_followup.set()
        await fake.wait_until(lambda: bot.http_errors, what="followup error")
        [error] = bot.http_errors
        assert (error.status, error.code) == (401, 50027)


async def test_late_callback_gets_10062(fake: FakeDiscord, clock: FakeClock) -> None:
    async with running(fake.token) as bot:
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "late", "stall_defer": True})
        clock.advance(fake.ack_deadline_s + 0.5)
        bot.release_defer.set()
        ack = await handle.ack()
        assert ack.status == 404 and ack.error is not None and ack.error.code == 10062
        await fake.wait_until(lambda: bot.http_errors, what="defer error")
        assert isinstance(bot.http_errors[0], discord.NotFound)


async def test_second_callback_gets_40060(fake: FakeDiscord) -> None:
    async with running(fake.token):
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "twice"})
        await handle.ack()
        url = f"{fake.api_base}/interactions/{handle.id}/{handle.token}/callback?with_response=1"
        async with aiohttp.ClientSession() as session, session.post(url, json={"type": 5}) as response:
            assert response.status == 400
            assert response.headers["Content-Type"] == "application/json"
            assert (await response.json())["code"] == 40060


async def test_upload_over_the_interaction_limit_gets_413(fake: FakeDiscord) -> None:
    async with running(fake.token) as bot:
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": "big"}, attachment_size_limit=1000)
        await fake.wait_until(lambda: bot.http_errors, what="upload error")
        assert (bot.http_errors[0].status, bot.http_errors[0].code) == (413, 40005)
        assert handle.original is not None and handle.original.loading


async def test_threads_and_server_errors(fake: FakeDiscord) -> None:
    fake.inject("channel_send", status=502)
    async with running(fake.token) as bot:
        channel = bot.get_channel(TEXT_CHANNEL_ID)
        assert isinstance(channel, discord.TextChannel)
        message = await channel.send("storyboard", allowed_mentions=discord.AllowedMentions.none())
        thread = await message.create_thread(name="scenes")
        await thread.send("scene 1", file=discord.File(io.BytesIO(PNG), "scene1.png"))
        await message.edit(content="storyboard: done")
    assert [r.status for r in fake.requests_to("channel_send")] == [502, 200, 200]
    assert thread.id == message.id and [t.name for t in fake.threads()] == ["scenes"]
    [scene] = fake.channel_messages(thread.id)
    assert scene.attachment("scene1.png").data == PNG
    stored = fake.message(message.id)
    assert stored.content == "storyboard: done"
    assert stored.allowed_mentions == {"parse": []}


async def test_wrong_token_raises_login_failure(fake: FakeDiscord) -> None:
    bot = ThrowawayBot()
    try:
        with pytest.raises(discord.LoginFailure):
            await bot.login("not-the-token")
    finally:
        await bot.close()


async def post_message(fake: FakeDiscord, payload: dict[str, object], files: list[bytes] | None = None) -> dict:
    """Send a channel message straight over HTTP, as discord.py would, and return the JSON reply."""
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", json.dumps(payload), content_type="application/json")
    for index, data in enumerate(files or []):
        form.add_field(f"files[{index}]", data, filename=f"f{index}.bin", content_type="application/octet-stream")
    headers = {"Authorization": f"Bot {fake.token}"}
    url = f"{fake.api_base}/channels/{TEXT_CHANNEL_ID}/messages"
    async with aiohttp.ClientSession() as session, session.post(url, data=form, headers=headers) as response:
        body = await response.json()
        body["status"] = response.status
        return body


def row(*custom_ids: str) -> dict[str, object]:
    return {"type": 1, "components": [{"type": 2, "style": 1, "label": "b", "custom_id": c} for c in custom_ids]}


@pytest.mark.parametrize(
    ("payload", "file_count", "status", "code"),
    [
        ({"embeds": [{"title": "t" * 257}]}, 0, 400, 50035),
        ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, 0, 400, 50035),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, 0, 400, 50035),
        ({"content": "x", "components": [row(f"c{i}") for i in range(6)]}, 0, 400, 50035),
        ({"content": "x", "components": [row("c" * 101)]}, 0, 400, 50035),
        ({"content": "x", "components": [row("same", "same")]}, 0, 400, 50035),
        ({"content": "x"}, 11, 400, 30015),
        ({"content": "   "}, 0, 400, 50006),
        ({"content": "x" * 2000, "embeds": [{"description": "d" * 4096}]}, 10, 200, 0),
    ],
    ids=["title", "fields", "embed-total", "rows", "custom-id", "duplicate-id", "files", "empty", "at-limits"],
)
async def test_message_limits(
    fake: FakeDiscord, payload: dict[str, object], file_count: int, status: int, code: int
) -> None:
    reply = await post_message(fake, payload, [b"data"] * file_count)
    assert reply["status"] == status
    assert reply.get("code", 0) == code
    assert len(fake.channel_messages()) == (1 if status == 200 else 0)
    assert [e.code for e in fake.errors] == ([] if status == 200 else [code])


async def test_upload_over_the_guild_limit_gets_413(fake: FakeDiscord) -> None:
    fake.attachment_size_limit = 100
    reply = await post_message(fake, {"content": "clip"}, [b"x" * 101])
    assert (reply["status"], reply["code"]) == (413, 40005)


async def test_command_sync_enforces_description_length(fake: FakeDiscord) -> None:
    url = f"{fake.api_base}/applications/{APP_ID}/guilds/{GUILD_ID}/commands"
    commands_body = [{"name": "story", "description": "d" * 101, "type": 1}]
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as session, session.put(url, json=commands_body, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["errors"]["0"]["description"]["_errors"][0]["code"] == "BASE_TYPE_BAD_LENGTH"
    assert fake.guild_commands == []


def test_command_payload_shapes() -> None:
    command = {"id": "9", "name": "story", "guild_id": str(GUILD_ID)}
    data = command_data(
        command, "story", group="scene", subcommand="list", options={"story_id": 7, "raw": Typed(OPTION_NUMBER, 2)}
    )
    assert data["guild_id"] == str(GUILD_ID)
    [group] = data["options"]
    assert (group["type"], group["name"]) == (2, "scene")
    [sub] = group["options"]
    assert (sub["type"], sub["name"]) == (1, "list")
    assert sub["options"] == [
        {"type": 4, "name": "story_id", "value": 7},
        {"type": 10, "name": "raw", "value": 2},
    ]
    focused = command_data(None, "story", group=None, subcommand="new", options={"flag": True}, focused="model")
    assert focused["options"][0]["options"] == [
        {"type": 5, "name": "flag", "value": True},
        {"type": 3, "name": "model", "value": "", "focused": True},
    ]


async def test_twenty_concurrent_commands_are_each_acked_once(fake: FakeDiscord) -> None:
    async with running(fake.token):
        handles = await asyncio.gather(
            *(fake.slash(OWNER, "story", "new", options={"prompt": f"p{i}"}) for i in range(20))
        )
        acks = await asyncio.gather(*(h.ack() for h in handles))
        assert [a.type for a in acks] == [5] * 20
        await fake.wait_until(lambda: all(h.original and not h.original.loading for h in handles), what="followups")
        assert sorted(h.original.content for h in handles if h.original) == sorted(f"story: p{i}" for i in range(20))
        assert len(fake.callbacks) == 20
