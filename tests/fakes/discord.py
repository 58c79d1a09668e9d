"""A fake Discord (REST + gateway on 127.0.0.1) that the real discord.py client logs into.

Imported as ``tests.fakes.discord``; it never shadows the real ``discord`` package because all imports
here are absolute. Spec: /work/shared/reference/discord-wire.md. Typical use::

    async with FakeDiscord() as fake:
        fake.add_member(201, "owner")
        with fake.patch_discord():
            ...start a commands.Bot with fake.token, await bot.wait_until_ready()...
            handle = await fake.slash(201, "story", subcommand="new", options={"prompt": "a cat"})
            assert (await handle.ack()).type == 5
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

from bot.clock import Clock, SystemClock
from tests.fakes.discord_channels import ChannelRoutes, delete_channel
from tests.fakes.discord_dms import DirectMessages
from tests.fakes.discord_gateway import Gateway
from tests.fakes.discord_interactions import (
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMMAND,
    INTERACTION_COMPONENT,
    InteractionHandle,
    command_data,
    find_component,
    new_token,
)
from tests.fakes.discord_permissions import PermissionCalculator
from tests.fakes.discord_ratelimits import SCOPES, RateLimits
from tests.fakes.discord_rest import Fault, MessageStore, RestApi
from tests.fakes.discord_state import (
    ALL_PERMISSIONS,
    APP_ID,
    APP_OWNER_ID,
    DEFAULT_ATTACHMENT_SIZE_LIMIT,
    EVERYONE_PERMISSIONS,
    GUILD_ID,
    GUILD_OWNER_ID,
    JSON,
    MIB,
    OVERWRITE_MEMBER,
    OVERWRITE_ROLE,
    PERM_ADMINISTRATOR,
    PERM_ATTACH_FILES,
    PERM_CREATE_PRIVATE_THREADS,
    PERM_EMBED_LINKS,
    PERM_MANAGE_MESSAGES,
    PERM_READ_MESSAGE_HISTORY,
    PERM_SEND_MESSAGES,
    PERM_VIEW_CHANNEL,
    TEXT_CHANNEL_ID,
    CallbackRecord,
    CallbackRejected,
    ChangeNotifier,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    Overwrite,
    RecordedError,
    RecordedRequest,
    Snowflakes,
)
from tests.fakes.discord_threads import ThreadLifecycle
from tests.fakes.discord_webhooks import InteractionRoutes

__all__ = ["CallbackRejected", "FakeDiscord", "InteractionHandle"]

T = TypeVar("T")
# No MANAGE_THREADS: a locked thread really locks the bot out (threads.mdx "Locked Threads"); @everyone's
# CREATE_PUBLIC_THREADS and SEND_MESSAGES_IN_THREADS are enough for a story's thread.
# What an app may do in its own DM with a user: read, send, embed and attach (permissions.mdx, "Implicit Permissions"
# gives no table for DMs; these are the bits a DM channel's sends need, and nothing that manages anything).
DM_APP_PERMISSIONS = (
    PERM_VIEW_CHANNEL | PERM_SEND_MESSAGES | PERM_EMBED_LINKS | PERM_ATTACH_FILES | PERM_READ_MESSAGE_HISTORY
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | PERM_MANAGE_MESSAGES | PERM_CREATE_PRIVATE_THREADS


class FakeDiscord:
    def __init__(
        self,
        token: str = "fake-bot-token",
        *,
        clock: Clock | None = None,
        token_ttl_s: float = 900.0,
        ack_deadline_s: float = 3.0,
        attachment_size_limit: int = DEFAULT_ATTACHMENT_SIZE_LIMIT,
        strict_commands: bool = True,
        bot_name: str = "storybot",
    ) -> None:
        self.token = token
        self.recommended_shards = 1  # what GET /gateway/bot recommends (SHARD_COUNT unset)
        self.clock: Clock = clock or SystemClock()
        self.token_ttl_s = token_ttl_s
        self.ack_deadline_s = ack_deadline_s
        self.attachment_size_limit = attachment_size_limit
        self.strict_commands = strict_commands  # refuse to send interactions for commands never synced
        self.ids = Snowflakes()
        self.app_id = APP_ID
        self.bot_user = FakeUser(APP_ID, bot_name, bot=True)
        self.app_owner = FakeUser(APP_OWNER_ID, "app-owner")
        self.guild_id = GUILD_ID
        self.channel_id = TEXT_CHANNEL_ID
        self.roles: dict[int, FakeRole] = {GUILD_ID: FakeRole(GUILD_ID, "@everyone", EVERYONE_PERMISSIONS)}
        self.members: dict[int, FakeMember] = {}
        self.channels: dict[int, FakeChannel] = {
            TEXT_CHANNEL_ID: FakeChannel(TEXT_CHANNEL_ID, "general", clock=self.clock)
        }
        self.messages: dict[int, list[FakeMessage]] = {}  # by channel id, in creation order
        self.messages_by_id: dict[int, FakeMessage] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: list[JSON] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self.requests: list[RecordedRequest] = []
        self.callbacks: list[CallbackRecord] = []
        self.errors: list[RecordedError] = []
        self.faults: list[Fault] = []
        self.notifier = ChangeNotifier()
        self._tokens: dict[str, FakeInteraction] = {}
        self.port = 0
        self.add_member(self.bot_user.id, bot_name, BOT_PERMISSIONS, bot=True)
        self.add_member(GUILD_OWNER_ID, "guild-owner", ALL_PERMISSIONS)
        self.permissions = PermissionCalculator(self)
        self.rate_limits = RateLimits()
        self.thread_lifecycle = ThreadLifecycle(self)
        self.store = MessageStore(self)
        self.rest = RestApi(self, self.store)
        self.dms = DirectMessages(self, self.rest)
        self.gateway = Gateway(self)
        self.app = web.Application(client_max_size=1024 * MIB, middlewares=[self.rest.middleware])
        self.rest.add_routes(self.app)
        ChannelRoutes(self, self.rest).add_routes(self.app)
        self.dms.add_routes(self.app)
        InteractionRoutes(self, self.store).add_routes(self.app)
        self.app.router.add_get("/gateway", self.gateway.handle)
        self.rest.add_fallback(self.app)
        self.route_names = {r.handler.__name__ for r in self.app.router.routes()}  # type: ignore[union-attr]
        self._runner: web.AppRunner | None = None

    # lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.thread_lifecycle.start()

    async def stop(self) -> None:
        await self.thread_lifecycle.stop()
        if self._runner is not None:
            await self.gateway.close_all()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py's REST base and gateway URL at this fake, restoring them afterwards."""
        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # seeded state ----------------------------------------------------------------------------
    def add_member(self, user_id: int, name: str, permissions: int = 0, *, bot: bool = False) -> FakeMember:
        """Add a member whose permissions are @everyone's plus ``permissions`` (granted through a role).

        Add members before the bot connects: a running bot learns roles only from GUILD_CREATE.
        """
        role_ids: list[int] = []
        if permissions:
            role = FakeRole(self.ids.next(), f"{name}-role", permissions, position=len(self.roles))
            self.roles[role.id] = role
            role_ids.append(role.id)
        effective = EVERYONE_PERMISSIONS | permissions
        if effective & PERM_ADMINISTRATOR:
            effective = ALL_PERMISSIONS
        member = FakeMember(FakeUser(user_id, name, bot=bot), role_ids, effective)
        self.members[user_id] = member
        return member

    def upload(self, filename: str, data: bytes, content_type: str | None = None) -> FakeAttachment:
        """A file a user attached to a command option; pass it as an option value (after ``start()``)."""
        if not self.port:
            raise RuntimeError("start the fake before uploading: attachment URLs need its port")
        attachment_id = self.ids.next()
        url = f"{self.base_url}/attachments/0/{attachment_id}/{filename}"
        attachment = FakeAttachment(attachment_id, filename, data, content_type, url)
        self.attachments[attachment_id] = attachment
        return attachment

    def ready_payload(self, session_id: str, *, shard: tuple[int, int] | None = None, guild: bool = True) -> JSON:
        """READY (gateway-events.md "Ready"); ``shard`` echoes IDENTIFY's, and ``guild`` says whether the guild
        is on this session's shard."""
        payload: JSON = {
            "v": 10,
            "user": self.bot_user.payload(),
            "session_id": session_id,
            "resume_gateway_url": self.gateway_url,
            "guilds": [{"id": str(self.guild_id), "unavailable": True}] if guild else [],
            "application": {"id": str(self.app_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
        }
        if shard is not None:
            payload["shard"] = list(shard)
        return payload

    def guild_create_payload(self) -> JSON:
        channels = [c for c in self.channels.values() if not c.is_thread and not c.is_dm]
        # gateway-events.mdx "Guild Create": threads are "all active threads in the guild that the current
        # user has permission to view".
        threads = [c for c in self.channels.values() if c.is_thread and not c.archived]
        return {
            "id": str(self.guild_id),
            "name": "Test Guild",
            "owner_id": str(GUILD_OWNER_ID),
            "unavailable": False,
            "member_count": len(self.members),
            "large": False,
            "premium_tier": 0,
            "roles": [r.payload() for r in self.roles.values()],
            "channels": [c.payload(self.guild_id) for c in channels],
            "threads": [t.payload(self.guild_id) for t in threads],
            "members": [m.payload() for m in self.members.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "joined_at": "2025-01-01T00:00:00+00:00",
        }

    # driving the bot -------------------------------------------------------------------------
    async def slash(
        self,
        user_id: int,
        name: str,
        subcommand: str | None = None,
        *,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
        channel_id: int | None = None,
        attachment_size_limit: int | None = None,
    ) -> InteractionHandle:
        """Send a type-2 INTERACTION_CREATE for ``/name [group] [subcommand] options...``."""
        data = command_data(self._command(name), name, group=group, subcommand=subcommand, options=options or {})
        return await self._interact(INTERACTION_COMMAND, user_id, data, channel_id, attachment_size_limit)

    async def autocomplete(
        self,
        user_id: int,
        name: str,
        subcommand: str | None = None,
        *,
        focused: str,
        group: str | None = None,
        options: Mapping[str, Any] | None = None,
        channel_id: int | None = None,
        timeout_s: float = 5.0,
    ) -> list[JSON]:
        """Send a type-4 interaction and return the choices of the bot's type-8 callback.

        Raises CallbackRejected (also recorded in ``errors``) when the callback breaks Discord's limits.
        """
        data = command_data(
            self._command(name), name, group=group, subcommand=subcommand, options=options or {}, focused=focused
        )
        handle = await self._interact(INTERACTION_AUTOCOMPLETE, user_id, data, channel_id, None)
        record = await handle.ack(timeout_s)
        if record.error is not None:
            raise CallbackRejected(record.error)
        return record.choices

    async def click(
        self, user_id: int, message_id: int, custom_id: str, *, values: list[str] | None = None
    ) -> InteractionHandle:
        """Press a component on a stored message (type 3, with the full message and its components)."""
        message = self.message(message_id)
        component = find_component(message, custom_id)
        if component is None:
            raise LookupError(f"message {message_id} has no component {custom_id!r}; it has {message.custom_ids}")
        data: JSON = {"custom_id": custom_id, "component_type": component["type"]}
        if component["type"] != 2:
            data["values"] = values or []
        return await self._interact(INTERACTION_COMPONENT, user_id, data, message.channel_id, None, message)

    async def click_forged(self, user_id: int, custom_id: str, *, channel_id: int | None = None) -> InteractionHandle:
        """Press a button that no stored message carries, as a forged payload would: the interaction names a
        bot message (never stored, so it changes no channel) whose only component is ``custom_id``."""
        button = {"type": 2, "style": 1, "label": "Forged", "custom_id": custom_id}
        message = FakeMessage(
            self.ids.next(), channel_id or self.channel_id, self.bot_user, "forged",
            components=[{"type": 1, "components": [button]}],
        )  # fmt: skip
        data: JSON = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(INTERACTION_COMPONENT, user_id, data, message.channel_id, None, message)

    def _command(self, name: str) -> JSON | None:
        for command in [*self.guild_commands, *self.global_commands]:
            if command["name"] == name:
                return command
        if self.strict_commands:
            raise LookupError(f"/{name} was never synced (set strict_commands=False to send it anyway)")
        return None

    async def _interact(
        self,
        kind: int,
        user_id: int,
        data: JSON,
        channel_id: int | None,
        size_limit: int | None,
        message: FakeMessage | None = None,
    ) -> InteractionHandle:
        member = self.members.get(user_id)
        if member is None:
            raise LookupError(f"user {user_id} is not a member of the fake guild; call add_member first")
        channel = self.channels[channel_id or self.channel_id]
        limit = size_limit or self.attachment_size_limit
        interaction_id, token = self.ids.next(), new_token()
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.app_id),
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": str(self.guild_id),
            "channel_id": str(channel.id),
            "channel": channel.payload(self.guild_id),
            # guild.mdx "Guild Member Object": permissions are the "total permissions of the member in the
            # channel, including overwrites, returned when in the interaction object"; receiving-and-responding.mdx
            # "Interaction Object": app_permissions are those "the app has in the source location".
            "member": None if channel.is_dm else member.payload(permissions=self.permissions_in(channel.id, user_id)),
            "app_permissions": None if channel.is_dm else str(self.permissions_in(channel.id)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": limit,
            "data": data,
        }
        if channel.is_dm:
            self._as_direct_message(payload, member)
        if message is not None:
            payload["message"] = message.payload()
        interaction = FakeInteraction(
            interaction_id, token, kind, user_id, channel.id, payload, self.clock.now(), time.perf_counter(), limit
        )
        interaction.message_id = message.id if message is not None else None
        self.interactions[interaction_id] = interaction
        self._tokens[token] = interaction
        await self.gateway.dispatch("INTERACTION_CREATE", payload, latest_only=True)
        self.notifier.notify()
        return InteractionHandle(self, interaction)

    @staticmethod
    def _as_direct_message(payload: JSON, member: FakeMember) -> None:
        """An interaction in the bot's DM (a button on a message the bot sent there), as receiving-and-responding.mdx
        "Interaction Object" describes it: no guild_id, ``user`` instead of ``member``, context 1 (BOT_DM), and
        the guild-install owner "0" ("if the interaction is triggered from a bot's DM")."""
        for key in ("guild_id", "member", "guild_locale"):
            payload.pop(key, None)
        payload["user"] = member.user.payload()
        payload["context"] = 1
        payload["authorizing_integration_owners"] = {"0": "0"}
        payload["app_permissions"] = str(DM_APP_PERMISSIONS)

    async def dispatch_message_event(self, event: str, message: FakeMessage) -> None:
        if message.ephemeral:
            return
        if event == "MESSAGE_DELETE":
            data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        else:
            data = message.payload()
        channel = self.channels.get(message.channel_id)
        if channel is None or not channel.is_dm:  # DM events carry no guild_id (gateway-events.mdx)
            data["guild_id"] = str(self.guild_id)
        await self.gateway.dispatch(event, data, required=False)

    async def restart_gateway(self, code: int = 4000, timeout_s: float = 5.0) -> None:
        """Drop the bot's websocket with a resumable close code and wait until it has resumed."""
        session = await self.gateway.drop_connection(code)
        resumes = session.resumes
        await self.wait_until(lambda: session.resumes > resumes and session.ws is not None, timeout_s, "RESUME")

    async def send_reconnect(self, timeout_s: float = 5.0) -> None:
        """Send op 7 Reconnect and wait until the bot has resumed its session (events it missed are replayed)."""
        resumes = self.gateway.connected_session().resumes
        session = await self.gateway.send_reconnect()
        await self.wait_until(lambda: session.resumes > resumes and session.ws is not None, timeout_s, "RESUME")

    async def invalidate_session(self, resumable: bool, timeout_s: float = 15.0) -> None:
        """Send op 9 Invalid Session with ``d=resumable`` and wait until the bot has resumed (true) or identified
        a new session and received READY and GUILD_CREATE again (false).

        discord.py 2.7.1 answers ``d=false`` by closing, then sleeping 5 s in ``Client.before_identify_hook``
        (every IDENTIFY but the first) before identifying: hence the longer default timeout.
        """
        identifies = self.gateway.identifies
        resumes = self.gateway.connected_session().resumes
        session = await self.gateway.invalidate_session(resumable)
        if resumable:
            await self.wait_until(lambda: session.resumes > resumes and session.ws is not None, timeout_s, "RESUME")
            return

        def reidentified() -> bool:
            fresh = [s for s in self.gateway.live_sessions if s is not session and s.ws is not None]
            return self.gateway.identifies > identifies and any(
                any(f["t"] == "GUILD_CREATE" for f in s.events) for s in fresh
            )

        await self.wait_until(reidentified, timeout_s, "a new IDENTIFY")

    async def flush_events(self) -> None:
        """Send every gateway event queued by the synchronous helpers (set_overwrite, archive_thread...) now."""
        await self.gateway.flush()

    # permissions -----------------------------------------------------------------------------
    def set_overwrite(
        self,
        channel_id: int,
        *,
        allow: int = 0,
        deny: int = 0,
        user_id: int | None = None,
        role_id: int | None = None,
    ) -> Overwrite:
        """Set a channel's permission overwrite for a member (the bot by default) or a role (``role_id``; the
        guild id is @everyone), replacing that target's previous one, and send CHANNEL_UPDATE."""
        if user_id is not None and role_id is not None:
            raise ValueError("an overwrite targets a member or a role, not both")
        channel = self.channels[channel_id]
        if channel.is_thread or channel.is_dm:
            raise ValueError("threads inherit their parent's overwrites and DMs have none: set it on the parent")
        if role_id is not None:
            overwrite = Overwrite(role_id, OVERWRITE_ROLE, allow, deny)
        else:
            overwrite = Overwrite(self.bot_user.id if user_id is None else user_id, OVERWRITE_MEMBER, allow, deny)
        channel.overwrites[overwrite.id] = overwrite
        self.gateway.dispatch_soon("CHANNEL_UPDATE", channel.payload(self.guild_id))
        self.notifier.notify()
        return overwrite

    def permissions_in(self, channel_id: int, user_id: int | None = None) -> int:
        """A member's (the bot's by default) permissions in a channel or thread, overwrites included."""
        return self.permissions.in_channel(self.channels[channel_id], self.bot_user.id if user_id is None else user_id)

    # threads and channels --------------------------------------------------------------------
    def thread_state(self, thread_id: int) -> FakeChannel:
        """The thread, whose ``archived`` and ``locked`` reflect the fake's clock and what happened to it."""
        channel = self.channels.get(thread_id)
        if channel is None or not channel.is_thread:
            raise KeyError(f"the fake has no thread {thread_id}")
        return channel

    def archive_thread(self, thread_id: int) -> None:
        """Archive a thread now (as a moderator would) and send THREAD_UPDATE."""
        self.thread_lifecycle.archive(self.thread_state(thread_id))

    def lock_thread(self, thread_id: int, *, archived: bool = True) -> None:
        """Lock a thread (archived too, by default) and send THREAD_UPDATE: without MANAGE_THREADS the bot can
        neither post in it nor unarchive it."""
        self.thread_lifecycle.lock(self.thread_state(thread_id), archived=archived)

    async def delete_channel(self, channel_id: int) -> None:
        """Delete a channel or thread (with a channel, its threads): THREAD_DELETE or CHANNEL_DELETE is sent,
        later requests get 404 10003 Unknown Channel, and its messages are gone."""
        await delete_channel(self, channel_id)

    # direct messages -------------------------------------------------------------------------
    def block_dms(self, user_id: int) -> None:
        """From now on the bot's DMs to this user are refused with 403 50007."""
        self.dms.blocked.add(user_id)

    def dm_channel_of(self, user_id: int) -> int | None:
        """The id of the bot's DM channel with this user, once the bot has opened one."""
        return self.dms.channel_of(user_id)

    # faults and time -------------------------------------------------------------------------
    def inject(
        self,
        route: str,
        status: int = 429,
        retry_after: float = 0.2,
        times: int = 1,
        code: int = 0,
        *,
        after: bool = False,
        scope: str = "user",
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``route`` (a handler name, e.g. "channel_send") with ``status``.

        With ``after`` each request is carried out first and only its answer is replaced: a lost response.
        A 429 carries ``scope`` ("user", "global" or "shared") and ``code`` in its body (0, or e.g. 20028 for a
        channel's write limit). ``message`` replaces the error body's message (a proxy echoing the token).
        """
        if route not in self.route_names:
            raise ValueError(f"unknown route {route!r}; known: {sorted(self.route_names)}")
        if scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}")
        self.faults.append(Fault(route, status, retry_after, times, code, after, scope, message))

    def take_fault(self, route: str) -> Fault | None:
        for fault in self.faults:
            if fault.route == route and fault.times > 0:
                fault.times -= 1
                return fault
        return None

    def expire_tokens(self) -> None:
        """Make every interaction token issued so far invalid, as after 15 minutes."""
        for interaction in self.interactions.values():
            interaction.expired = True

    def token_expired(self, interaction: FakeInteraction) -> bool:
        return interaction.expired or self.clock.now() - interaction.dispatched_at > self.token_ttl_s

    def interaction_by_token(self, token: str) -> FakeInteraction | None:
        return self._tokens.get(token)

    # queries ---------------------------------------------------------------------------------
    def channel_messages(self, channel_id: int | None = None, *, include_deleted: bool = False) -> list[FakeMessage]:
        """Messages of a channel, thread or DM channel (of a deleted one: only with ``include_deleted``)."""
        found = self.messages.get(channel_id or self.channel_id, [])
        return [m for m in found if include_deleted or not m.deleted]

    def message(self, message_id: int) -> FakeMessage:
        try:
            return self.messages_by_id[int(message_id)]
        except KeyError:
            raise KeyError(f"the fake has no message {message_id}") from None

    def requests_to(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    def threads(self) -> list[FakeChannel]:
        return [c for c in self.channels.values() if c.is_thread]

    async def wait_until(self, predicate: Callable[[], T | None], timeout_s: float = 5.0, what: str = "condition") -> T:
        """Wait until ``predicate()`` is truthy (re-checked whenever the fake's state changes)."""
        return await self.notifier.wait_until(predicate, timeout_s, what)

    async def wait_ready(self, timeout_s: float = 5.0) -> None:
        """Wait until a bot has identified and received GUILD_CREATE."""
        await self.wait_until(lambda: any(s.ws is not None for s in self.gateway.live_sessions), timeout_s, "IDENTIFY")
