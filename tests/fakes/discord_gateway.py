"""Gateway websocket of the fake Discord: HELLO, heartbeats, IDENTIFY, RESUME, RECONNECT, INVALID_SESSION
and event dispatch.

Frames are TEXT frames of plain JSON; discord.py asks for zlib-stream compression but parses text
frames without decompressing, so compression is ignored.

Every dispatch goes out under one lock, so sequence numbers reach the client in order, including events
that synchronous test helpers queue with ``dispatch_soon`` (sent by a task, or before the next dispatch).

Reconnects follow discord/discord-api-docs developers/events/gateway.mdx, "Resuming": after op 7 Reconnect,
or op 9 Invalid Session with ``d: true``, the client resumes and the gateway replays the events it missed,
then sends RESUMED. After op 9 with ``d: false`` the session is gone: the client identifies afresh, and
events dispatched meanwhile are lost (they belonged to the dead session).

Sharding follows discord/discord-api-docs docs/events/gateway.md, "Sharding": a session that identifies
with ``shard: [shard_id, num_shards]`` gets that pair back in READY (gateway-events.md "Ready": ``shard?``)
and only the guilds whose ``(guild_id >> 22) % num_shards`` is its shard_id ("Sharding Formula"); events
without a guild (DMs) go to shard 0 only. A session that sends no ``shard`` gets everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.discord_state import JSON

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41250
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_UNKNOWN_ERROR = 4000  # resumable
OP_RECONNECT = 7
OP_INVALID_SESSION = 9


@dataclass
class GatewaySession:
    id: str
    seq: int = 0
    events: list[JSON] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    alive: bool = True
    expect_resume: bool = False
    resumes: int = 0
    shard: tuple[int, int] | None = None  # (shard_id, num_shards) from IDENTIFY

    def owns(self, guild_id: int | None) -> bool:
        """Whether an event of this guild (None: a DM) goes to this session (module docstring, Sharding)."""
        if self.shard is None:
            return True
        shard_id, count = self.shard
        return shard_id == (0 if guild_id is None else (guild_id >> 22) % count)


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: list[GatewaySession] = []
        self.identifies = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._lock = asyncio.Lock()
        self._pending: list[tuple[str, JSON]] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions if s.alive]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: GatewaySession | None = None
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None})
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                op, data = frame.get("op"), frame.get("d")
                if op == 1:
                    await self._send(ws, {"op": 11})
                elif op == 2:
                    session = await self._identify(ws, data)
                elif op == 6:
                    session = await self._resume(ws, data)
                elif op == 8:
                    await self._send_member_chunk(ws, data)
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
                if not session.expect_resume:
                    session.alive = False
            self.fake.notifier.notify()
        return ws

    async def _send(self, ws: web.WebSocketResponse, frame: JSON) -> None:
        if not ws.closed:
            # A socket the client is closing right now: the frame stays in the session's log for a resume.
            with contextlib.suppress(ConnectionError):
                await ws.send_str(json.dumps(frame))

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> GatewaySession | None:
        if data.get("token") != self.fake.token:
            await ws.close(code=CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return None
        async with self._lock:
            await self._flush_locked()  # events queued before this session existed are not for it
            self.identifies += 1
            shard = (int(data["shard"][0]), int(data["shard"][1])) if data.get("shard") else None
            session = GatewaySession(id=uuid.uuid4().hex, ws=ws, shard=shard)
            self.sessions.append(session)
            ours = session.owns(self.fake.guild_id)
            await self._emit(session, "READY", self.fake.ready_payload(session.id, shard=session.shard, guild=ours))
            if ours:
                await self._emit(session, "GUILD_CREATE", self.fake.guild_create_payload())
        self.fake.notifier.notify()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: JSON) -> GatewaySession | None:
        session = next((s for s in self.sessions if s.id == data.get("session_id") and s.alive), None)
        if session is None or data.get("token") != self.fake.token:
            await self._send(ws, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return None
        async with self._lock:
            await self._flush_locked()  # logged for the session, so replayed below
            session.ws = ws
            session.expect_resume = False
            last_seen = int(data.get("seq") or 0)
            for frame in list(session.events):
                if frame["s"] > last_seen:
                    await self._send(ws, frame)
            session.resumes += 1
            await self._emit(session, "RESUMED", {})
        self.fake.notifier.notify()
        return session

    async def _send_member_chunk(self, ws: web.WebSocketResponse, data: JSON) -> None:
        members = [m.payload() for m in self.fake.members.values()]
        chunk = {"guild_id": str(self.fake.guild_id), "members": members, "chunk_index": 0, "chunk_count": 1}
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        frame = {"op": 0, "t": "GUILD_MEMBERS_CHUNK", "s": None, "d": chunk}
        await self._send(ws, frame)

    async def _emit(self, session: GatewaySession, event: str, data: JSON) -> None:
        session.seq += 1
        frame = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if session.ws is not None:
            await self._send(session.ws, frame)

    async def dispatch(self, event: str, data: JSON, *, required: bool = True, latest_only: bool = False) -> None:
        """Send a dispatch event to connected bots; events for a bot that is resuming are replayed later."""
        async with self._lock:
            await self._flush_locked()
            targets = self._owners(data)
            targets = targets[-1:] if latest_only else targets
            if not targets and required:
                raise RuntimeError(f"no bot is connected to the fake gateway to receive {event}")
            for session in targets:
                await self._emit(session, event, data)

    def dispatch_soon(self, event: str, data: JSON) -> None:
        """Queue an event from synchronous code; it goes out in order, before any later dispatch."""
        self._pending.append((event, data))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop yet: the next dispatch, identify or flush sends it
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self.flush())

    async def flush(self) -> None:
        """Send every queued event now."""
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        while self._pending:
            event, data = self._pending.pop(0)
            for session in self._owners(data):
                await self._emit(session, event, data)

    def _owners(self, data: JSON) -> list[GatewaySession]:
        """The live sessions an event goes to: those of the shard of its guild (module docstring)."""
        guild_id = data.get("guild_id") if isinstance(data, dict) else None
        return [s for s in self.live_sessions if s.owns(None if guild_id is None else int(guild_id))]

    def connected_session(self) -> GatewaySession:
        connected = [s for s in self.live_sessions if s.ws is not None]
        if not connected:
            raise RuntimeError("no bot is connected to the fake gateway")
        return connected[-1]

    async def drop_connection(self, code: int = CLOSE_UNKNOWN_ERROR) -> GatewaySession:
        """Close the newest bot's websocket with a resumable code; the bot reconnects and resumes."""
        session = self.connected_session()
        session.expect_resume = True
        assert session.ws is not None
        await session.ws.close(code=code, message=b"fake gateway restart")
        return session

    async def send_reconnect(self) -> GatewaySession:
        """Op 7 Reconnect (gateway-events.mdx "Reconnect", {"op": 7, "d": null}): the client closes and resumes."""
        session = self.connected_session()
        session.expect_resume = True
        await self._send_op(session, {"op": OP_RECONNECT, "d": None})
        return session

    async def invalidate_session(self, resumable: bool) -> GatewaySession:
        """Op 9 Invalid Session (gateway-events.mdx "Invalid Session"). With ``d: false`` the session ends here:
        nothing more is logged or replayed for it, and the client must identify again."""
        session = self.connected_session()
        if resumable:
            session.expect_resume = True
        else:
            session.alive = False
        await self._send_op(session, {"op": OP_INVALID_SESSION, "d": resumable, "s": None, "t": None})
        return session

    async def _send_op(self, session: GatewaySession, frame: JSON) -> None:
        async with self._lock:
            await self._flush_locked()
            if session.ws is not None:
                await self._send(session.ws, frame)

    async def close_all(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake discord stopping")
