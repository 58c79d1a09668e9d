"""Data model of the fake Discord: users, guild, channels, messages, interactions and what was recorded.

Ids are ``int`` on the Python side (so tests compare them with discord.py objects directly) and are
serialised as strings on the wire, as Discord does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from bot.clock import Clock

JSON = dict[str, Any]
T = TypeVar("T")

DISCORD_EPOCH_MS = 1_420_070_400_000
MIB = 1024 * 1024
DEFAULT_ATTACHMENT_SIZE_LIMIT = 10 * MIB
POLL_INTERVAL_S = 0.02

APP_ID = 100  # the application id and the bot user id
APP_OWNER_ID = 101
GUILD_ID = 110  # also the id of the @everyone role
GUILD_OWNER_ID = 130
TEXT_CHANNEL_ID = 120

# Permission bits: discord/discord-api-docs developers/topics/permissions.mdx, "Bitwise Permission Flags".
PERM_ADMINISTRATOR = 1 << 3
PERM_MANAGE_CHANNELS = 1 << 4
PERM_MANAGE_GUILD = 1 << 5
PERM_ADD_REACTIONS = 1 << 6
PERM_VIEW_CHANNEL = 1 << 10
PERM_SEND_MESSAGES = 1 << 11
PERM_SEND_TTS_MESSAGES = 1 << 12
PERM_MANAGE_MESSAGES = 1 << 13
PERM_EMBED_LINKS = 1 << 14
PERM_ATTACH_FILES = 1 << 15
PERM_READ_MESSAGE_HISTORY = 1 << 16
PERM_MANAGE_ROLES = 1 << 28
PERM_USE_APPLICATION_COMMANDS = 1 << 31
PERM_MANAGE_THREADS = 1 << 34
PERM_CREATE_PUBLIC_THREADS = 1 << 35
PERM_CREATE_PRIVATE_THREADS = 1 << 36
PERM_SEND_MESSAGES_IN_THREADS = 1 << 38
EVERYONE_PERMISSIONS = (
    PERM_ADD_REACTIONS
    | PERM_VIEW_CHANNEL
    | PERM_SEND_MESSAGES
    | PERM_EMBED_LINKS
    | PERM_ATTACH_FILES
    | PERM_READ_MESSAGE_HISTORY
    | PERM_USE_APPLICATION_COMMANDS
    | PERM_CREATE_PUBLIC_THREADS
    | PERM_SEND_MESSAGES_IN_THREADS
)
ALL_PERMISSIONS = (1 << 51) - 1
# What a DM allows (discord/discord-api-docs developers/interactions/receiving-and-responding.mdx: app_permissions
# in DMs with other users are ATTACH_FILES | EMBED_LINKS | MENTION_EVERYONE), plus reading and sending.
DM_PERMISSIONS = (
    PERM_VIEW_CHANNEL
    | PERM_SEND_MESSAGES
    | PERM_EMBED_LINKS
    | PERM_ATTACH_FILES
    | PERM_READ_MESSAGE_HISTORY
    | (1 << 17)
)

OVERWRITE_ROLE = 0  # discord-api-docs developers/resources/channel.mdx, "Overwrite Structure": 0 role, 1 member
OVERWRITE_MEMBER = 1

FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_HAS_THREAD = 1 << 5  # message.mdx "Message Flags": has an associated thread, with the same id as the message
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15
SETTABLE_MESSAGE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2

CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_PUBLIC_THREAD = 11
CHANNEL_PRIVATE_THREAD = 12


def iso_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def iso_at(seconds: float) -> str:
    """An ISO 8601 timestamp for a time read from the fake's clock (seconds since the epoch)."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat()


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # A bytes body keeps the Content-Type exactly "application/json", which discord.py compares with ==.
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json", headers=headers)


class Snowflakes:
    """Time-based, strictly increasing snowflakes."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


class ApiError(Exception):
    """A Discord REST error: status plus the JSON body {"message","code","errors"}."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or {}

    def body(self) -> JSON:
        body: JSON = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


