"""Records every provider call: health changes at once (in memory), rows reach SQLite in small batches.

The router's listener is synchronous and runs inside a generation, so ``__call__`` only updates the
in-memory book and appends to a buffer; a background task writes the buffer (and the health rows that
changed) in one transaction, taking whatever piled up meanwhile. A failed write keeps the records for
the next try; records are dropped only past ``max_buffer`` and never silently (an error is logged).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from bot.clock import Clock
from bot.domain import CallRecord
from bot.errors import StorageError
from bot.health.book import HealthBook
from storage import health as health_rows
from storage.db import Database

log = logging.getLogger(__name__)

MAX_BUFFER = 50_000


class CallRecorder:
    def __init__(self, db: Database, book: HealthBook, clock: Clock, *, max_buffer: int = MAX_BUFFER) -> None:
        self.db = db
        self.book = book
        self.clock = clock
        self.max_buffer = max_buffer
        self.written = 0
        self.dropped = 0
        self._buffer: list[CallRecord] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def __call__(self, record: CallRecord) -> None:
        """The router's call listener: cheap and synchronous."""
        self.book.on_call(record)
        self._buffer.append(record)
        overflow = len(self._buffer) - self.max_buffer
        if overflow > 0:
            del self._buffer[:overflow]
            self.dropped += overflow
            log.error("dropped %d call records: the database has not accepted writes for a while", overflow)
        self._schedule()

    def _schedule(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous test): the next flush() writes it
        self._task = loop.create_task(self._drain(), name="health-recorder")
        self._task.add_done_callback(_log_crash)

    async def _drain(self) -> None:
        while self._buffer:
            if not await self.flush():
                return  # the next call or the monitor's next tick tries again

    async def flush(self) -> bool:
        """Write the buffered calls and the changed health rows in one transaction; False if the write failed."""
        async with self._lock:
            records, self._buffer = self._buffer, []
            entries = self.book.take_dirty()
            if not records and not entries:
                return True
            try:
                async with self.db.transaction() as conn:
                    if records:
                        await health_rows.insert_calls(conn, records)
                    if entries:
                        await health_rows.save_health(conn, entries, self.clock.now())
            except (StorageError, sqlite3.Error) as exc:
                self._buffer[:0] = records
                self.book.mark_dirty(entry.key for entry in entries)
                log.warning("could not store %d call records yet (kept for the next try): %s", len(records), exc)
                return False
            self.written += len(records)
            return True

    async def aclose(self) -> None:
        """Finish the background write and flush what is left; say how much was lost if that fails."""
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if not await self.flush() and self._buffer:
            log.error("%d call records could not be stored before shutdown", len(self._buffer))


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the call recorder stopped", exc_info=task.exception())
