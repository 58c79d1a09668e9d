"""Open breakers and cooldowns shared by every process on the database: one worker's 429s protect the others.

Breakers and cooldowns live in each process's router (bot/routing/breaker.py), where every call consults
them without a database trip. ``SharedHolds.sync`` publishes the holds this process put on a model since the
last sync, then adopts every live hold found in the database, all in one transaction: a model another
process benched is benched here within one sync interval. A hold only ever moves later and ends by itself;
when an open breaker's time is up, each process sends its own single probe.
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.domain import ModelHold
from bot.errors import ErrorKind
from bot.routing.breaker import Breakers, Cooldowns
from storage import health as health_rows
from storage.db import Database

log = logging.getLogger(__name__)

BREAKER = "breaker"
COOLDOWN = "cooldown"


class SharedHolds:
    def __init__(self, db: Database, breakers: Breakers, cooldowns: Cooldowns, clock: Clock) -> None:
        self.db = db
        self.breakers = breakers
        self.cooldowns = cooldowns
        self.clock = clock
        self._known: dict[tuple[str, str], float] = {}  # (model, kind) -> the latest until published or adopted

    def _new_local(self) -> list[ModelHold]:
        holds = [ModelHold(key, BREAKER, until) for key, until in self.breakers.open_until().items()]
        holds += [
            ModelHold(key, COOLDOWN, until, kind.value) for key, (until, kind) in self.cooldowns.benched().items()
        ]
        return [hold for hold in holds if hold.until > self._known.get((hold.model_key, hold.kind), 0.0)]

    async def sync(self) -> list[ModelHold]:
        """Publish the holds we put on models since the last sync (a write only when there are some), then
        adopt everyone's (a read); returns the holds adopted."""
        mine = self._new_local()
        if mine:
            async with self.db.transaction() as conn:
                await health_rows.save_holds(conn, mine, self.clock.now())
            for hold in mine:
                self._known[(hold.model_key, hold.kind)] = hold.until
        adopted = []
        for hold in await health_rows.live_holds(self.db, self.clock.now()):
            key = (hold.model_key, hold.kind)
            if hold.until <= self._known.get(key, 0.0):
                continue  # ours, or adopted already
            self._known[key] = hold.until
            adopted.append(hold)
            if hold.kind == BREAKER:
                self.breakers.hold_open(hold.model_key, hold.until)
            else:
                self.cooldowns.hold(hold.model_key, hold.until, _kind(hold.reason))
        if adopted:
            now = self.clock.now()
            held = ", ".join(f"{hold.model_key} ({hold.kind}, {hold.until - now:.0f} s)" for hold in adopted)
            log.info("models held back by another process: %s", held)
        return adopted


def _kind(reason: str | None) -> ErrorKind:
    try:
        return ErrorKind(reason or "")
    except ValueError:
        return ErrorKind.QUOTA_EXHAUSTED  # a reason this version does not know still benches the model
