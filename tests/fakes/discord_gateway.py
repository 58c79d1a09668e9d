"""Gateway websocket of the fake Discord: HELLO, heartbeats, IDENTIFY, RESUME and event dispatch.

Frames are TEXT frames of plain JSON; discord.py asks for zlib-stream compression but parses text
frames without decompressing, so compression is ignored.
"""

from __future__ import annotations

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


@dataclass
class GatewaySession:
    id: str
    seq: int = 0
    events: list[JSON] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    alive: bool = True
    expect_resume: bool = False
    resumes: int = 0


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.sessions: list[GatewaySession] = []
        self.identifies = 0
        self._sockets: set[web.WebSocketResponse] = set()

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
            await ws.send_str(json.dumps(frame))

    async def _identify(self, ws: web.WebSocketResponse, data: JSON) -> GatewaySession | None:
        if data.get("token") != self.fake.token:
            await ws.close(code=CLOSE_AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return None
        self.identifies += 1
        session = GatewaySession(id=uuid.uuid4().hex, ws=ws)
        self.sessions.append(session)
        await self._emit(session, "READY", self.fake.ready_payload(session.id))
        await self._emit(session, "GUILD_CREATE", self.fake.guild_create_payload())
        self.fake.notifier.notify()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: JSON) -> GatewaySession | None:
        session = next((s for s in self.sessions if s.id == data.get("session_id") and s.alive), None)
        if session is None or data.get("token") != self.fake.token:
            await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})
            return None
        session.ws = ws
        session.expect_resume = False
        last_seen = int(data.get("seq") or 0)
        for frame in session.events:
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
        targets = self.live_sessions[-1:] if latest_only else self.live_sessions
        if not targets and required:
            raise RuntimeError(f"no bot is connected to the fake gateway to receive {event}")
        for session in targets:
            await self._emit(session, event, data)

    async def drop_connection(self, code: int = CLOSE_UNKNOWN_ERROR) -> GatewaySession:
        """Close the newest bot's websocket with a resumable code; the bot reconnects and resumes."""
        connected = [s for s in self.live_sessions if s.ws is not None]
        if not connected:
            raise RuntimeError("no bot is connected to the fake gateway")
        session = connected[-1]
        session.expect_resume = True
        assert session.ws is not None
        await session.ws.close(code=code, message=b"fake gateway restart")
        return session

    async def close_all(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake discord stopping")
