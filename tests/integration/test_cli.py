"""The ``storybot`` command: bad input is refused cleanly, the commands work, the logging obeys.

Each command runs in this process (``main(argv)``, see tests/support/cli_main.py) with the environment and
working folder a subprocess would get. A few smoke tests run the real command in a subprocess: the
console entry, its exit codes, what ``--help`` and ``models`` import, and the offline demo of ``run``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage.db import schema_version_supported
from tests.support.cli import PROMPT, assert_refused, cli_env, sha256, storybot
from tests.support.cli_main import Storybot


def story_count(db: Path) -> int:
    if not db.is_file():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        if conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'stories'").fetchone()[0] == 0:
            return 0
        return int(conn.execute("SELECT count(*) FROM stories").fetchone()[0])


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


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
def test_bad_story_input_is_refused_and_nothing_is_written(cli: Storybot, tmp_path: Path, case: str) -> None:
    args, phrases = BAD_STORIES[case]
    out = tmp_path / "out"
    result = cli("story", *args, "--out", out)
    assert_refused(result, *phrases)
    assert story_count(tmp_path / "storybot.db") == 0
    assert files_under(out) == []
    assert files_under(tmp_path / "media") == []


def test_unwritable_out_folder(cli: Storybot, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / "out"
    assert_refused(cli("story", PROMPT, "--out", out), "cannot write to", str(out))
    assert story_count(tmp_path / "storybot.db") == 0
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_unwritable_database_path(cli: Storybot, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "out"
    result = cli("story", PROMPT, "--out", out, env={"DATABASE_PATH": str(tmp_path / "afile" / "storybot.db")})
    assert_refused(result, "database", "DATABASE_PATH")
    assert files_under(out) == []
    assert (tmp_path / "afile").read_text() == "not a folder"


@pytest.mark.parametrize(
    "command", [["story", PROMPT, "--out", "out"], ["db", "migrate"], ["status"], ["models"]], ids=" ".join
)
def test_database_from_a_newer_storybot_is_left_untouched(cli: Storybot, tmp_path: Path, command: list[str]) -> None:
    db = tmp_path / "storybot.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE from_the_future (x)")
        conn.execute("PRAGMA user_version = 99")
    before = sha256(db)
    assert_refused(cli(*command), "schema version 99", "upgrade storybot")
    assert sha256(db) == before
    assert files_under(tmp_path / "out") == []


BAD_ENV = {
    "WORKER_CONCURRENCY": "abc",
    "ROUTING__IMAGE__MAX_RETRIES": "11",
    "ROUTING__IMAGE__FALLBACKS": "not-json",
}


@pytest.mark.parametrize("variable", list(BAD_ENV))
def test_bad_environment_variable_is_named(cli: Storybot, tmp_path: Path, variable: str) -> None:
    out = tmp_path / "out"
    result = cli("story", PROMPT, "--out", out, env={variable: BAD_ENV[variable]})
    assert_refused(result, variable)
    assert not (tmp_path / "storybot.db").exists()
    assert files_under(out) == []


def test_bad_json_names_the_variable_that_is_wrong(cli: Storybot) -> None:
    assert_refused(cli("status", env={"ROUTING__TEXT__FALLBACKS": "not-json"}), "ROUTING__TEXT__FALLBACKS")


def test_models_names_a_routed_model_that_does_not_exist(cli: Storybot, tmp_path: Path) -> None:
    result = cli("models", env={"ROUTING__IMAGE__PRIMARY_MODEL": "local-sketchy"})
    assert_refused(result, "ROUTING__IMAGE__PRIMARY_MODEL", "did you mean 'local-sketch'")
    assert not (tmp_path / "storybot.db").exists()


# --- commands that work ----------------------------------------------------------------------------


def parse_table(text: str) -> list[dict[str, str]]:
    """Rows of a `format_table` table, cut at the header's column starts (cells may contain spaces)."""
    header, _rule, *body = text.split("\n\n")[0].splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [{name: line[a:b].strip() for name, (a, b) in zip(names, bounds, strict=True)} for line in body]


def test_models_lists_every_modality_with_availability(cli: Storybot, tmp_path: Path) -> None:
    result = cli("models")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
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
    with sqlite3.connect(tmp_path / "storybot.db") as conn:  # made and migrated, as every command does
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version_supported()


