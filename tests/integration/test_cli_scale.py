"""Issue #14's command line: ``story --no-wait`` queues and returns, ``list [--json]`` follows the stories on
either engine, and ``db copy --to postgresql://...`` moves a SQLite database into an empty PostgreSQL one.

Each command runs in this process (``main(argv)``, see tests/support/cli_main.py), with the environment and
working folder a subprocess would get; with PostgreSQL, DATABASE_URL names an empty schema of the test server.
The target URLs of ``db copy`` carry a password the trust-auth test server ignores: it must never be shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from bot.errors import StorageError
from storage.copy import Table, copy_database, in_dependency_order
from storage.db import schema_version_supported
from tests.support.cli import PROMPT, STORYBOT, assert_refused, cli_env
from tests.support.cli_main import Storybot
from tests.support.database import open_database
from tests.support.postgres import empty_schema

PASSWORD = "Not-The-Password-7f3a9c"  # the trust-auth test server ignores it; long enough to be masked in logs
STORY_KEYS = {
    "id", "status", "title", "prompt", "created_at", "updated_at", "scene_count", "video", "error", "page", "scenes",
}  # fmt: skip


@pytest.fixture
def engine_cli(cli: Storybot, database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Storybot:
    """``cli`` on the ``engine`` fixture's engine: SQLite at DATABASE_PATH, or PostgreSQL at DATABASE_URL."""
    if database_url is not None:
        monkeypatch.setenv("DATABASE_URL", database_url)
    return cli


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def listed(cli: Storybot, *args: str, env: dict[str, str] | None = None) -> list[dict[str, object]]:
    document = json.loads(ok(cli("list", "--json", *args, env=env)))
    assert isinstance(document, list)
    return document


def queued_id(result: subprocess.CompletedProcess[str]) -> str:
    lines = ok(result).splitlines()
    assert len(lines) == 1 and result.stderr == "", (result.stdout, result.stderr)
    found = re.fullmatch(r"Story ([0-9a-f]{32}) queued \(.+\): .*`storybot work`.*`storybot list`.*", lines[0])
    assert found, lines[0]
    return found.group(1)


