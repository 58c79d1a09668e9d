"""The real ``storybot`` command in a subprocess: bad input is refused cleanly, the commands work."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage.db import schema_version_supported

STORYBOT = [sys.executable, "-m", "bot.cli"]
PROMPT = "a fox who learns to fly"


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "DISCORD_TOKEN"}
    env = {k: v for k, v in env.items() if not k.startswith(("ROUTING__", "WORKER_"))}
    env.update({"DATABASE_PATH": str(tmp_path / "storybot.db"), "MEDIA_DIR": str(tmp_path / "media")})
    env.update(extra)
    return env


def storybot(
    tmp_path: Path, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STORYBOT, *map(str, args)],
        env=cli_env(tmp_path, **(env or {})), cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """Exit 2 with exactly one 'storybot: ...' line on stderr that contains every phrase."""
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("storybot: "), lines[0]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert result.returncode == 2, (result.returncode, lines[0])
    return lines[0]


def story_count(db: Path) -> int:
    if not db.is_file():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'stories'").fetchone()[0] == 0:
            return 0
        return int(conn.execute("SELECT count(*) FROM stories").fetchone()[0])


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_names(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


# --- bad input -------------------------------------------------------------------------------------

BAD_STORIES: dict[str, tuple[list[str], list[str]]] = {
    "empty prompt": ([""], ["prompt is empty", "describe the story"]),
    "whitespace prompt": ([" \t  "], ["prompt is empty"]),
    "1001-char prompt": (["x" * 1001], ["1001 characters", "1000 or fewer"]),
    "zero scenes": ([PROMPT, "--scenes", "0"], ["between 1 and 10", "got 0"]),
    "eleven scenes": ([PROMPT, "--scenes", "11"], ["between 1 and 10", "got 11"]),
    "unknown image model": ([PROMPT, "--image-model", "local-sketchy"], ["did you mean", "local-sketch"]),
    "image model as video": (
        [PROMPT, "--video", "--video-model", "local-sketch"],
        ["'local-sketch' is an image model, not a video model", "local-kenburns"],
    ),
    "model without its key": ([PROMPT, "--image-model", "gpt-image-1.5"], ["no key set", "OPENAI_API_KEY"]),
    "video model without video": ([PROMPT, "--video-model", "local-kenburns"], ["without video"]),
    "missing reference": ([PROMPT, "--reference", "no-such-image.png"], ["no-such-image.png", "does not exist"]),
}


@pytest.mark.parametrize("case", list(BAD_STORIES))
def test_bad_story_input_is_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    args, phrases = BAD_STORIES[case]
    out = tmp_path / "out"
    result = storybot(tmp_path, "story", *args, "--out", out)
    assert_refused(result, *phrases)
    assert story_count(tmp_path / "storybot.db") == 0
    assert files_under(out) == []
    assert files_under(tmp_path / "media") == []


def test_unwritable_out_folder(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / "out"
    assert_refused(storybot(tmp_path, "story", PROMPT, "--out", out), "cannot write to", str(out))
    assert story_count(tmp_path / "storybot.db") == 0
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_unwritable_database_path(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "out"
    result = storybot(
        tmp_path, "story", PROMPT, "--out", out, env={"DATABASE_PATH": str(tmp_path / "afile" / "storybot.db")}
    )
    assert_refused(result, "database", "DATABASE_PATH")
    assert files_under(out) == []
    assert (tmp_path / "afile").read_text() == "not a folder"


@pytest.mark.parametrize("command", [["story", PROMPT, "--out", "out"], ["db", "migrate"], ["status"]])
def test_database_from_a_newer_storybot_is_left_untouched(tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "storybot.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE from_the_future (x)")
        conn.execute("PRAGMA user_version = 99")
    before = sha256(db)
    assert_refused(storybot(tmp_path, *command), "schema version 99", "upgrade storybot")
    assert sha256(db) == before
    assert files_under(tmp_path / "out") == []


BAD_ENV = {
    "WORKER_CONCURRENCY": "abc",
    "ROUTING__IMAGE__MAX_RETRIES": "11",
    "ROUTING__IMAGE__FALLBACKS": "not-json",
}


@pytest.mark.parametrize("variable", list(BAD_ENV))
def test_bad_environment_variable_is_named(tmp_path: Path, variable: str) -> None:
    out = tmp_path / "out"
    result = storybot(tmp_path, "story", PROMPT, "--out", out, env={variable: BAD_ENV[variable]})
    assert_refused(result, variable)
    assert not (tmp_path / "storybot.db").exists()
    assert files_under(out) == []


def test_bad_json_names_the_variable_that_is_wrong(tmp_path: Path) -> None:
    assert_refused(
        storybot(tmp_path, "status", env={"ROUTING__TEXT__FALLBACKS": "not-json"}), "ROUTING__TEXT__FALLBACKS"
    )


# --- commands that work ----------------------------------------------------------------------------


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a `format_table` table, cut at the header's column starts (cells may contain spaces)."""
    header, _rule, *body = text.split("\n\n")[0].splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)} for line in body]