def test_models_with_a_key_and_a_models_file(cli: Storybot, tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text(
        '[[models]]\nkey = "house-sketch"\nprovider = "local"\nmodality = "image"\ndisplay_name = "House sketch"\n'
        '\n[aliases]\n"house" = "house-sketch"\n'
    )
    result = cli("models", env={"OPENAI_API_KEY": "sk-test-0123456789", "MODELS_FILE": str(models)})
    assert result.returncode == 0, result.stderr
    rows = {row["key"]: row for row in parse_table(result.stdout)}
    assert rows["gpt-image-1.5"]["status"] == "available"
    assert rows["house-sketch"]["name"] == "House sketch" and rows["house-sketch"]["status"] == "available"
    assert "house -> house-sketch" in result.stdout.splitlines()[-1]


def test_db_migrate_twice_then_backup(cli: Storybot, tmp_path: Path) -> None:
    db = tmp_path / "storybot.db"
    first = cli("db", "migrate")
    assert first.returncode == 0, first.stderr
    assert "0001_initial.sql" in first.stdout
    second = cli("db", "migrate")
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout and "0001" not in second.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version_supported()

    backup = tmp_path / "backups" / "copy.db"
    made = cli("db", "backup", backup)
    assert made.returncode == 0, made.stderr
    assert str(backup) in made.stdout
    assert table_names(backup) == table_names(db) and "jobs" in table_names(backup)
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version_supported()

    before = sha256(backup)
    assert_refused(cli("db", "backup", backup), str(backup), "already exists")
    assert sha256(backup) == before


def test_work_on_an_empty_queue_then_status(cli: Storybot) -> None:
    work = cli("work")
    assert work.returncode == 0, work.stderr
    assert "queue empty: 0 done" in work.stdout
    status = cli("status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.strip().split("\n\n")[-1].splitlines()  # the job counts come after the health table
    assert lines[0].split() == ["status", "jobs"]
    counts = dict(line.split() for line in lines[2:])
    assert counts == {name: "0" for name in ("queued", "running", "succeeded", "failed", "dead", "cancelled")}


def test_story_renders_a_one_scene_storybook(cli: Storybot, tmp_path: Path) -> None:
    out = tmp_path / "books"
    result = cli("story", PROMPT, "--scenes", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    story_id = re.search(r"^Story (\w+): 1 scenes", result.stdout, re.MULTILINE)
    assert story_id, result.stdout
    page = out / story_id.group(1) / "index.html"
    assert page.is_file() and f"Open {page}" in result.stdout
    assert (page.parent / "scene-01-image.png").is_file()
    with sqlite3.connect(tmp_path / "storybot.db") as conn:
        assert conn.execute("SELECT status FROM stories").fetchall() == [("complete",)]
        assert conn.execute("SELECT count(*) FROM jobs WHERE status != 'succeeded'").fetchone()[0] == 0


# --- logging ---------------------------------------------------------------------------------------


def test_log_level_is_applied_and_quiet_by_default(cli: Storybot, tmp_path: Path) -> None:
    quiet = cli("db", "migrate")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr

    told = cli("work", env={"LOG_LEVEL": "INFO", "DATABASE_PATH": str(tmp_path / "told.db")})
    assert told.returncode == 0, told.stderr
    assert "[INFO   ] storage.db: applied migration 0001_initial.sql" in told.stderr, told.stderr
    assert "[DEBUG" not in told.stderr

    errors_only = cli("work", env={"LOG_LEVEL": "ERROR", "DATABASE_PATH": str(tmp_path / "e.db")})
    assert errors_only.returncode == 0 and errors_only.stderr == "", errors_only.stderr


def test_verbose_shows_our_debug_lines_without_aiosqlites_unless_asked_twice(cli: Storybot) -> None:
    verbose = cli("-v", "story", PROMPT, "--scenes", "1", "--out", "out")
    assert verbose.returncode == 0, verbose.stderr
    assert "[DEBUG  ] bot." in verbose.stderr
    assert " aiosqlite: " not in verbose.stderr

    louder = cli("-vv", "work")
    assert louder.returncode == 0, louder.stderr
    assert "[DEBUG  ] aiosqlite: " in louder.stderr


# --- the real command, in a subprocess -------------------------------------------------------------


def test_help_lists_the_commands_and_a_usage_error_exits_2(tmp_path: Path) -> None:
    shown = storybot(tmp_path, "--help")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: storybot") and shown.stderr == ""
    for command in ("run", "story", "work", "models", "status", "db"):
        assert re.search(rf"^\s+{command}\s+\S", shown.stdout, re.MULTILINE), (command, shown.stdout)
    wrong = storybot(tmp_path, "paint")
    assert wrong.returncode == 2 and "invalid choice: 'paint'" in wrong.stderr, wrong.stderr
    assert wrong.stdout == ""


def test_the_real_command_refuses_bad_input_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    result = storybot(tmp_path, "story", "", "--out", tmp_path / "out")
    assert_refused(result, "prompt is empty", "describe the story")
    assert story_count(tmp_path / "storybot.db") == 0
    assert files_under(tmp_path / "out") == [] and files_under(tmp_path / "media") == []
    assert storybot(tmp_path, "db", "migrate").returncode == 0


# What the quick commands must not import: each costs start-up time, and none is needed by them.
HEAVY = ["discord", "openai", "google.genai", "httpx", "av", "PIL", "bot.runtime", "bot.providers", "bot.app"]
IMPORTED_BY = """
import contextlib, io, json, sys
from bot.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported_by(tmp_path: Path, *args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY, *args],
        env=cli_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["code"] == 0, result.stderr
    return set(report["modules"])


def test_help_imports_neither_the_settings_nor_anything_heavy(tmp_path: Path) -> None:
    modules = imported_by(tmp_path, "--help")
    assert "bot.cli" in modules  # the check sees what it means to see
    heavy = [*HEAVY, "aiosqlite", "pydantic", "pydantic_settings", "asyncio", "bot.settings", "bot.domain"]
    assert sorted(set(heavy) & modules) == []


def test_models_imports_the_registry_but_not_the_runtime_or_the_providers(tmp_path: Path) -> None:
    modules = imported_by(tmp_path, "models")
    assert {"bot.routing.registry", "bot.settings", "storage.db"} <= modules
    assert sorted(set(HEAVY) & modules) == []


@pytest.mark.parametrize("role", ["gateway", "worker"])
def test_a_role_that_serves_discord_needs_a_token(cli: Storybot, role: str, tmp_path: Path) -> None:
    assert_refused(cli("run", "--role", role), f"--role {role} serves Discord: set DISCORD_TOKEN")
    assert not (tmp_path / "out").exists()  # no demo rendered instead


def test_an_unknown_role_is_refused_by_name(cli: Storybot) -> None:
    result = cli("run", "--role", "renderer")
    assert result.returncode == 2 and "invalid choice: 'renderer'" in result.stderr, result.stderr


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