def job_counts(database_url: str | None, db_path: Path) -> dict[str, int]:
    async def read() -> dict[str, int]:
        db = await open_database(database_url, db_path)
        try:
            rows = await db.fetchall("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        finally:
            await db.close()
        return {str(row[0]): int(row[1]) for row in rows}

    return asyncio.run(read())


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- story --no-wait, then work, with list following ----------------------------------------------


def test_no_wait_queues_the_story_and_work_renders_it(
    engine_cli: Storybot, tmp_path: Path, database_url: str | None
) -> None:
    books = tmp_path / "books"
    story_id = queued_id(engine_cli("story", PROMPT, "--scenes", "2", "--no-wait", "--out", books))

    # Queued, not rendered: one write job waits, nothing was drawn, no page yet.
    assert job_counts(database_url, tmp_path / "storybot.db") == {"queued": 1}
    assert files_under(books) == [] and files_under(tmp_path / "media") == []
    [story] = listed(engine_cli)
    assert story["id"] == story_id and story["status"] == "queued" and story["scenes"] == []
    assert story["title"] is None and story["prompt"] == PROMPT and story["scene_count"] == 2
    assert story["page"] == str(books.resolve() / story_id / "index.html")
    shown = ok(engine_cli("list"))
    assert shown.startswith(f"{story_id}  queued") and "2 scenes, not written yet" in shown

    assert "queue empty" in ok(engine_cli("work"))
    [story] = listed(engine_cli)
    assert story["status"] == "complete" and story["title"]
    assert story["scenes"] == [
        {"index": 1, "image": "complete", "clip": "none"},
        {"index": 2, "image": "complete", "clip": "none"},
    ]
    assert Path(str(story["page"])).is_file()
    assert set(job_counts(database_url, tmp_path / "storybot.db")) == {"succeeded"}
    shown = ok(engine_cli("list"))
    assert f"“{story['title']}”" in shown.splitlines()[0]
    assert "  scene 1   image complete    clip none" in shown and "  scene 2 " in shown


def test_list_shows_the_newest_first_with_each_scenes_picture_and_clip(engine_cli: Storybot, tmp_path: Path) -> None:
    ok(engine_cli("story", PROMPT, "--scenes", "1", "--video", "--out", tmp_path / "out"))
    queued = queued_id(engine_cli("story", "a lighthouse keeper befriends a storm", "--no-wait"))

    stories = listed(engine_cli)
    assert [story["status"] for story in stories] == ["queued", "complete"]
    assert stories[0]["id"] == queued
    for story in stories:
        assert set(story) == STORY_KEYS  # the same keys for every story, null where there is no value
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", str(story["created_at"]))
    rendered = stories[1]
    assert rendered["video"] is True and rendered["error"] is None
    assert rendered["scenes"] == [{"index": 1, "image": "complete", "clip": "complete"}]

    text = ok(engine_cli("list"))
    blocks = text.strip().split("\n\n")
    assert [block.split()[0] for block in blocks] == [queued, rendered["id"]]
    assert "  scene 1   image complete    clip complete" in blocks[1]

    assert [story["id"] for story in listed(engine_cli, "--limit", "1")] == [queued]
    limited = ok(engine_cli("list", "--limit", "1"))
    assert limited.strip().endswith("the newest 1 of 2 stories; --limit 0 shows them all")
    assert len(listed(engine_cli, "--limit", "0")) == 2
    assert_refused(engine_cli("list", "--limit", "-1"), "--limit must be 0")


def test_list_of_an_empty_database(engine_cli: Storybot, tmp_path: Path) -> None:
    assert ok(engine_cli("list")) == "no stories yet\n"
    assert listed(engine_cli) == []
    assert not (tmp_path / "storybot.db").exists()  # no database made just to say there is none


# What `list` must not import: it answers at once, like `models` (bot/cli.py's docstring).
HEAVY = ["discord", "openai", "google.genai", "httpx", "av", "PIL", "bot.runtime", "bot.providers", "bot.app"]
IMPORTED_BY = """
import contextlib, io, json, sys
from bot.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def test_list_imports_neither_the_runtime_nor_the_providers(cli: Storybot, tmp_path: Path) -> None:
    story_id = queued_id(cli("story", PROMPT, "--no-wait"))
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY, "list"],
        env=cli_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["code"] == 0 and story_id in report["out"]
    assert {"storage.stories", "bot.domain"} <= set(report["modules"])
    assert sorted(set(HEAVY) & set(report["modules"])) == []


# --- db copy ---------------------------------------------------------------------------------------


def with_password(url: str, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def sqlite_tables(db: Path) -> dict[str, list[str]]:
    """Every table of the SQLite database and its columns, from its own schema."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: [row[1] for row in conn.execute(f'PRAGMA table_info("{name}")')]
            for name in names
            if not name.startswith("sqlite_")
        }


