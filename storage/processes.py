"""The processes serving the database and their heartbeats (migration 0009)."""

from __future__ import annotations

from bot.domain import ProcessBeat
from storage.db import SyncConn, Target, fetch_all, write

_COLUMNS = "id, role, host, pid, shards, worker_slots, started_at, beat_at"


async def beat(target: Target, process: ProcessBeat, *, forget_before: float) -> None:
    """Record that ``process`` is alive now (its ``beat_at``), and forget the rows whose beat stopped long ago."""

    def work(conn: SyncConn) -> None:
        conn.execute(
            f"INSERT INTO processes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "role = excluded.role, shards = excluded.shards, worker_slots = excluded.worker_slots, "
            "beat_at = excluded.beat_at",
            (process.id, process.role, process.host, process.pid, process.shards, process.worker_slots,
             process.started_at, process.beat_at),
        )  # fmt: skip
        conn.execute("DELETE FROM processes WHERE beat_at < ?", (forget_before,))

    await write(target, work)


async def alive(target: Target, since: float) -> list[ProcessBeat]:
    """The processes that beat at or after ``since``, oldest first."""
    rows = await fetch_all(
        target, f"SELECT {_COLUMNS} FROM processes WHERE beat_at >= ? ORDER BY started_at, id", (since,)
    )
    return [
        ProcessBeat(
            row["id"],
            row["role"],
            row["host"],
            int(row["pid"]),
            row["shards"],
            int(row["worker_slots"]),
            float(row["started_at"]),
            float(row["beat_at"]),
        )  # fmt: skip
        for row in rows
    ]


async def forget(target: Target, process_id: str) -> None:
    """A process stopping says so, rather than leaving its row to go stale."""
    await write(target, lambda conn: conn.execute("DELETE FROM processes WHERE id = ?", (process_id,)))
