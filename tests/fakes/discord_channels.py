"""Channel and thread routes of the fake Discord (discord/discord-api-docs developers/resources/channel.mdx).

Each route checks the bot's permissions in the channel (``discord_permissions``): Get Channel needs only
VIEW_CHANNEL; typing needs the right to post there (the docs are silent, the fake takes the stricter reading);
Start Thread needs CREATE_PUBLIC_THREADS, or CREATE_PRIVATE_THREADS for a private one (permissions.mdx
"Bitwise Permission Flags"); Modify Channel follows channel.mdx "Modify Channel" (MANAGE_CHANNELS for a guild
channel, the thread rules of ``discord_threads`` for a thread).

Both thread-start routes answer 201 Created: discord/discord-api-spec specs/openapi.json, paths
``/channels/{channel_id}/messages/{message_id}/threads`` (create_thread_from_message) and
``/channels/{channel_id}/threads`` (create_thread), responses ``201``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.discord_permissions import missing_permissions, send_permission
from tests.fakes.discord_rest import PAYLOAD_KEY, RestApi
from tests.fakes.discord_state import (
    CHANNEL_PRIVATE_THREAD,
    CHANNEL_PUBLIC_THREAD,
    FLAG_HAS_THREAD,
    PERM_CREATE_PRIVATE_THREADS,
    PERM_CREATE_PUBLIC_THREADS,
    PERM_MANAGE_CHANNELS,
    ApiError,
    FakeChannel,
    iso_at,
    json_response,
)
from tests.fakes.discord_threads import check_auto_archive_duration, check_name

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord


class ChannelRoutes:
    def __init__(self, fake: FakeDiscord, rest: RestApi) -> None:
        self.fake = fake
        self.rest = rest

    def add_routes(self, app: web.Application) -> None:
        api = "/api/v10"
        app.router.add_get(f"{api}/channels/{{cid}}", self.get_channel)
        app.router.add_patch(f"{api}/channels/{{cid}}", self.edit_channel)
        app.router.add_post(f"{api}/channels/{{cid}}/typing", self.trigger_typing)
        app.router.add_post(f"{api}/channels/{{cid}}/messages/{{mid}}/threads", self.create_thread_from_message)
        app.router.add_post(f"{api}/channels/{{cid}}/threads", self.create_thread)

    async def get_channel(self, request: web.Request) -> web.Response:
        channel, _ = self.rest.channel(request)
        return json_response(channel.payload(self.fake.guild_id))

    async def trigger_typing(self, request: web.Request) -> web.Response:
        channel, _ = self.rest.channel(request)
        if not channel.is_dm:
            self.fake.permissions.require(channel, send_permission(channel))
        return web.Response(status=204)

    async def edit_channel(self, request: web.Request) -> web.Response:
        channel, permissions = self.rest.channel(request)
        payload = request[PAYLOAD_KEY]
        if channel.is_dm:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if channel.is_thread:
            self.fake.thread_lifecycle.modify(channel, payload, permissions)  # sends THREAD_UPDATE
            return json_response(channel.payload(self.fake.guild_id))
        # "JSON Params (Guild channel)": requires MANAGE_CHANNELS; the fake applies only a new name.
        if not permissions & PERM_MANAGE_CHANNELS:
            raise missing_permissions()
        if "name" in payload:
            channel.name = check_name(payload["name"])
        data = channel.payload(self.fake.guild_id)
        await self.fake.gateway.dispatch("CHANNEL_UPDATE", data, required=False)
        return json_response(data)

    async def create_thread_from_message(self, request: web.Request) -> web.Response:
        """Start Thread from Message: "Fires a Thread Create and a Message Update Gateway event"; the thread
        shares the message's id, and the message gains ``thread`` and the HAS_THREAD flag (message.mdx)."""
        message, channel, _ = self.rest.channel_message(request, PERM_CREATE_PUBLIC_THREADS)
        if channel.is_thread or channel.is_dm:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if message.id in self.fake.channels:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        thread = await self._new_thread(request, message.id, message.channel_id, CHANNEL_PUBLIC_THREAD)
        message.thread = thread
        message.flags |= FLAG_HAS_THREAD
        await self.fake.dispatch_message_event("MESSAGE_UPDATE", message)
        return json_response(thread.payload(self.fake.guild_id), status=201)

    async def create_thread(self, request: web.Request) -> web.Response:
        channel, permissions = self.rest.channel(request)
        if channel.is_thread or channel.is_dm:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        # channel.mdx "Start Thread without Message": type "currently defaults to PRIVATE_THREAD".
        kind = int(request[PAYLOAD_KEY].get("type") or CHANNEL_PRIVATE_THREAD)
        needed = PERM_CREATE_PUBLIC_THREADS if kind == CHANNEL_PUBLIC_THREAD else PERM_CREATE_PRIVATE_THREADS
        if not permissions & needed:
            raise missing_permissions()
        thread = await self._new_thread(request, self.fake.ids.next(), channel.id, kind)
        return json_response(thread.payload(self.fake.guild_id), status=201)

    async def _new_thread(self, request: web.Request, thread_id: int, parent_id: int, kind: int) -> FakeChannel:
        payload = request[PAYLOAD_KEY]
        name = check_name(payload.get("name") or "")
        duration = check_auto_archive_duration(payload.get("auto_archive_duration") or 1440)
        now = self.fake.clock.now()
        thread = FakeChannel(
            id=thread_id,
            name=name,
            type=kind,
            parent_id=parent_id,
            owner_id=self.fake.bot_user.id,
            auto_archive_duration=duration,
            created_at=iso_at(now),
            last_activity_at=now,
            archive_changed_at=now,  # threads.mdx: archive_timestamp "is changed when creating" a thread
            clock=self.fake.clock,
        )
        self.fake.channels[thread.id] = thread
        data = thread.payload(self.fake.guild_id)
        await self.fake.gateway.dispatch("THREAD_CREATE", dict(data, newly_created=True), required=False)
        return thread


async def delete_channel(fake: FakeDiscord, channel_id: int) -> None:
    """Delete/Close Channel (channel.mdx): "Fires a Channel Delete Gateway event (or Thread Delete if the channel
    was a thread)". A channel's threads go with it (discord.py drops them on CHANNEL_DELETE by itself), and so
    do the messages; the message a thread started from loses its ``thread`` and HAS_THREAD flag."""
    channel = fake.channels[channel_id]
    doomed = [channel, *(c for c in fake.channels.values() if c.is_thread and c.parent_id == channel_id)]
    for gone in doomed:
        del fake.channels[gone.id]
        for message in fake.messages.get(gone.id, []):
            message.deleted = True
    if channel.is_thread:
        starter = fake.messages_by_id.get(channel.id)
        if starter is not None and starter.thread is channel:
            starter.thread = None
            starter.flags &= ~FLAG_HAS_THREAD
        # gateway-events.mdx "Thread Delete": "containing just the id, guild_id, parent_id, and type fields".
        data = {"id": str(channel.id), "guild_id": str(fake.guild_id), "parent_id": str(channel.parent_id),
                "type": channel.type}  # fmt: skip
        await fake.gateway.dispatch("THREAD_DELETE", data, required=False)
    elif channel.is_dm:
        fake.dms.by_user = {user: dm for user, dm in fake.dms.by_user.items() if dm != channel_id}
    else:
        await fake.gateway.dispatch("CHANNEL_DELETE", channel.payload(fake.guild_id), required=False)
    fake.notifier.notify()
