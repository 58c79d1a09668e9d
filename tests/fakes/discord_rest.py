"""REST side of the fake Discord: request recording, fault injection, login, command sync and channels.

Interaction callbacks and webhook routes live in ``discord_webhooks``; both share the message store here.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from tests.fakes.discord_limits import validate_commands, validate_message
from tests.fakes.discord_state import (
    CHANNEL_PRIVATE_THREAD,
    CHANNEL_PUBLIC_THREAD,
    JSON,
    SETTABLE_MESSAGE_FLAGS,
    ApiError,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    RecordedError,
    RecordedFile,
    RecordedRequest,
    iso_now,
    json_response,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FILE_FIELD = re.compile(r"^files\[(\d+)\]$")
PAYLOAD_KEY = web.RequestKey("payload", dict)
FILES_KEY = web.RequestKey("files", list)


@dataclass
class Fault:
    route: str
    status: int
    retry_after: float
    times: int
    code: int
    after: bool = False  # carry the request out first, then answer with the fault: the response was lost


def fault_response(fault: Fault) -> web.Response:
    if fault.status == 429:
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, round(fault.retry_after))),
            "X-RateLimit-Scope": "user",
            "X-RateLimit-Global": "false",
        }
        body = {"message": "You are being rate limited.", "retry_after": fault.retry_after, "global": False}
        return json_response(body, status=429, headers=headers)
    return json_response({"message": f"{fault.status}: injected fault", "code": fault.code}, status=fault.status)


async def parse_body(request: web.Request) -> tuple[Any, list[RecordedFile]]:
    if request.method in ("GET", "HEAD") or not request.can_read_body:
        return None, []
    if request.content_type.startswith("multipart/"):
        payload: Any = None
        files: list[RecordedFile] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            data = await part.read()
            if part.name == "payload_json":
                payload = json.loads(data)
            else:
                content_type = part.headers.get("Content-Type")
                files.append(RecordedFile(part.name or "", part.filename or "file", content_type, bytes(data)))
        return payload, files
    raw = await request.read()
    return (json.loads(raw) if raw else None), []


class MessageStore:
    """Creates and edits stored messages (shared by channel, webhook and callback routes)."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def create(
        self,
        channel_id: int,
        payload: JSON,
        files: list[RecordedFile],
        *,
        author: FakeUser,
        message_type: int = 0,
        flags: int = 0,
        interaction: FakeInteraction | None = None,
    ) -> FakeMessage:
        fake = self.fake
        message = FakeMessage(id=fake.ids.next(), channel_id=channel_id, author=author, type=message_type)
        message.flags = flags | (int(payload.get("flags") or 0) & SETTABLE_MESSAGE_FLAGS)
        message.content = payload.get("content") or ""
        message.embeds = list(payload.get("embeds") or [])
        message.components = list(payload.get("components") or [])
        message.allowed_mentions = payload.get("allowed_mentions")
        message.tts = bool(payload.get("tts"))
        message.nonce = payload.get("nonce")
        message.attachments = self._new_attachments(channel_id, payload.get("attachments") or [], files)
        if interaction is not None:
            message.interaction_id = interaction.id
            message.interaction_metadata = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": fake.members[interaction.user_id].user.payload(),
                "authorizing_integration_owners": {"0": str(fake.guild_id)},
            }
        fake.messages.setdefault(channel_id, []).append(message)
        fake.messages_by_id[message.id] = message
        channel = fake.channels.get(channel_id)
        if channel is not None:
            channel.message_count += 1
        return message

    def edit(self, message: FakeMessage, payload: JSON, files: list[RecordedFile]) -> None:
        if "content" in payload:
            message.content = payload["content"] or ""
        if "embeds" in payload:
            message.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            message.components = list(payload["components"] or [])
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        if "flags" in payload and payload["flags"] is not None:
            kept = message.flags & ~SETTABLE_MESSAGE_FLAGS
            message.flags = kept | (int(payload["flags"]) & SETTABLE_MESSAGE_FLAGS)
        if "attachments" in payload:
            # Listed existing attachments are kept; new files are matched to their index entries.
            existing = {a.id: a for a in message.attachments}
            kept_ids = [int(a["id"]) for a in payload["attachments"] or [] if int(a["id"]) in existing]
            new_entries = [a for a in payload["attachments"] or [] if int(a["id"]) not in existing]
            added = self._new_attachments(message.channel_id, new_entries, files)
            message.attachments = [existing[i] for i in kept_ids] + added
        elif files:
            message.attachments += self._new_attachments(message.channel_id, [], files)
        message.edited_timestamp = iso_now()
        message.edit_count += 1

    def _new_attachments(self, channel_id: int, entries: list[JSON], files: list[RecordedFile]) -> list[FakeAttachment]:
        by_index = {int(e["id"]): e for e in entries if str(e.get("id", "")).isdigit()}
        created: list[FakeAttachment] = []
        for position, recorded in enumerate(files):
            match = FILE_FIELD.match(recorded.field_name)
            index = int(match.group(1)) if match else position
            entry = by_index.get(index, {})
            filename = entry.get("filename") or recorded.filename
            content_type = recorded.content_type
            if not content_type or content_type == "application/octet-stream":
                content_type = mimetypes.guess_type(filename)[0] or content_type
            attachment_id = self.fake.ids.next()
            url = f"{self.fake.base_url}/attachments/{channel_id}/{attachment_id}/{filename}"
            attachment = FakeAttachment(
                attachment_id, filename, recorded.data, content_type, url, description=entry.get("description")
            )
            self.fake.attachments[attachment_id] = attachment
            created.append(attachment)
        return created


