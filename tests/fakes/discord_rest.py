"""REST side of the fake Discord: request recording, fault injection, rate-limit headers, login, command
sync and channel messages.

Channel and thread routes live in ``discord_channels``, interaction callbacks and webhook routes in
``discord_webhooks``; all share the message store here. Channel-message routes enforce the bot's permissions
in the channel (``discord_permissions``) and the thread rules (``discord_threads``).
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
from tests.fakes.discord_permissions import missing_permissions, send_permission
from tests.fakes.discord_ratelimits import RateLimitState, too_many_requests
from tests.fakes.discord_state import (
    JSON,
    PERM_ATTACH_FILES,
    PERM_EMBED_LINKS,
    PERM_MANAGE_MESSAGES,
    PERM_READ_MESSAGE_HISTORY,
    PERM_SEND_TTS_MESSAGES,
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


# discord/discord-api-docs developers/resources/message.mdx, "Create Message", enforce_nonce: "If true and
# nonce is present, it will be checked for uniqueness in the past few minutes. If another message was created
# by the same author with the same nonce, that message will be returned and no new message will be created."
# The docs give no number; the fake takes three minutes, the short end of "a few", so a bot cannot lean on
# deduplication for longer than Discord promises.
NONCE_WINDOW_S = 3 * 60


@dataclass
class Fault:
    route: str
    status: int
    retry_after: float
    times: int
    code: int
    after: bool = False  # carry the request out first, then answer with the fault: the response was lost
    scope: str = "user"  # for a 429: "user", "global" or "shared" (X-RateLimit-Scope)
    message: str | None = None  # the body's message, e.g. a proxy that echoes the request's token back


def fault_response(fault: Fault, state: RateLimitState | None = None) -> web.Response:
    if fault.status == 429:
        return too_many_requests(fault.retry_after, scope=fault.scope, code=fault.code, state=state)
    message = fault.message or f"{fault.status}: injected fault"
    return json_response({"message": message, "code": fault.code}, status=fault.status)


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
        message.created_at = fake.clock.now()
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
            channel.last_activity_at = message.created_at  # a message is thread activity (threads.mdx)
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
        app.router.add_post(f"{api}/channels/{{cid}}/messages", self.channel_send)
        app.router.add_get(f"{api}/channels/{{cid}}/messages/{{mid}}", self.channel_get_message)
        app.router.add_patch(f"{api}/channels/{{cid}}/messages/{{mid}}", self.channel_edit_message)
        app.router.add_delete(f"{api}/channels/{{cid}}/messages/{{mid}}", self.channel_delete_message)
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
        api = request.path.startswith("/api/")
        limit = self.fake.rate_limits.hit(request, route) if api else None
        try:
            self.fake.thread_lifecycle.settle()  # threads that went idle on the clock are archived first
            fault = self.fake.take_fault(route)
            refusal = self.fake.rate_limits.refusal(limit) if limit is not None else None
            if fault is not None and not fault.after:
                recorded.injected = True
                response: web.StreamResponse = fault_response(fault, limit)
            elif refusal is not None:
                response = refusal
            else:
                response = await handler(request)
                if fault is not None:
                    recorded.injected = True
                    response = fault_response(fault, limit)
        except ApiError as error:
            response = self._refuse(request, route, error)
        except Exception as bug:  # a fake bug must fail fast: discord.py retries a 500 for ~16 s
            log.exception("fake discord crashed on %s %s", request.method, request.path)
            response = self._refuse(request, route, ApiError(400, 0, f"fake discord internal error: {bug!r}"))
        await self.fake.gateway.flush()  # the events a request caused go out before its answer
        if limit is not None and "X-RateLimit-Scope" not in response.headers:  # a 429 has its own
            response.headers.update(limit.headers())  # rate-limits.mdx: on every response, errors included
        recorded.status = response.status
        self.fake.notifier.notify()
        return response

    def _refuse(self, request: web.Request, route: str, error: ApiError) -> web.Response:
        self.fake.errors.append(
            RecordedError(route, request.path, error.status, error.code, error.message, error.errors)
        )
        log.info("fake discord refused %s %s: %s", request.method, request.path, error)
        return json_response(error.body(), status=error.status)

    def require_bot_auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.fake.token}":
            raise ApiError(401, 0, "401: Unauthorized")

    def channel(self, request: web.Request, needed: int = 0) -> tuple[FakeChannel, int]:
        """The channel of a bot route and the bot's permissions there; refused as Discord would."""
        self.require_bot_auth(request)
        channel = self.fake.channels.get(int(request.match_info["cid"]))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel, self.fake.permissions.require(channel, needed)

    def channel_message(self, request: web.Request, needed: int = 0) -> tuple[FakeMessage, FakeChannel, int]:
        channel, permissions = self.channel(request, needed)
        message = self.fake.messages_by_id.get(int(request.match_info["mid"]))
        if message is None or message.deleted or message.channel_id != channel.id or message.ephemeral:
            raise ApiError(404, 10008, "Unknown Message")
        return message, channel, permissions

    async def get_me(self, request: web.Request) -> web.Response:
        self.require_bot_auth(request)
        return json_response(self.fake.bot_user.payload())

    async def get_application(self, request: web.Request) -> web.Response:
        self.require_bot_auth(request)
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
        # "Get Gateway Bot" (docs/events/gateway.md): "shards" is the recommended number of shards.
        return json_response(
            {"url": self.fake.gateway_url, "shards": self.fake.recommended_shards, "session_start_limit": limits}
        )

    def _command_list(self, request: web.Request) -> list[JSON]:
        self.require_bot_auth(request)
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

    async def channel_send(self, request: web.Request) -> web.Response:
        """Create Message (message.mdx): SEND_MESSAGES, or SEND_MESSAGES_IN_THREADS in a thread (threads.mdx
        "Permissions"); ATTACH_FILES for files ("Allows for uploading images and files", permissions.mdx);
        SEND_TTS_MESSAGES for tts ("Limitations"). A DM to a user who blocks the bot is 403 50007."""
        channel, permissions = self.channel(request)
        payload, files = request[PAYLOAD_KEY], request[FILES_KEY]
        if channel.is_dm:
            self.fake.dms.check_send(channel)
        else:
            self._check_send(channel, permissions, payload, files)
            payload = self._without_unembeddable(payload, permissions, files, creating=True)
        if channel.is_thread:
            self.fake.thread_lifecycle.check_send(channel, permissions)
        validate_message(payload, files, size_limit=self.fake.attachment_size_limit, creating=True)
        repeated = self._repeated_nonce(payload)
        if repeated is not None:
            return json_response(repeated.payload())
        if channel.archived:
            self.fake.thread_lifecycle.unarchive(channel)  # sending unarchives an unlocked thread
        message = self.store.create(channel.id, payload, files, author=self.fake.bot_user)
        await self.fake.dispatch_message_event("MESSAGE_CREATE", message)
        return json_response(message.payload())

    def _check_send(self, channel: FakeChannel, permissions: int, payload: JSON, files: list[RecordedFile]) -> None:
        needed = send_permission(channel)
        if files:
            needed |= PERM_ATTACH_FILES
        if payload.get("tts"):
            needed |= PERM_SEND_TTS_MESSAGES
        if permissions & needed != needed:
            raise missing_permissions()

    @staticmethod
    def _without_unembeddable(payload: JSON, permissions: int, files: list[RecordedFile], *, creating: bool) -> JSON:
        """Embeds without EMBED_LINKS. The docs say only that EMBED_LINKS makes links auto-embed
        (permissions.mdx); what Discord does with rich embeds is reported in discord/discord-api-docs issues
        #2601 (a message of embeds only is refused with 403 "Missing Permissions") and #5648 (with other content
        the embeds are dropped; an edit's embeds are ignored, and an edit left empty is 50006). Emulated as
        reported: embeds are dropped, and a new message left with nothing else is refused with 403 50013."""
        if permissions & PERM_EMBED_LINKS or not payload.get("embeds"):
            return payload
        stripped = {key: value for key, value in payload.items() if key != "embeds"}
        body = any(stripped.get(key) for key in ("content", "components", "sticker_ids", "poll", "attachments"))
        if creating and not body and not files:
            raise missing_permissions()
        return stripped

    @staticmethod
    def _left_empty(message: FakeMessage, payload: JSON, files: list[RecordedFile]) -> bool:
        """Whether an edit would leave the message with nothing in it (its embeds are kept when ignored)."""
        content = payload.get("content", message.content)
        components = payload.get("components", message.components)
        attachments = payload.get("attachments", message.attachments)
        return not (content or components or attachments or files or message.embeds)

    def _repeated_nonce(self, payload: JSON) -> FakeMessage | None:
        """``enforce_nonce``: a nonce the bot used within NONCE_WINDOW_S gets its message back, and nothing new
        is posted. The docs name "the same author" and no channel, so the check spans channels."""
        nonce = payload.get("nonce")
        if not payload.get("enforce_nonce") or nonce is None:
            return None
        since = self.fake.clock.now() - NONCE_WINDOW_S
        for message in reversed(list(self.fake.messages_by_id.values())):
            if message.created_at < since:
                continue
            if message.nonce == nonce and message.author.id == self.fake.bot_user.id and not message.deleted:
                return message
        return None

    async def channel_get_message(self, request: web.Request) -> web.Response:
        """Get Channel Message (message.mdx): "requires ... VIEW_CHANNEL and READ_MESSAGE_HISTORY"."""
        message, _, _ = self.channel_message(request, PERM_READ_MESSAGE_HISTORY)
        return json_response(message.payload())

    async def channel_edit_message(self, request: web.Request) -> web.Response:
        """Edit Message (message.mdx): the author edits content/embeds/components. It needs no SEND_MESSAGES:
        the docs page is silent, and a Discord engineer answered in discord/discord-api-docs issue #3096 that
        "Send Messages permission restricts the ability to send new messages, but does not prevent existing
        messages from being updated" (only losing VIEW_CHANNEL removes access). New files need ATTACH_FILES
        (the docs are silent; the fake takes the stricter reading). Archived or locked threads refuse."""
        message, channel, permissions = self.channel_message(request)
        if message.author.id != self.fake.bot_user.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        if channel.is_thread:
            self.fake.thread_lifecycle.before_edit(channel, permissions)
        payload, files = request[PAYLOAD_KEY], request[FILES_KEY]
        if files and not permissions & PERM_ATTACH_FILES and not channel.is_dm:
            raise missing_permissions()
        if not channel.is_dm:
            payload = self._without_unembeddable(payload, permissions, files, creating=False)
            ignored_embeds = "embeds" in request[PAYLOAD_KEY] and "embeds" not in payload
            if ignored_embeds and self._left_empty(message, payload, files):
                raise ApiError(400, 50006, "Cannot send an empty message")
        validate_message(payload, files, size_limit=self.fake.attachment_size_limit, creating=False)
        self.store.edit(message, payload, files)
        await self.fake.dispatch_message_event("MESSAGE_UPDATE", message)
        return json_response(message.payload())

    async def channel_delete_message(self, request: web.Request) -> web.Response:
        """Delete Message (message.mdx): another user's message needs MANAGE_MESSAGES."""
        message, channel, permissions = self.channel_message(request)
        if message.author.id != self.fake.bot_user.id and not permissions & PERM_MANAGE_MESSAGES:
            raise missing_permissions()
        if channel.is_thread:
            self.fake.thread_lifecycle.before_delete(channel, permissions)
        message.deleted = True
        await self.fake.dispatch_message_event("MESSAGE_DELETE", message)
        return web.Response(status=204)

    async def attachment(self, request: web.Request) -> web.Response:
        attachment = self.fake.attachments.get(int(request.match_info["aid"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=attachment.data, content_type=attachment.content_type or "application/octet-stream")

    async def unhandled(self, request: web.Request) -> web.Response:
        raise ApiError(404, 0, f"fake discord has no route for {request.method} {request.path}")
