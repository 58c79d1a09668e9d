"""Issue #11, the database: a file with corrupted pages, a database that does not exist, and a database file
deleted or replaced under a running process. The real ``storybot`` command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.errors import StorageError
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from tests.fakes.discord import FakeDiscord
from tests.support.cli import PROMPT, STORYBOT, cli_env, read_until, sha256, storybot
from tests.support.discord_harness import OWNER
from tests.support.environment import isolate

pytestmark = pytest.mark.sqlite_only  # a damaged, missing, replaced or deleted SQLite file

COMMAND_TIMEOUT_S = 60  # each damaged-database command answers in a second or two
BOT_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def real_story_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with a database holding a finished story (its WAL folded in), its media and its storybook,
    made once per module by the real command; each test damages a copy of it."""
    folder = tmp_path_factory.mktemp("real-story")
    with pytest.MonkeyPatch.context() as env:  # module scope: the autouse isolation fixture runs per test only
        isolate(env, folder)
        made = storybot(folder, "story", PROMPT, "--scenes", "2", "--out", "out", timeout=COMMAND_TIMEOUT_S)
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(folder / "storybot.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    yield folder


@pytest.fixture
def a_real_database(real_story_folder: Path, tmp_path: Path) -> Path:
    """A copy, in the test's own folder, of the real story folder; the path of its database."""
    shutil.copytree(real_story_folder, tmp_path, dirs_exist_ok=True)
    return tmp_path / "storybot.db"


def overwrite_pages(db: Path, pages: list[int], seed: int = 11) -> None:
    """Garbage over whole pages (1 is the first), as a bad disk or a stray write leaves them."""
    with sqlite3.connect(db) as conn:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        count = conn.execute("PRAGMA page_count").fetchone()[0]
    assert max(pages) < count, (pages, count)
    rng = random.Random(seed)
    with db.open("r+b") as handle:
        for page in pages:
            handle.seek((page - 1) * size)
            handle.write(rng.randbytes(size))


def quick_check(db: Path) -> str:
    try:
        with sqlite3.connect(db) as conn:
            return str(conn.execute("PRAGMA quick_check").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return str(exc)


DAMAGE = {"table-pages": [2, 3, 4, 5, 6], "header-page": [1]}
COMMANDS = {
    "status": ["status"],
    "db-migrate": ["db", "migrate"],
    "work": ["work"],
    "story": ["story", PROMPT, "--scenes", "1", "--out", "out2"],
    "run-offline": ["run", "--out", "out2"],
    "run-bot": ["run"],
}


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_damaged_database_is_one_line_and_a_failure_from_every_command(
    tmp_path: Path, a_real_database: Path, reserved_port: int, damage: str, command: str
) -> None:
    db = a_real_database
    overwrite_pages(db, DAMAGE[damage])
    assert quick_check(db) != "ok"
    before = sha256(db)
    env = {}
    if command == "run-bot":  # refused before it would try to reach Discord (nothing listens there)
        env = {"DISCORD_TOKEN": "a.valid-looking.token", "DISCORD_API_BASE": f"http://127.0.0.1:{reserved_port}"}

    result = storybot(tmp_path, *COMMANDS[command], env=env, timeout=COMMAND_TIMEOUT_S)

    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("storybot: the database at DATABASE_PATH is damaged ("), lines
    assert "storybot db check" in lines[0] and str(db) not in lines[0]
    assert result.returncode != 0
    # Nothing reports success, and nothing was rendered.
    expected_stdout = "No DISCORD_TOKEN set: rendering a demo story offline with the local models.\n"
    assert result.stdout == (expected_stdout if command == "run-offline" else ""), result.stdout
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())
    assert sha256(db) == before


def test_db_check_says_ok_or_what_is_wrong(tmp_path: Path, a_real_database: Path) -> None:
    db = a_real_database
    good = storybot(tmp_path, "db", "check")
    assert (good.returncode, good.stderr) == (0, ""), good.stderr
    assert good.stdout.strip() == f"{db}: ok (SQLite's integrity check found nothing wrong)"

    overwrite_pages(db, [3, 4])
    bad = storybot(tmp_path, "db", "check")
    assert bad.returncode == 1, (bad.stdout, bad.stderr)
    assert "Traceback" not in bad.stderr + bad.stdout
    [line] = bad.stdout.splitlines()
    assert line.startswith("damaged: "), line
    assert "restore a backup" in line

    overwrite_pages(db, [1])
    header = storybot(tmp_path, "db", "check")
    assert header.returncode == 1 and header.stdout.startswith("damaged: file is not a database"), header.stdout


@pytest.mark.parametrize("command", [["status"], ["db", "check"], ["db", "backup", "copy.db"]])
def test_a_database_that_does_not_exist_is_said_so_and_not_created(tmp_path: Path, command: list[str]) -> None:
    result = storybot(tmp_path, *command, env={"DATABASE_PATH": str(tmp_path / "nowhere" / "storybot.db")})
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("storybot: there is no database at DATABASE_PATH"), result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.returncode == 2 and result.stdout == ""
    assert list(tmp_path.iterdir()) == []


async def test_a_burst_run_stops_when_its_database_file_is_replaced(tmp_path: Path) -> None:
    """`storybot work` on a file replaced under it: it claims nothing more and ends with one plain error."""
    settings = load_settings(database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media")
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        await rt.stories.create(StoryOptions(prompt=PROMPT, scenes=2))
        queued = await rt.queue.counts()
        elsewhere = tmp_path / "another.db"
        with sqlite3.connect(elsewhere) as conn:
            conn.execute("CREATE TABLE t (x)")
        os.replace(elsewhere, settings.database_path)
        with pytest.raises(StorageError, match="the database file was replaced by another file while storybot"):
            await rt.run_until_empty()
        assert await rt.queue.counts() == queued  # nothing was claimed from the file nobody reads any more


# --- a database file deleted under the running bot ----------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_member(OWNER, "owner")
        yield server


async def health_status(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/health") as response:
        return response.status


async def test_the_bot_notices_its_database_file_deleted(fake: FakeDiscord, tmp_path: Path, reserved_port: int) -> None:
    port = reserved_port
    db = tmp_path / "storybot.db"
    env = cli_env(tmp_path, DISCORD_TOKEN=fake.token, DISCORD_API_BASE=fake.api_base,
                  DISCORD_GATEWAY_URL=fake.gateway_url, HEALTH_HTTP_PORT=str(port))  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *STORYBOT, "run", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stderr: list[str] = []
    try:
        assert process.stderr is not None
        await read_until(process.stderr, "storybot ready as", stderr, BOT_TIMEOUT_S)
        assert await health_status(port) == 200

        shutil.move(db, tmp_path / "moved-away.db")  # as `rm` or a restore script would, under the live bot
        deadline = asyncio.get_running_loop().time() + BOT_TIMEOUT_S
        while await health_status(port) != 503:  # the next check (worker loop or this request) notices
            assert asyncio.get_running_loop().time() < deadline, "/health never answered 503"
            await asyncio.sleep(0.1)
        refused = await fake.slash(OWNER, "story", "new", options={"prompt": "a heron learns to sing", "scenes": 1})
        ack = await refused.ack()
        assert ack.ephemeral and "the bot cannot make stories right now" in ack.data["content"]
        assert await health_status(port) == 503

        process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(process.communicate(), BOT_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = "".join(stderr) + rest.decode(errors="replace")
    assert process.returncode == 0, log
    assert "Traceback" not in log, log
    noticed = [line for line in log.splitlines() if "was deleted while storybot was running" in line]
    assert len(noticed) == 1 and f"the database file {db} was deleted" in noticed[0], log
    assert not db.exists()  # nothing recreated it