class RestApi:
    """Bot-authenticated REST routes plus the recording/fault middleware for every route."""

    def __init__(self, fake: FakeDiscord, store: MessageStore) -> None:
        self.fake = fake
        self.store = store

    def add_routes(self, app: web.Application) -> None:
        api = "/api/v10"
        app.router.add_get(f"{api}/users/@me", self.get_me)
        app.router.add_get(f"{api}/oauth2/applications/@me", self.get_application)
        app.router.add_get(f"{api}/gateway", self.get_gateway)
        app.router.add_get(f"{api}/gateway/bot", self.get_gateway)
        for prefix in (f"{api}/applications/{{app}}", f"{api}/applications/{{app}}/guilds/{{gid}}"):
            app.router.add_put(f"{prefix}/commands", self.sync_commands)
            app.router.add_get(f"{prefix}/commands", self.get_commands)
        app.router.add_get(f"{api}/channels/{{cid}}", self.get_channel)
        app.router.add_post(f"{api}/channels/{{cid}}/typing", self.trigger_typing)
        app.router.add_post(f"{api}/channels/{{cid}}/messages", self.channel_send)
        app.router.add_get(f"{api}/channels/{{cid}}/messages/{{mid}}", self.channel_get_message)
        app.router.add_patch(f"{api}/channels/{{cid}}/messages/{{mid}}", self.channel_edit_message)
        app.router.add_delete(f"{api}/channels/{{cid}}/messages/{{mid}}", self.channel_delete_message)
        app.router.add_post(f"{api}/channels/{{cid}}/messages/{{mid}}/threads", self.create_thread_from_message)
        app.router.add_post(f"{api}/channels/{{cid}}/threads", self.create_thread)
        app.router.add_get("/attachments/{cid}/{aid}/{filename}", self.attachment)

    def add_fallback(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.unhandled)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/gateway":
            return await handler(request)
        route = getattr(handler, "__name__", "unhandled")
        payload, files = await parse_body(request)
        request[PAYLOAD_KEY] = payload or {}
        request[FILES_KEY] = files
        recorded = RecordedRequest(request.method, request.path, route, dict(request.query), payload, files)
        self.fake.requests.append(recorded)
        try:
            fault = self.fake.take_fault(route)
            if fault is not None and not fault.after:
                recorded.injected = True
                response: web.StreamResponse = fault_response(fault)
            else:
                response = await handler(request)
                if fault is not None:
                    recorded.injected = True
                    response = fault_response(fault)
        except ApiError as error:
            response = self._refuse(request, route, error)
        except Exception as bug:  # a fake bug must fail fast: discord.py retries a 500 for ~16 s
            log.exception("fake discord crashed on %s %s", request.method, request.path)
            response = self._refuse(request, route, ApiError(400, 0, f"fake discord internal error: {bug!r}"))
        recorded.status = response.status
        self.fake.notifier.notify()
        return response

    def _refuse(self, request: web.Request, route: str, error: ApiError) -> web.Response:
        self.fake.errors.append(
            RecordedError(route, request.path, error.status, error.code, error.message, error.errors)
        )
        log.info("fake discord refused %s %s: %s", request.method, request.path, error)
        return json_response(error.body(), status=error.status)

    def _require_bot_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.fake.token}":
            raise ApiError(401, 0, "401: Unauthorized")

    def _channel(self, request: web.Request) -> FakeChannel:
        self._require_bot_auth(request)
        channel = self.fake.channels.get(int(request.match_info["cid"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _channel_message(self, request: web.Request) -> FakeMessage:
        channel = self._channel(request)
        message = self.fake.messages_by_id.get(int(request.match_info["mid"]))
        if message is None or message.deleted or message.channel_id != channel.id or message.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def get_me(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        return json_response(self.fake.bot_user.payload())

    async def get_application(self, request: web.Request) -> web.Response:
        self._require_bot_auth(request)
        fake = self.fake
        app = {
            "id": str(fake.app_id),
            "name": fake.bot_user.username,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": fake.app_owner.payload(),
            "verify_key": "0" * 64,
            "flags": 0,
            "bot": fake.bot_user.payload(),
            "interactions_endpoint_url": None,
        }
        return json_response(app)

    async def get_gateway(self, request: web.Request) -> web.Response:
        limits = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return json_response({"url": self.fake.gateway_url, "shards": 1, "session_start_limit": limits})

    def _command_list(self, request: web.Request) -> list[JSON]:
        self._require_bot_auth(request)
        if int(request.match_info["app"]) != self.fake.app_id:
            raise ApiError(403, 50001, "Missing Access")
        if "gid" not in request.match_info:
            return self.fake.global_commands
        guild_id = int(request.match_info["gid"])
        if guild_id != self.fake.guild_id:
            raise ApiError(403, 50001, "Missing Access")
        return self.fake.guild_commands

    async def sync_commands(self, request: web.Request) -> web.Response:
        target = self._command_list(request)
        commands = request[PAYLOAD_KEY]
        validate_commands(commands)
        previous = {c["name"]: c["id"] for c in target}
        stored: list[JSON] = []
        for command in commands:
            echoed = dict(command, application_id=str(self.fake.app_id), version=str(self.fake.ids.next()))
            echoed["id"] = previous.get(command["name"]) or str(self.fake.ids.next())
            echoed.setdefault("type", 1)
            if "gid" in request.match_info:
                echoed["guild_id"] = request.match_info["gid"]
            stored.append(echoed)
        target[:] = stored
        return json_response(stored)

    async def get_commands(self, request: web.Request) -> web.Response:
        return json_response(self._command_list(request))

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channel(request).payload(self.fake.guild_id))

    async def trigger_typing(self, request: web.Request) -> web.Response:
        self._channel(request)
        return web.Response(status=204)

    async def channel_send(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        payload, files = request[PAYLOAD_KEY], request[FILES_KEY]
        validate_message(payload, files, size_limit=self.fake.attachment_size_limit, creating=True)
        repeated = self._repeated_nonce(channel.id, payload)
        if repeated is not None:
            return json_response(repeated.payload())
        message = self.store.create(channel.id, payload, files, author=self.fake.bot_user)
        await self.fake.dispatch_message_event("MESSAGE_CREATE", message)
        return json_response(message.payload())

    def _repeated_nonce(self, channel_id: int, payload: JSON) -> FakeMessage | None:
        """As Discord does for a send with ``enforce_nonce``: a nonce this author already used in the
        channel gets the message it made back, and nothing new is posted."""
        nonce = payload.get("nonce")
        if not payload.get("enforce_nonce") or nonce is None:
            return None
        for message in self.fake.messages.get(channel_id, []):
            if message.nonce == nonce and message.author.id == self.fake.bot_user.id and not message.deleted:
                return message
        return None

    async def channel_get_message(self, request: web.Request) -> web.Response:
        return json_response(self._channel_message(request).payload())

    async def channel_edit_message(self, request: web.Request) -> web.Response:
        message = self._channel_message(request)
        if message.author.id != self.fake.bot_user.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        payload, files = request[PAYLOAD_KEY], request[FILES_KEY]
        validate_message(payload, files, size_limit=self.fake.attachment_size_limit, creating=False)
        self.store.edit(message, payload, files)
        await self.fake.dispatch_message_event("MESSAGE_UPDATE", message)
        return json_response(message.payload())

    async def channel_delete_message(self, request: web.Request) -> web.Response:
        message = self._channel_message(request)
        message.deleted = True
        await self.fake.dispatch_message_event("MESSAGE_DELETE", message)
        return web.Response(status=204)

    async def create_thread_from_message(self, request: web.Request) -> web.Response:
        message = self._channel_message(request)
        if self.fake.channels[message.channel_id].is_thread:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        if message.id in self.fake.channels:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        # A thread started from a message shares the message's id, as on Discord.
        return await self._new_thread(request, message.id, message.channel_id, CHANNEL_PUBLIC_THREAD)

    async def create_thread(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel.is_thread:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        kind = int(request[PAYLOAD_KEY].get("type") or CHANNEL_PRIVATE_THREAD)
        return await self._new_thread(request, self.fake.ids.next(), channel.id, kind)

    async def _new_thread(self, request: web.Request, thread_id: int, parent_id: int, kind: int) -> web.Response:
        payload = request[PAYLOAD_KEY]
        name = payload.get("name") or ""
        if not 1 <= len(name) <= 100:
            raise ApiError(400, 50035, "Invalid Form Body", {"name": {"_errors": [{"code": "BASE_TYPE_BAD_LENGTH"}]}})
        thread = FakeChannel(
            id=thread_id,
            name=name,
            type=kind,
            parent_id=parent_id,
            owner_id=self.fake.bot_user.id,
            auto_archive_duration=int(payload.get("auto_archive_duration") or 1440),
        )
        self.fake.channels[thread.id] = thread
        data = thread.payload(self.fake.guild_id)
        await self.fake.gateway.dispatch("THREAD_CREATE", dict(data, newly_created=True), required=False)
        return json_response(data)

    async def attachment(self, request: web.Request) -> web.Response:
        attachment = self.fake.attachments.get(int(request.match_info["aid"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")

    async def unhandled(self, request: web.Request) -> web.Response:
        raise ApiError(404, 0, f"fake discord has no route for {request.method} {request.path}")
