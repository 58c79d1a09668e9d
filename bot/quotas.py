"""Per-user limits: stories running at once, and daily image and clip quotas per server.

STUB (contract for this session's helpers): the signatures are fixed; the bodies are being written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.clock import Clock
from bot.errors import UserInputError
from bot.settings import Settings
from storage.db import Conn, Database

if TYPE_CHECKING:
    from bot.domain import Story


class LimitExceeded(UserInputError):
    """A limit stops this request; the message names the limit and when it resets."""


class Quotas:
    def __init__(self, db: Database, settings: Settings, clock: Clock) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    async def check_story(self, story: Story) -> None:
        """Before acknowledging /story new (reads only): raise LimitExceeded if this story would break a limit."""

    async def charge(self, conn: Conn, story: Story, *, images: int, videos: int) -> None:
        """Inside the transaction that queues the work: re-check the daily quotas and count the usage.
        Raises LimitExceeded (the transaction then rolls back, so nothing is stored)."""