def sqlite_rows(db: Path, tables: dict[str, list[str]]) -> dict[str, Counter[tuple[object, ...]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {
            name: Counter(conn.execute(f"SELECT {', '.join(columns)} FROM {name}").fetchall())
            for name, columns in tables.items()
        }


def postgres_rows(url: str, tables: dict[str, list[str]]) -> dict[str, Counter[tuple[object, ...]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            name: Counter(conn.execute(f"SELECT {', '.join(columns)} FROM {name}").fetchall())
            for name, columns in tables.items()
        }


def fill_the_tables_no_offline_story_touches(db: Path) -> None:
    """Rows in the tables a Discord bot and the health monitor fill, with 64-bit Discord ids."""
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "INSERT INTO guild_config (guild_id, routing, video_enabled, daily_image_limit, alert_channel_id, "
            "updated_by, updated_at) VALUES (912345678901234567, '{\"image\": {}}', 0, 5, 987654321098765432, "
            "123456789012345678, 1700000000.25)"
        )
        conn.execute("INSERT INTO usage VALUES (912345678901234567, 123456789012345678, '2025-01-02', 3, 1)")
        conn.execute(
            "INSERT INTO model_call_buckets VALUES ('local-sketch', 1700000100.0, 4, 3, 1, 812.5, '{\"3\": 4}', "
            "'{\"transient\": 1}')"
        )
        conn.execute("INSERT INTO health_meta VALUES ('calls_folded_through', 6)")
        conn.execute("INSERT INTO health_alerts VALUES ('down:gpt-image-1.5', 'gpt-image-1.5 is down', 1700000200.5)")


@pytest.fixture
def rendered(cli: Storybot, tmp_path: Path) -> Path:
    """A SQLite database with a story rendered offline (with video), one queued, and a row in every table the
    offline story leaves empty."""
    ok(cli("story", PROMPT, "--scenes", "2", "--video", "--out", tmp_path / "out"))
    queued_id(cli("story", "a lighthouse keeper befriends a storm", "--no-wait"))
    db = tmp_path / "storybot.db"
    fill_the_tables_no_offline_story_touches(db)
    return db


def no_password(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr, (result.stdout, result.stderr)
    return result


def test_db_copy_moves_every_table_into_an_empty_postgresql_schema(
    cli: Storybot, rendered: Path, postgres_url: str
) -> None:
    tables = sqlite_tables(rendered)
    before = sqlite_rows(rendered, tables)
    named = {"stories", "scenes", "media_assets", "jobs", "deliveries", "guild_config", "usage", "model_health",
             "model_calls", "model_call_buckets", "health_meta", "health_alerts"}  # fmt: skip
    assert named <= set(tables)
    assert all(before[name] for name in named), {name: len(before[name]) for name in named}
    as_sqlite = listed(cli)

    target = with_password(postgres_url)
    out = ok(no_password(cli("-v", "db", "copy", "--to", target)))

    # One line per table, with its row count, in an order the foreign keys allow.
    counts = {m.group(1): int(m.group(2).replace(",", "")) for m in re.finditer(r"^  (\w+) +([\d,]+)$", out, re.M)}
    assert counts == {name: sum(rows.values()) for name, rows in before.items()}
    order = list(counts)
    assert order.index("stories") < order.index("scenes") < order.index("media_assets")
    assert order.index("stories") < min(order.index("jobs"), order.index("deliveries"))
    assert re.search(rf"^  total +{sum(counts.values()):,} rows$", out, re.M), out
    assert "into the PostgreSQL database postgres on 127.0.0.1:" in out
    assert sqlite_rows(rendered, tables) == before  # the source is left as it was

    copied = postgres_rows(postgres_url, tables)
    assert copied == before  # every row of every table, value for value (64-bit ids and times included)

    # The copy serves storybot as the SQLite database did.
    assert listed(cli, env={"DATABASE_URL": target}) == as_sqlite

    # A second copy into the same, now full, target is refused and changes nothing.
    line = assert_refused(no_password(cli("db", "copy", "--to", target)), "already holds storybot data")
    assert "nothing was copied" in line and "in stories" in line
    assert postgres_rows(postgres_url, tables) == copied

    # The next call record gets an id past the copied ones (the identity sequence was moved).
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        [(largest,)] = conn.execute("SELECT MAX(id) FROM model_calls").fetchall()
        [(new_id,)] = conn.execute(
            "INSERT INTO model_calls (model_key, started_at, latency_ms, outcome) VALUES ('x', 1, 1, 'ok') RETURNING id"
        ).fetchall()
    assert largest >= 1 and new_id == largest + 1


def test_db_copy_is_all_or_nothing(cli: Storybot, rendered: Path, postgres_url: str) -> None:
    # A value PostgreSQL cannot hold (text with a NUL), in a table copied after the stories and scenes.
    with contextlib.closing(sqlite3.connect(rendered)) as conn, conn:
        conn.execute("INSERT INTO health_alerts VALUES ('nul', ?, 1.0)", ("a message with a NUL: \x00",))
    tables = sqlite_tables(rendered)
    target = with_password(postgres_url)

    # DATABASE_URL names the target when --to is left out.
    result = no_password(cli("db", "copy", env={"DATABASE_URL": target}))
    assert_refused(result, "copying health_alerts failed, so nothing was copied")
    assert result.stdout == ""
    assert all(not rows for rows in postgres_rows(postgres_url, tables).values())

    with contextlib.closing(sqlite3.connect(rendered)) as conn, conn:
        conn.execute("DELETE FROM health_alerts WHERE alert_key = 'nul'")
    ok(no_password(cli("db", "copy", env={"DATABASE_URL": target})))  # the failed copy left the target empty
    assert postgres_rows(postgres_url, tables) == sqlite_rows(rendered, tables)


def test_db_copy_refusals_name_no_password(cli: Storybot, rendered: Path, tmp_path: Path) -> None:
    assert_refused(cli("db", "copy"), "--to postgresql://")
    wrong_scheme = no_password(cli("db", "copy", "--to", f"mysql://root:{PASSWORD}@127.0.0.1/storybot"))
    assert_refused(wrong_scheme, "--to must be a PostgreSQL URL")
    nobody_there = no_password(cli("db", "copy", "--to", f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/postgres"))
    assert_refused(nobody_there, "cannot connect to the PostgreSQL database postgres on 127.0.0.1:1")
    unreadable = no_password(cli("db", "copy", "--to", f"postgresql://postgres:{PASSWORD}@[127.0.0.1/postgres"))
    assert_refused(unreadable, "the --to URL cannot be read as a PostgreSQL URL")  # psycopg quotes the URL

    missing = tmp_path / "nowhere.db"
    with empty_schema() as url:
        result = no_password(cli("db", "copy", "--to", with_password(url), env={"DATABASE_PATH": str(missing)}))
        assert_refused(result, "no database at DATABASE_PATH")
    assert not missing.exists()


async def test_copy_in_small_batches_and_several_rows_per_insert(rendered: Path, postgres_url: str) -> None:
    """storage/copy.py with batches of 3 rows read and 2 rows to an INSERT: every read after the first pages on
    by rowid, and full groups and a remainder are inserted (the CLI's 2,000 and 50 see neither in a small story)."""
    tables = sqlite_tables(rendered)
    source = await open_database(None, rendered)
    target = await open_database(postgres_url, rendered)
    try:
        copied = await copy_database(source, target, batch_rows=3, rows_per_insert=2)
    finally:
        await target.close()
        await source.close()
    before = sqlite_rows(rendered, tables)
    assert copied == {name: sum(rows.values()) for name, rows in before.items()}
    assert max(copied.values()) > 3 and any(count % 2 for count in copied.values())
    assert postgres_rows(postgres_url, tables) == before


def test_tables_are_ordered_by_their_foreign_keys() -> None:
    def table(name: str, *references: str) -> Table:
        return Table(name, ("id",), frozenset(references), None)

    given = [table("media", "scenes"), table("scenes", "stories"), table("notes", "scenes", "notes"), table("stories")]
    assert [t.name for t in in_dependency_order(given)] == ["stories", "scenes", "media", "notes"]
    with pytest.raises(StorageError, match="form a cycle"):
        in_dependency_order([table("a", "b"), table("b", "a"), table("c")])


def test_db_migrate_check_and_backup_work_on_postgresql(
    cli: Storybot, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", with_password(postgres_url))
    migrated = ok(cli("db", "migrate"))
    assert f"schema version {schema_version_supported()}" in migrated and "0001_initial.sql" in migrated
    assert "the PostgreSQL database" in migrated and PASSWORD not in migrated
    assert "nothing to apply" in ok(cli("db", "migrate"))
    assert "ok (reading every table found nothing wrong)" in ok(cli("db", "check"))
    ok(cli("story", PROMPT, "--scenes", "1", "--no-wait"))

    backup = tmp_path / "backups" / "storybot.dump"
    said = no_password(cli("db", "backup", str(backup)))
    assert said.returncode == 0 and "pg_dump archive" in said.stdout, said.stderr
    listing = subprocess.run(["pg_restore", "--list", str(backup)], capture_output=True, text=True, check=True)
    assert "TABLE DATA" in listing.stdout and " stories " in listing.stdout and " jobs " in listing.stdout
    assert_refused(cli("db", "backup", str(backup)), "already exists")  # never over an earlier backup


async def test_processes_starting_together_on_an_empty_postgresql_schema_migrate_it_once(tmp_path: Path) -> None:
    """A gateway and its workers started at the same moment all migrate on start: one applies the migrations
    under the write lock, the others then find them applied (they must not apply 0001 again)."""
    env = cli_env(tmp_path)
    for _ in range(2):
        with empty_schema() as url:
            processes = [
                await asyncio.create_subprocess_exec(
                    *STORYBOT,
                    "db",
                    "migrate",
                    env={**env, "DATABASE_URL": url},
                    cwd=tmp_path,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                for _ in range(4)
            ]
            results = [await process.communicate() for process in processes]
            codes = [process.returncode for process in processes]
            assert codes == [0, 0, 0, 0], [err.decode() for _, err in results]
            applied = [out.decode() for out, _ in results if b"0001_initial.sql" in out]
            assert len(applied) == 1, [out.decode() for out, _ in results]
