"""Issue #6, bad settings and environment variables: the real ``storybot`` command in a subprocess.

Every row must end with exit 2 and one line on stderr, starting "storybot: ", that names what to fix
(the variable, or the file it points at), with no traceback, and must leave the disk as it was: no
database file, no media folder, nothing new in the working folder. The one-line format is checked by
tests/integration/test_cli.py's ``assert_refused``; the settings themselves are unit-tested in
tests/unit/test_settings.py.

A rejected DISCORD_TOKEN is the exception to "nothing on disk": the bot checks its media folder is
writable (creating it) and opens (so creates) its database before it logs in, because discord.py's
login runs the setup that needs it. The row checks that the database holds no story.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord
from tests.support.cli import STORYBOT, assert_refused, cli_env

# Settings are refused before any database is opened, and its database rows are SQLite paths.
pytestmark = pytest.mark.sqlite_only

RUN_TIMEOUT_S = 60.0
HAS_PROC = Path("/proc/self").is_dir()  # a filesystem where nothing can be created, even by root


@dataclass(frozen=True)
class Row:
    id: str
    env: dict[str, str]  # "{tmp}" in a value is the row's working folder
    phrases: tuple[str, ...]
    args: tuple[str, ...] = ("models",)
    setup: Callable[[Path], None] | None = field(default=None, compare=False)
    discord: bool = False  # point DISCORD_API_BASE / DISCORD_GATEWAY_URL at a fake Discord
    discord_routes: tuple[str, ...] = ("get_me",)  # what the bot may ask the fake Discord before it stops
    needs_proc: bool = False


def write(name: str, text: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / name).write_text(text, encoding="utf-8")

    return setup


def make_dir(name: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / name).mkdir()

    return setup


ROWS = [
    Row("worker-concurrency-0", {"WORKER_CONCURRENCY": "0"}, ("WORKER_CONCURRENCY", "greater than or equal to 1")),
    Row("worker-concurrency-abc", {"WORKER_CONCURRENCY": "abc"}, ("WORKER_CONCURRENCY", "valid integer")),
    Row(
        "worker-concurrency-in-dotenv",
        {},
        ("WORKER_CONCURRENCY", "valid integer"),
        setup=write(".env", "WORKER_CONCURRENCY=four\n"),
    ),
    Row(
        "database-folder-cannot-be-created",
        {"DATABASE_PATH": "/proc/storybot/storybot.db"},
        ("cannot create the database folder /proc/storybot", "DATABASE_PATH"),
        needs_proc=True,
    ),
    Row(
        "database-in-a-read-only-place",
        {"DATABASE_PATH": "/proc/self/storybot.db"},
        ("cannot open the database /proc/self/storybot.db", "DATABASE_PATH"),
        needs_proc=True,
    ),
    Row(
        "database-path-is-a-folder",
        {"DATABASE_PATH": "{tmp}/a-folder"},
        ("cannot open the database", "a-folder", "DATABASE_PATH"),
        setup=make_dir("a-folder"),
    ),
    Row(
        "media-dir-under-a-file",
        {"MEDIA_DIR": "{tmp}/a-file/media"},
        ("cannot write to", "a-file/media", "MEDIA_DIR"),
        args=("story", "a fox who learns to fly", "--scenes", "1", "--out", "out"),
        setup=write("a-file", "not a folder"),
    ),
    Row(
        "primary-model-unknown",
        {"ROUTING__IMAGE__PRIMARY_MODEL": "nonexistent"},
        ("ROUTING__IMAGE__PRIMARY_MODEL", "unknown model 'nonexistent'", "local-sketch"),
    ),
    Row(
        "primary-model-of-another-modality",
        {"ROUTING__VIDEO__PRIMARY_MODEL": "local-sketch"},
        ("ROUTING__VIDEO__PRIMARY_MODEL", "'local-sketch' is an image model"),
    ),
    Row("fallbacks-not-json", {"ROUTING__IMAGE__FALLBACKS": "not-json"}, ("ROUTING__IMAGE__FALLBACKS", "JSON")),
    Row(
        "fallbacks-repeat-the-primary",
        {"ROUTING__IMAGE__PRIMARY_MODEL": "local-sketch", "ROUTING__IMAGE__FALLBACKS": '["local-sketch"]'},
        ("ROUTING__IMAGE", "repeats the primary model 'local-sketch'"),
    ),
    Row("routing-not-a-table", {"ROUTING": '{"image": 5}'}, ("ROUTING__IMAGE", "dictionary")),
    Row("max-retries-11", {"ROUTING__TEXT__MAX_RETRIES": "11"}, ("ROUTING__TEXT__MAX_RETRIES", "10")),
    Row("log-level-loud", {"LOG_LEVEL": "LOUD"}, ("LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")),
    Row("health-port-70000", {"HEALTH_HTTP_PORT": "70000"}, ("HEALTH_HTTP_PORT", "65535")),
    Row("alert-error-rate-2", {"ALERT_ERROR_RATE": "2"}, ("ALERT_ERROR_RATE", "less than or equal to 1")),
    Row("max-running-stories-0", {"MAX_RUNNING_STORIES": "0"}, ("MAX_RUNNING_STORIES", "greater than or equal to 1")),
    Row("video-poll-minus-1", {"VIDEO_POLL_S": "-1"}, ("VIDEO_POLL_S", "greater than or equal to 0")),
    Row("provider-timeout-nan", {"PROVIDER_TIMEOUT_S": "nan"}, ("PROVIDER_TIMEOUT_S",)),
    Row("dev-guild-id-0", {"DEV_GUILD_ID": "0"}, ("DEV_GUILD_ID", "greater than 0")),
    Row("reference-limit-1e9", {"MAX_REFERENCE_BYTES": "1e9"}, ("MAX_REFERENCE_BYTES", "valid integer")),
    Row("models-file-missing", {"MODELS_FILE": "{tmp}/missing.toml"}, ("models file", "missing.toml: not found")),
    Row(
        "models-file-malformed",
        {"MODELS_FILE": "{tmp}/models.toml"},
        ("models file", "models.toml: invalid TOML"),
        setup=write("models.toml", "models = [[[\n"),
    ),
    Row(
        "models-file-unknown-provider",
        {"MODELS_FILE": "{tmp}/models.toml"},
        ("models file", "models[0] ('house-art')", "provider"),
        setup=write("models.toml", '[[models]]\nkey = "house-art"\nprovider = "acme"\nmodality = "image"\n'),
    ),
    Row(
        "models-file-is-a-folder",
        {"MODELS_FILE": "{tmp}/a-folder"},
        ("models file", "a-folder: cannot read it"),
        setup=make_dir("a-folder"),
    ),
    Row(
        "discord-token-rejected",
        {"DISCORD_TOKEN": "garbage.not.a-token"},
        ("Discord rejected DISCORD_TOKEN", "copy the bot token again"),
        args=("run",),
        discord=True,
    ),
    Row(
        "bot-media-dir-under-a-file",
        {"DISCORD_TOKEN": "a.valid-looking.token", "MEDIA_DIR": "{tmp}/a-file/media"},
        ("cannot write to", "a-file/media", "MEDIA_DIR"),
        args=("run",),
        setup=write("a-file", "not a folder"),
        discord=True,
        discord_routes=(),  # refused before logging in
    ),
]


def on_disk(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def story_count(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM stories").fetchone()[0])


async def storybot(folder: Path, args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess without blocking the loop (a fake Discord may have to answer it)."""
    process = await asyncio.create_subprocess_exec(
        *STORYBOT, *args, env=env, cwd=folder, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    assert process.returncode is not None
    return subprocess.CompletedProcess([*STORYBOT, *args], process.returncode, stdout.decode(), stderr.decode())


def test_the_table_is_big_enough() -> None:
    assert len(ROWS) >= 20 and len({row.id for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_bad_setting_is_one_clear_line_exit_2_and_nothing_on_disk(tmp_path: Path, row: Row) -> None:
    if row.needs_proc and not HAS_PROC:
        pytest.skip("needs Linux's /proc, where nothing can be created")
    if row.setup is not None:
        row.setup(tmp_path)
    before = on_disk(tmp_path)
    env = cli_env(tmp_path, **{name: value.replace("{tmp}", str(tmp_path)) for name, value in row.env.items()})
    if row.discord:
        async with FakeDiscord() as fake:
            env.update(DISCORD_API_BASE=fake.api_base, DISCORD_GATEWAY_URL=fake.gateway_url)
            result = await storybot(tmp_path, row.args, env)
        assert [r.route for r in fake.requests] == list(row.discord_routes)  # where it stopped
    else:
        result = await storybot(tmp_path, row.args, env)
    line = assert_refused(result, *row.phrases)
    assert result.stdout == "", result.stdout
    database = Path(env["DATABASE_PATH"])
    if row.discord and database.exists():
        assert story_count(database) == 0, line
        media = Path(env["MEDIA_DIR"])  # checked writable (so created) before logging in, like the database
        before += [p for p in on_disk(tmp_path) if Path(p).name.startswith(database.name) or tmp_path / p == media]
    assert on_disk(tmp_path) == sorted(before), line