class CallbackRejected(Exception):
    """The fake refused an interaction callback the test was waiting for (see ``error``)."""

    def __init__(self, error: RecordedError) -> None:
        super().__init__(f"{error.status} {error.code} {error.message} {error.errors}")
        self.error = error


@dataclass
class FakeUser:
    id: int
    username: str
    bot: bool = False

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.username,
            "avatar": None,
            "bot": self.bot,
            "flags": 0,
            "public_flags": 0,
        }


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class FakeMember:
    user: FakeUser
    role_ids: list[int]
    permissions: int  # effective guild permissions, sent as member.permissions in interactions
    joined_at: str = "2025-01-01T00:00:00+00:00"

    def payload(self, *, with_permissions: bool = False, permissions: int | None = None) -> JSON:
        """The member object; interactions add ``permissions`` (pass the ones computed in the channel)."""
        data: JSON = {
            "user": self.user.payload(),
            "roles": [str(r) for r in self.role_ids],
            "flags": 0,
            "joined_at": self.joined_at,
            "deaf": False,
            "mute": False,
            "nick": None,
        }
        if permissions is not None:
            data["permissions"] = str(permissions)
        elif with_permissions:
            data["permissions"] = str(self.permissions)
        return data


@dataclass
class Overwrite:
    """A channel permission overwrite (channel.mdx "Overwrite Structure"); ``id`` is a role or user id."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0

    def payload(self) -> JSON:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class FakeChannel:
    """A guild text channel, a thread, or a DM channel (``type`` 1, with ``recipients``).

    Thread state follows discord/discord-api-docs developers/topics/threads.mdx, "Active & Archived Threads":
    a thread archives after ``auto_archive_duration`` minutes without activity ("sending a message,
    unarchiving a thread, or changing the auto-archive time"), measured on the fake's clock.
    """

    id: int
    name: str
    type: int = CHANNEL_TEXT
    parent_id: int | None = None
    owner_id: int | None = None
    position: int = 0
    auto_archive_duration: int = 1440
    message_count: int = 0
    created_at: str = field(default_factory=iso_now)
    overwrites: dict[int, Overwrite] = field(default_factory=dict)  # by role or user id
    recipients: list[FakeUser] = field(default_factory=list)  # DM channels only
    last_activity_at: float = 0.0  # fake-clock seconds: creation, each message, unarchiving
    archive_changed_at: float = 0.0  # fake-clock seconds: thread_metadata.archive_timestamp
    archived_flag: bool = False  # archived explicitly, or settled after idling (see ``archived``)
    locked: bool = False
    clock: Clock | None = field(default=None, repr=False, compare=False)

    @property
    def is_thread(self) -> bool:
        return self.type in (CHANNEL_PUBLIC_THREAD, CHANNEL_PRIVATE_THREAD)

    @property
    def is_dm(self) -> bool:
        return self.type == CHANNEL_DM

    @property
    def idle_archive_at(self) -> float:
        return self.last_activity_at + self.auto_archive_duration * 60

    @property
    def archived(self) -> bool:
        """True once archived, including a thread whose inactivity period has run out on the clock."""
        if not self.is_thread:
            return False
        idle = self.clock is not None and self.clock.now() >= self.idle_archive_at
        return self.archived_flag or idle

    @property
    def archive_timestamp(self) -> float:
        if self.archived and not self.archived_flag:
            return self.idle_archive_at  # archived by the clock, not yet settled by the fake
        return self.archive_changed_at

    def payload(self, guild_id: int) -> JSON:
        if self.is_dm:  # channel.mdx "Example DM Channel"
            return {
                "id": str(self.id),
                "type": self.type,
                "last_message_id": None,
                "recipients": [u.payload() for u in self.recipients],
                "flags": 0,
            }
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "guild_id": str(guild_id),
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "nsfw": False,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.is_thread:
            # Threads have no overwrites of their own: they inherit the parent's (permissions.mdx,
            # "Inherited Permissions (Threads)").
            data.pop("permission_overwrites")
            data.update(
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                total_message_sent=self.message_count,
                member_count=1,
                thread_metadata={
                    "archived": self.archived,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": iso_at(self.archive_timestamp) if self.clock else self.created_at,
                    "locked": self.locked,
                    "create_timestamp": self.created_at,
                },
            )
        return data


@dataclass
class FakeAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.description:
            data["description"] = self.description
        return data


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    author: FakeUser
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    allowed_mentions: JSON | None = None
    tts: bool = False
    type: int = 0
    nonce: str | int | None = None
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    interaction_id: int | None = None  # set on messages written through an interaction token
    interaction_metadata: JSON | None = None
    deleted: bool = False
    edit_count: int = 0
    created_at: float = 0.0  # fake-clock seconds, for the nonce window
    thread: FakeChannel | None = field(default=None, repr=False, compare=False)  # a thread started from it

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & FLAG_LOADING)

    @property
    def custom_ids(self) -> list[str]:
        found: list[str] = []
        stack = list(self.components)
        while stack:
            component = stack.pop(0)
            if "custom_id" in component:
                found.append(component["custom_id"])
            stack.extend(component.get("components", []))
            if isinstance(component.get("accessory"), dict):
                stack.append(component["accessory"])
        return found

    def attachment(self, filename: str) -> FakeAttachment:
        for attachment in self.attachments:
            if attachment.filename == filename:
                return attachment
        raise KeyError(f"message {self.id} has no attachment {filename!r}: {[a.filename for a in self.attachments]}")

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "type": self.type,
            "content": self.content,
            "author": self.author.payload(),
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": self.tts,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "pinned": False,
            "components": self.components,
            "flags": self.flags,
        }
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.interaction_id is not None:
            data["webhook_id"] = str(self.author.id)
            data["application_id"] = str(self.author.id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.thread is not None:  # message.mdx "Message Structure": thread? started from this message
            data["thread"] = self.thread.payload(GUILD_ID)
        return data


@dataclass
class RecordedFile:
    field_name: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    method: str
    path: str
    route: str
    query: dict[str, str]
    json: Any = None  # the JSON body, or the decoded payload_json of a multipart body
    files: list[RecordedFile] = field(default_factory=list)
    status: int | None = None
    injected: bool = False

    @property
    def payload(self) -> Any:
        """The same as ``json``: the request's JSON body, or its decoded payload_json."""
        return self.json


@dataclass
class RecordedError:
    route: str
    path: str
    status: int
    code: int
    message: str
    errors: JSON


@dataclass
class CallbackRecord:
    interaction_id: int
    type: int
    data: JSON
    elapsed_s: float  # wall-clock seconds from dispatch to the callback reaching the fake
    status: int = 200
    files: list[RecordedFile] = field(default_factory=list)
    error: RecordedError | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(int(self.data.get("flags") or 0) & FLAG_EPHEMERAL)

    @property
    def choices(self) -> list[JSON]:
        return list(self.data.get("choices", []))


@dataclass
class FakeInteraction:
    id: int
    token: str
    type: int
    user_id: int
    channel_id: int
    payload: JSON
    dispatched_at: float  # injected clock, for deadlines and token expiry
    dispatched_perf: float  # time.perf_counter(), for measured latency
    attachment_size_limit: int
    message_id: int | None = None  # the message a component interaction came from
    attempts: list[CallbackRecord] = field(default_factory=list)
    callback: CallbackRecord | None = None  # the accepted callback
    original_id: int | None = None
    loading: bool = False
    followup_ids: list[int] = field(default_factory=list)
    expired: bool = False


class ChangeNotifier:
    """Lets tests wait for a condition on recorded state without sleeping for a fixed time."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], T | None], timeout_s: float, what: str = "condition") -> T:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    event = self._event
                    result = predicate()
                    if result:
                        return result
                    # Re-check now and then too: the predicate may read state outside the fake (a bot's).
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_INTERVAL_S):
                            await event.wait()
        except TimeoutError:
            raise TimeoutError(f"fake discord: {what} not met within {timeout_s} s") from None
