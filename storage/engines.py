"""Which engine holds the database: PostgreSQL when DATABASE_URL names one, else SQLite at DATABASE_PATH."""

from __future__ import annotations

from pathlib import Path

from bot.errors import ConfigError
from storage.db import Database
from storage.sqlite import SqliteDatabase

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def database_for(url: str | None, path: Path, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> Database:
    """The database the settings name, not opened yet. ``url`` may hold a password: it is never echoed."""
    if not url:
        return SqliteDatabase(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    if not url.startswith(POSTGRES_SCHEMES):
        raise ConfigError("DATABASE_URL must start with postgresql:// (or leave it unset for SQLite at DATABASE_PATH)")
    # imported here: start-up time (psycopg), and only where PostgreSQL is used
    from storage.postgres import PostgresDatabase

    return PostgresDatabase(url, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