def test_models_lists_every_modality_with_availability(tmp_path: Path) -> None:
    result = storybot(tmp_path, "models")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:6] == ["key", "name", "provider", "modality", "capabilities", "status"]
    rows = {row["key"]: row for row in parse_table(result.stdout)}
    assert {row["modality"] for row in rows.values()} == {"text", "image", "video"}
    assert rows["local-sketch"] == {
        "key": "local-sketch", "name": "Local sketch", "provider": "local", "modality": "image",
        "capabilities": "offline, fast", "status": "available",
    }  # fmt: skip
    assert all(rows[key]["status"] == "available" for key in ("local-template", "local-kenburns"))
    assert rows["gpt-image-1.5"]["status"] == "unavailable: no key set (set OPENAI_API_KEY)"
    assert re.fullmatch(
        r"unavailable: retired on \d{4}-\d\d-\d\d; use gpt-image-1\.5 instead", rows["dall-e-3"]["status"]
    )
    assert "gpt-image-1 -> gpt-image-1.5" in result.stdout.splitlines()[-1]


def test_db_migrate_twice_then_backup(tmp_path: Path) -> None:
    db = tmp_path / "storybot.db"
    first = storybot(tmp_path, "db", "migrate")
    assert first.returncode == 0, first.stderr
    assert "0001_initial.sql" in first.stdout
    second = storybot(tmp_path, "db", "migrate")
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout and "0001" not in second.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version_supported()

    backup = tmp_path / "backups" / "copy.db"
    made = storybot(tmp_path, "db", "backup", backup)
    assert made.returncode == 0, made.stderr
    assert str(backup) in made.stdout
    assert table_names(backup) == table_names(db) and "jobs" in table_names(backup)
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version_supported()

    before = sha256(backup)
    assert_refused(storybot(tmp_path, "db", "backup", backup), str(backup), "already exists")
    assert sha256(backup) == before


def test_work_on_an_empty_queue_then_status(tmp_path: Path) -> None:
    work = storybot(tmp_path, "work")
    assert work.returncode == 0, work.stderr
    assert "queue empty: 0 done" in work.stdout
    status = storybot(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.strip().split("\n\n")[-1].splitlines()  # the job counts come after the health table
    assert lines[0].split() == ["status", "jobs"]
    counts = dict(line.split() for line in lines[2:])
    assert counts == {name: "0" for name in ("queued", "running", "succeeded", "failed", "dead", "cancelled")}


def test_story_renders_a_one_scene_storybook(tmp_path: Path) -> None:
    out = tmp_path / "books"
    result = storybot(tmp_path, "story", PROMPT, "--scenes", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    story_id = re.search(r"^Story (\w+): 1 scenes", result.stdout, re.MULTILINE)
    assert story_id, result.stdout
    page = out / story_id.group(1) / "index.html"
    assert page.is_file() and f"Open {page}" in result.stdout
    assert (page.parent / "scene-01-image.png").is_file()
    with sqlite3.connect(tmp_path / "storybot.db") as conn:
        assert conn.execute("SELECT status FROM stories").fetchall() == [("complete",)]
        assert conn.execute("SELECT count(*) FROM jobs WHERE status != 'succeeded'").fetchone()[0] == 0


@pytest.mark.slow
def test_run_without_a_token_renders_the_demo(tmp_path: Path) -> None:
    result = storybot(tmp_path, "run", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "No DISCORD_TOKEN set" in result.stdout
    opened = re.search(r"Open (\S+index\.html)$", result.stdout, re.MULTILINE)
    assert opened, result.stdout
    page = tmp_path / opened.group(1)  # relative to the working directory, or already absolute
    assert page.is_file() and page.parent.parent == (tmp_path / "out")
    assert len(list(page.parent.glob("scene-*-video.mp4"))) == 3


# --- logging ---------------------------------------------------------------------------------------


def test_log_level_is_applied_and_quiet_by_default(tmp_path: Path) -> None:
    quiet = storybot(tmp_path, "db", "migrate")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr

    told = storybot(tmp_path, "work", env={"LOG_LEVEL": "INFO", "DATABASE_PATH": str(tmp_path / "told.db")})
    assert told.returncode == 0, told.stderr
    assert "[INFO   ] storage.db: applied migration 0001_initial.sql" in told.stderr, told.stderr
    assert "[DEBUG" not in told.stderr

    errors_only = storybot(tmp_path, "work", env={"LOG_LEVEL": "ERROR", "DATABASE_PATH": str(tmp_path / "e.db")})
    assert errors_only.returncode == 0 and errors_only.stderr == "", errors_only.stderr


def test_verbose_shows_our_debug_lines_without_aiosqlites_unless_asked_twice(tmp_path: Path) -> None:
    verbose = storybot(tmp_path, "-v", "story", PROMPT, "--scenes", "1", "--out", "out")
    assert verbose.returncode == 0, verbose.stderr
    assert "[DEBUG  ] bot." in verbose.stderr
    assert " aiosqlite: " not in verbose.stderr

    louder = storybot(tmp_path, "-vv", "work")
    assert louder.returncode == 0, louder.stderr
    assert "[DEBUG  ] aiosqlite: " in louder.stderr
