"""The fake Discord behaves as Discord's docs say (issue #10, item 6), proved through the real discord.py client
where a client is involved and through raw HTTP where that is simpler.

Each behaviour cites its source in the fake's modules (tests/fakes/discord_*.py); the tests below are written
against those documents: discord/discord-api-docs (developers/topics/permissions.mdx, threads.mdx,
rate-limits.mdx, developers/resources/channel.mdx, message.mdx, user.mdx, developers/events/gateway.mdx) and
discord/discord-api-spec specs/openapi.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.clock import FakeClock
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_rest import NONCE_WINDOW_S
from tests.fakes.discord_state import (
    FLAG_HAS_THREAD,
    GUILD_ID,
    PERM_ADMINISTRATOR,
    PERM_ATTACH_FILES,
    PERM_CREATE_PUBLIC_THREADS,
    PERM_EMBED_LINKS,
    PERM_MANAGE_MESSAGES,
    PERM_MANAGE_THREADS,
    PERM_READ_MESSAGE_HISTORY,
    PERM_SEND_MESSAGES,
    PERM_SEND_MESSAGES_IN_THREADS,
    PERM_VIEW_CHANNEL,
    TEXT_CHANNEL_ID,
)

OWNER, MODERATOR, ADMIN = 201, 203, 204
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


class Probe(commands.Bot):
    """A throwaway bot that records what reaches it."""

    def __init__(self) -> None:
        super().__init__(
            command_prefix="!",
            intents=discord.Intents.default(),
            guild_ready_timeout=0.1,
            chunk_guilds_at_startup=False,
        )
        self.ready_event = asyncio.Event()
        self.seen: list[tuple[str, Any]] = []
        self.interactions: list[discord.Interaction] = []
        probe: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="probe", description="Record the interaction", callback=self._probe
        )
        self.tree.add_command(probe)

    async def _probe(self, interaction: discord.Interaction) -> None:
        self.interactions.append(interaction)
        await interaction.response.send_message("ok", ephemeral=True)

    async def setup_hook(self) -> None:
        await self.tree.sync()

    async def on_ready(self) -> None:
        self.ready_event.set()

    async def on_raw_thread_update(self, payload: discord.RawThreadUpdateEvent) -> None:
        self.seen.append(("thread_update", payload.data))

    async def on_raw_thread_delete(self, payload: discord.RawThreadDeleteEvent) -> None:
        self.seen.append(("thread_delete", payload.thread_id))

    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        self.seen.append(("channel_delete", channel.id))

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.seen.append(("message_edit", payload.data))

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(("message", message))

    def events(self, kind: str) -> list[Any]:
        return [data for name, data in self.seen if name == kind]

    def text_channel(self) -> discord.TextChannel:
        channel = self.get_channel(TEXT_CHANNEL_ID)
        assert isinstance(channel, discord.TextChannel)
        return channel


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord) -> AsyncIterator[Probe]:
    bot = Probe()
    task = asyncio.create_task(bot.start(fake.token))
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
        server.add_member(MODERATOR, "moderator", PERM_MANAGE_MESSAGES)  # given through a role of its own
        server.add_member(ADMIN, "admin", PERM_ADMINISTRATOR)
        with server.patch_discord():
            yield server


async def call(
    fake: FakeDiscord, method: str, path: str, body: dict[str, Any] | None = None, *, files: int = 0
) -> tuple[int, Any, dict[str, Any]]:
    """A bot-authenticated request straight to the fake: (status, headers, JSON body or {})."""
    headers = {"Authorization": f"Bot {fake.token}"}
    kwargs: dict[str, Any] = {"json": body} if body is not None and not files else {}
    if files:
        form = aiohttp.FormData(quote_fields=False)
        form.add_field("payload_json", json.dumps(body or {}), content_type="application/json")
        for index in range(files):
            form.add_field(f"files[{index}]", PNG, filename=f"f{index}.png", content_type="application/octet-stream")
        kwargs = {"data": form}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{fake.api_base}{path}", headers=headers, **kwargs) as response,
    ):
        raw = await response.read()
        return response.status, response.headers, (json.loads(raw) if raw else {})


async def refused(coro: Any) -> tuple[int, int]:
    with pytest.raises(discord.HTTPException) as caught:
        await coro
    return caught.value.status, caught.value.code


# 1. Permission overwrites ------------------------------------------------------------------------------------


async def test_overwrite_reaches_the_bot_and_missing_view_channel_is_50001(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        channel = bot.text_channel()
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_VIEW_CHANNEL)
        assert fake.channels[TEXT_CHANNEL_ID].payload(GUILD_ID)["permission_overwrites"] == [
            {"id": str(fake.bot_user.id), "type": 1, "allow": "0", "deny": str(PERM_VIEW_CHANNEL)}
        ]
        # CHANNEL_UPDATE reaches discord.py's cache: the client itself now computes the denial.
        await fake.wait_until(lambda: not channel.permissions_for(channel.guild.me).view_channel, what="overwrite")
        assert await refused(channel.send("hello")) == (403, 50001)
        assert await refused(bot.fetch_channel(TEXT_CHANNEL_ID)) == (403, 50001)
        assert await refused(bot.http.send_typing(TEXT_CHANNEL_ID)) == (403, 50001)
        assert fake.channel_messages() == []


async def test_send_needs_send_messages_and_files_need_attach_files(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        channel = bot.text_channel()
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_ATTACH_FILES)
        await channel.send("text is fine")
        assert await refused(channel.send("a file", file=discord.File(io.BytesIO(PNG), "a.png"))) == (403, 50013)
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_SEND_MESSAGES)  # replaces the bot's previous overwrite
        assert await refused(channel.send("no")) == (403, 50013)
        assert [m.content for m in fake.channel_messages()] == ["text is fine"]


async def test_permissions_follow_the_documented_overwrite_order(fake: FakeDiscord) -> None:
    [role_id] = fake.members[MODERATOR].role_ids
    assert fake.permissions_in(TEXT_CHANNEL_ID, MODERATOR) & PERM_SEND_MESSAGES
    fake.set_overwrite(TEXT_CHANNEL_ID, role_id=GUILD_ID, deny=PERM_SEND_MESSAGES)  # @everyone denies
    assert not fake.permissions_in(TEXT_CHANNEL_ID, MODERATOR) & PERM_SEND_MESSAGES
    assert not fake.permissions_in(TEXT_CHANNEL_ID, OWNER) & PERM_SEND_MESSAGES
    fake.set_overwrite(TEXT_CHANNEL_ID, role_id=role_id, allow=PERM_SEND_MESSAGES)  # the member's role allows
    assert fake.permissions_in(TEXT_CHANNEL_ID, MODERATOR) & PERM_SEND_MESSAGES
    assert not fake.permissions_in(TEXT_CHANNEL_ID, OWNER) & PERM_SEND_MESSAGES  # not OWNER's role
    fake.set_overwrite(TEXT_CHANNEL_ID, user_id=MODERATOR, deny=PERM_SEND_MESSAGES)  # the member's own wins
    assert not fake.permissions_in(TEXT_CHANNEL_ID, MODERATOR) & PERM_SEND_MESSAGES
    fake.set_overwrite(TEXT_CHANNEL_ID, user_id=ADMIN, deny=PERM_VIEW_CHANNEL)  # ADMINISTRATOR bypasses it
    assert fake.permissions_in(TEXT_CHANNEL_ID, ADMIN) & PERM_VIEW_CHANNEL
    assert not fake.permissions_in(TEXT_CHANNEL_ID) & PERM_MANAGE_THREADS  # the bot is no thread moderator


async def test_threads_inherit_overwrites_and_need_send_messages_in_threads(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        channel = bot.text_channel()
        message = await channel.send("storyboard")
        thread = await message.create_thread(name="scenes")
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_SEND_MESSAGES)  # no effect in threads (threads.mdx)
        await thread.send("scene 1")
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_SEND_MESSAGES_IN_THREADS)
        assert await refused(thread.send("scene 2")) == (403, 50013)
        await channel.send("the channel still works")
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_VIEW_CHANNEL)
        assert await refused(thread.fetch_message(message.id)) == (403, 50001)
        assert [m.content for m in fake.channel_messages(thread.id)] == ["scene 1"]


async def test_starting_a_thread_needs_create_public_threads(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        message = await bot.text_channel().send("storyboard")
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_CREATE_PUBLIC_THREADS)
        assert await refused(message.create_thread(name="scenes")) == (403, 50013)
        assert fake.threads() == []


async def test_reading_a_message_needs_read_message_history(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        channel = bot.text_channel()
        message = await channel.send("storyboard")
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_READ_MESSAGE_HISTORY)
        assert await refused(channel.fetch_message(message.id)) == (403, 50013)


async def test_editing_own_message_needs_view_channel_but_not_send_messages(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        message = await bot.text_channel().send("draft")
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_SEND_MESSAGES)
        await message.edit(content="final")
        assert fake.message(message.id).content == "final"
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_VIEW_CHANNEL)
        assert await refused(message.edit(content="again")) == (403, 50001)


async def test_embeds_without_embed_links_are_dropped_or_refused(fake: FakeDiscord) -> None:
    fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_EMBED_LINKS)
    path = f"/channels/{TEXT_CHANNEL_ID}/messages"
    embed = {"title": "scene", "description": "a cat"}
    status, _, body = await call(fake, "POST", path, {"embeds": [embed]})
    assert (status, body["code"]) == (403, 50013)  # embeds only: nothing would be left
    status, _, body = await call(fake, "POST", path, {"content": "with text", "embeds": [embed]})
    assert (status, body["embeds"]) == (200, [])  # sent, without its embeds
    status, _, body = await call(fake, "PATCH", f"{path}/{body['id']}", {"content": "", "embeds": [embed]})
    assert (status, body["code"]) == (400, 50006)  # the edit's embeds are ignored, leaving it empty
    assert [(m.content, m.embeds) for m in fake.channel_messages()] == [("with text", [])]


async def test_interactions_carry_the_permissions_in_their_channel(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_ATTACH_FILES)
        fake.set_overwrite(TEXT_CHANNEL_ID, user_id=OWNER, deny=PERM_SEND_MESSAGES)
        handle = await fake.slash(OWNER, "probe")
        assert (await handle.ack()).type == 4
        assert int(handle.payload["app_permissions"]) == fake.permissions_in(TEXT_CHANNEL_ID)
        assert int(handle.payload["member"]["permissions"]) == fake.permissions_in(TEXT_CHANNEL_ID, OWNER)
        [interaction] = bot.interactions
        assert not interaction.app_permissions.attach_files and interaction.app_permissions.send_messages
        assert not interaction.permissions.send_messages and interaction.permissions.view_channel


# 2. Threads that archive, lock and disappear ----------------------------------------------------------------


async def test_idle_thread_archives_on_the_clock_and_a_send_unarchives_it(fake: FakeDiscord, clock: FakeClock) -> None:
    async with running(fake) as bot:
        board = await bot.text_channel().send("storyboard")
        thread = await board.create_thread(name="scenes", auto_archive_duration=60)
        scene = await thread.send("scene 1")
        clock.advance(59 * 60)
        assert not fake.thread_state(thread.id).archived
        clock.advance(61)
        assert fake.thread_state(thread.id).archived  # the clock alone archives it
        await fake.wait_until(lambda: bot.events("thread_update"), what="THREAD_UPDATE")
        metadata = bot.events("thread_update")[-1]["thread_metadata"]
        assert (metadata["archived"], metadata["locked"], metadata["auto_archive_duration"]) == (True, False, 60)
        archived_at = datetime.datetime.fromisoformat(metadata["archive_timestamp"]).timestamp()
        assert archived_at == pytest.approx(fake.thread_state(thread.id).last_activity_at + 60 * 60)
        assert fake.guild_create_payload()["threads"] == []  # GUILD_CREATE lists active threads only
        assert await refused(scene.edit(content="scene 1, redrawn")) == (400, 50083)
        await thread.send("scene 2")  # sending unarchives an unlocked thread
        assert not fake.thread_state(thread.id).archived
        unarchived = lambda: bot.events("thread_update")[-1]["thread_metadata"]["archived"] is False  # noqa: E731
        await fake.wait_until(unarchived, what="THREAD_UPDATE unarchived")
        assert [m.content for m in fake.channel_messages(thread.id)] == ["scene 1", "scene 2"]


async def test_messages_keep_a_thread_active(fake: FakeDiscord, clock: FakeClock) -> None:
    status, _, board = await call(fake, "POST", f"/channels/{TEXT_CHANNEL_ID}/messages", {"content": "board"})
    status, _, thread = await call(
        fake, "POST", f"/channels/{TEXT_CHANNEL_ID}/messages/{board['id']}/threads",
        {"name": "scenes", "auto_archive_duration": 60},
    )  # fmt: skip
    assert status == 201
    for _ in range(3):
        clock.advance(50 * 60)
        assert (await call(fake, "POST", f"/channels/{thread['id']}/messages", {"content": "more"}))[0] == 200
        assert not fake.thread_state(int(thread["id"])).archived
    clock.advance(60 * 60)
    assert fake.thread_state(int(thread["id"])).archived
    status, _, body = await call(fake, "GET", f"/channels/{thread['id']}")
    assert body["thread_metadata"]["archived"] is True
    assert (await call(fake, "POST", "/channels/1/threads", {"name": "x", "auto_archive_duration": 30}))[0] == 404
    status, _, body = await call(
        fake, "POST", f"/channels/{TEXT_CHANNEL_ID}/threads", {"name": "x", "auto_archive_duration": 30}
    )
    assert (status, body["code"]) == (400, 50035)  # 60, 1440, 4320 or 10080 minutes only


async def test_locked_thread_refuses_the_bot_without_manage_threads(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        board = await bot.text_channel().send("storyboard")
        thread = await board.create_thread(name="scenes")
        scene = await thread.send("scene 1")
        fake.lock_thread(thread.id)
        state = fake.thread_state(thread.id)
        assert (state.archived, state.locked) == (True, True)
        assert await refused(thread.send("scene 2")) == (403, 160005)
        assert await refused(bot.http.edit_channel(thread.id, archived=False)) == (403, 50013)
        assert await refused(scene.delete()) == (400, 50083)  # deleting needs the locked thread active
        fake.set_overwrite(TEXT_CHANNEL_ID, allow=PERM_MANAGE_THREADS)  # a moderator bot may
        await thread.send("scene 2")
        assert (state.archived, state.locked) == (False, True)
        await fake.wait_until(lambda: bot.events("thread_update"), what="THREAD_UPDATE")
        assert bot.events("thread_update")[0]["thread_metadata"]["locked"] is True


async def test_patching_a_thread_follows_the_documented_rules(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        board = await bot.text_channel().send("storyboard")
        thread = await board.create_thread(name="scenes")
        assert await refused(bot.http.edit_channel(thread.id, locked=True)) == (403, 50013)  # MANAGE_THREADS
        assert await refused(bot.http.edit_channel(TEXT_CHANNEL_ID, name="x")) == (403, 50013)  # MANAGE_CHANNELS
        fake.archive_thread(thread.id)
        assert await refused(bot.http.edit_channel(thread.id, name="renamed")) == (400, 50083)
        data: dict[str, Any] = dict(await bot.http.edit_channel(thread.id, archived=False))  # SEND_MESSAGES
        assert data["thread_metadata"]["archived"] is False
        assert not fake.thread_state(thread.id).archived
        fake.lock_thread(thread.id, archived=False)
        assert fake.thread_state(thread.id).locked and not fake.thread_state(thread.id).archived
        assert await refused(bot.http.edit_channel(thread.id, archived=True)) == (403, 50013)
        await fake.wait_until(lambda: len(bot.events("thread_update")) >= 3, what="THREAD_UPDATEs")


async def test_deleted_thread_and_channel_answer_10003(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        channel = bot.text_channel()
        board = await channel.send("storyboard")
        thread = await board.create_thread(name="scenes")
        scene = await thread.send("scene 1")
        await fake.delete_channel(thread.id)
        await fake.wait_until(lambda: bot.events("thread_delete"), what="THREAD_DELETE")
        assert bot.events("thread_delete") == [thread.id]
        assert await refused(thread.send("scene 2")) == (404, 10003)
        assert await refused(scene.edit(content="x")) == (404, 10003)
        assert fake.channel_messages(thread.id) == []
        assert fake.message(board.id).thread is None
        await fake.delete_channel(TEXT_CHANNEL_ID)
        await fake.wait_until(lambda: bot.events("channel_delete"), what="CHANNEL_DELETE")
        assert await refused(channel.send("gone")) == (404, 10003)
        assert bot.get_channel(TEXT_CHANNEL_ID) is None


# 3. Rate-limit headers ---------------------------------------------------------------------------------------


async def test_every_response_carries_rate_limit_headers(fake: FakeDiscord) -> None:
    seen = [await call(fake, "GET", f"/channels/{TEXT_CHANNEL_ID}") for _ in range(3)]
    remaining = [int(headers["X-RateLimit-Remaining"]) for _, headers, _ in seen]
    assert remaining == [fake.rate_limits.limit - 1, fake.rate_limits.limit - 2, fake.rate_limits.limit - 3]
    _, headers, _ = seen[0]
    assert int(headers["X-RateLimit-Limit"]) == fake.rate_limits.limit
    assert 0 < float(headers["X-RateLimit-Reset-After"]) <= fake.rate_limits.window_s
    assert float(headers["X-RateLimit-Reset"]) > 1_000_000_000
    status, other, _ = await call(fake, "GET", "/channels/999")  # another channel: same bucket, own count
    assert status == 404 and other["X-RateLimit-Bucket"] == headers["X-RateLimit-Bucket"]
    assert int(other["X-RateLimit-Remaining"]) == fake.rate_limits.limit - 1
    _, send, _ = await call(fake, "POST", f"/channels/{TEXT_CHANNEL_ID}/messages", {"content": "x"})
    assert send["X-RateLimit-Bucket"] != headers["X-RateLimit-Bucket"]
    assert "X-RateLimit-Scope" not in send and "X-RateLimit-Global" not in send  # only on a 429


@pytest.mark.parametrize(("scope", "code"), [("user", 0), ("shared", 20028), ("global", 0)])
async def test_429_has_the_documented_headers_and_body(fake: FakeDiscord, scope: str, code: int) -> None:
    fake.inject("channel_send", 429, retry_after=1.5, code=code, scope=scope)
    status, headers, body = await call(fake, "POST", f"/channels/{TEXT_CHANNEL_ID}/messages", {"content": "x"})
    assert status == 429
    assert body == {
        "message": "The resource is being rate limited." if scope == "shared" else "You are being rate limited.",
        "retry_after": 1.5,
        "global": scope == "global",
        "code": code,
    }
    assert (headers["Retry-After"], headers["X-RateLimit-Scope"], headers["Via"]) == ("2", scope, "1.1 google")
    assert headers.get("X-RateLimit-Global") == ("true" if scope == "global" else None)
    assert ("X-RateLimit-Bucket" in headers) == (scope != "global")


async def test_discord_py_waits_out_an_enforced_limit(fake: FakeDiscord) -> None:
    fake.rate_limits.limit, fake.rate_limits.window_s = 2, 0.3
    fake.rate_limits.enforce = True
    statuses = [(await call(fake, "GET", f"/channels/{TEXT_CHANNEL_ID}"))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    await asyncio.sleep(0.35)
    fake.inject("channel_send", 429, retry_after=0.05, scope="global")
    async with running(fake) as bot:
        for index in range(5):  # discord.py reads Remaining and sleeps Reset-After instead of hitting 429s
            await bot.text_channel().send(f"message {index}")
    assert [m.content for m in fake.channel_messages()] == [f"message {i}" for i in range(5)]
    assert [r.status for r in fake.requests_to("channel_send")].count(429) == 1  # only the injected one


# 4. A thread started from a message --------------------------------------------------------------------------


async def test_thread_from_message_is_201_with_thread_create_and_message_update(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        board = await bot.text_channel().send("storyboard")
        thread = await board.create_thread(name="scenes")
        assert thread.id == board.id
        [create] = fake.requests_to("create_thread_from_message")
        assert create.status == 201
        await fake.wait_until(lambda: bot.events("message_edit"), what="MESSAGE_UPDATE")
        [update] = bot.events("message_edit")
        assert update["id"] == str(board.id) and update["thread"]["id"] == str(thread.id)
        assert update["flags"] & FLAG_HAS_THREAD
        assert bot.get_channel(thread.id) is not None  # THREAD_CREATE made discord.py cache it
        fetched = await bot.text_channel().fetch_message(board.id)
        assert fetched.flags.has_thread and fetched.thread is not None and fetched.thread.name == "scenes"
        side = await bot.text_channel().create_thread(name="side", type=discord.ChannelType.public_thread)
        assert side.type is discord.ChannelType.public_thread
        assert [r.status for r in fake.requests_to("create_thread")] == [201]


# 5. Nonces -------------------------------------------------------------------------------------------------


async def test_a_nonce_is_deduplicated_only_within_the_window(fake: FakeDiscord, clock: FakeClock) -> None:
    path = f"/channels/{TEXT_CHANNEL_ID}/messages"
    body = {"content": "scene 1", "nonce": "n-1", "enforce_nonce": True}
    first = (await call(fake, "POST", path, body))[2]
    clock.advance(NONCE_WINDOW_S - 1)
    again = (await call(fake, "POST", path, body))[2]
    assert again["id"] == first["id"] and len(fake.channel_messages()) == 1
    clock.advance(2)
    later = (await call(fake, "POST", path, body))[2]
    assert later["id"] != first["id"] and len(fake.channel_messages()) == 2
    unenforced = (await call(fake, "POST", path, {"content": "x", "nonce": "n-1"}))[2]
    assert unenforced["id"] not in (first["id"], later["id"])


# 6. Gateway reconnects ---------------------------------------------------------------------------------------


async def test_op7_reconnect_resumes_and_replays_missed_events(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        session = await fake.gateway.send_reconnect()
        await fake.wait_until(lambda: session.ws is None or session.resumes, what="the bot closing")
        fake.set_overwrite(TEXT_CHANNEL_ID, deny=PERM_ATTACH_FILES)  # while the bot reconnects: logged, replayed
        await fake.flush_events()
        await fake.wait_until(lambda: session.resumes == 1 and session.ws is not None, what="RESUME")
        channel = bot.text_channel()
        await fake.wait_until(lambda: not channel.permissions_for(channel.guild.me).attach_files, what="replay")
        await fake.send_reconnect()
        assert (fake.gateway.identifies, session.resumes) == (1, 2)
        assert (await (await fake.slash(OWNER, "probe")).ack()).status == 200


async def test_invalid_session_resumable_resumes(fake: FakeDiscord) -> None:
    async with running(fake):
        [session] = fake.gateway.sessions
        await fake.invalidate_session(True)
        assert (fake.gateway.identifies, session.resumes, session.alive) == (1, 1, True)
        assert (await (await fake.slash(OWNER, "probe")).ack()).status == 200


async def test_invalid_session_not_resumable_identifies_anew_and_loses_events(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        [old] = fake.gateway.sessions
        dropped = asyncio.create_task(fake.invalidate_session(False))
        await fake.wait_until(lambda: not old.alive, what="session invalidated")
        message = (await call(fake, "POST", f"/channels/{TEXT_CHANNEL_ID}/messages", {"content": "lost"}))[2]
        await dropped  # discord.py sleeps 5 s before identifying again
        new = fake.gateway.sessions[-1]
        assert (fake.gateway.identifies, new is not old, new.id != old.id) == (2, True, True)
        assert [f["t"] for f in new.events[:2]] == ["READY", "GUILD_CREATE"]
        assert all(f["d"].get("id") != message["id"] for s in fake.gateway.sessions for f in s.events)
        assert not [m for m in bot.events("message") if m.id == int(message["id"])]
        assert (await (await fake.slash(OWNER, "probe")).ack()).status == 200


# 7. Direct messages ------------------------------------------------------------------------------------------


async def test_dm_to_a_member_and_a_blocked_dm(fake: FakeDiscord) -> None:
    async with running(fake) as bot:
        dm = await bot.create_dm(discord.Object(OWNER))
        assert isinstance(dm, discord.DMChannel) and dm.id == fake.dm_channel_of(OWNER)
        sent = await dm.send("your story is ready")
        assert [m.content for m in fake.channel_messages(dm.id)] == ["your story is ready"]
        await fake.wait_until(lambda: [m for m in bot.events("message") if m.id == sent.id], what="DM event")
        [event] = [m for m in bot.events("message") if m.id == sent.id]
        assert event.guild is None  # a DM's MESSAGE_CREATE has no guild_id
        status, _, again = await call(fake, "POST", "/users/@me/channels", {"recipient_id": str(OWNER)})
        assert (status, again["id"], again["type"]) == (200, str(dm.id), 1)
        assert again["recipients"][0]["id"] == str(OWNER)
        fake.block_dms(OWNER)
        assert await refused(dm.send("another")) == (403, 50007)
        assert fake.dm_channel_of(ADMIN) is None
        status, _, body = await call(fake, "POST", "/users/@me/channels", {"recipient_id": "999"})
        assert (status, body["code"]) == (404, 10013)
