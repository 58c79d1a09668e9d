"""Issue #11, poisoned jobs: a row that cannot be read, or a handler that raises what nothing expects,
is dead-lettered with its reason, and the real ``storybot`` command goes on with everything else.

Every place a row becomes a job is hit: the claim (a payload that is not JSON, an unknown kind, a column of
the wrong shape), the reaper (an expired lease given up), the recovery of a dead process's jobs, and the
listing the storyboard reads.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.runtime import Runtime
from bot.services.storyboards import load_board
from bot.settings import load_settings
from storage.db import dumps
from tests.support.cli import PROMPT, STORYBOT, cli_env, storybot
from tests.support.database import count, execute, select

TIMEOUT_S = 120


def add_job(db: Path, job_id: str, *, kind: str = "render_image", payload: str = "{}", status: str = "queued",
            **columns: object) -> None:  # fmt: skip
    row: dict[str, object] = {
        "id": job_id, "kind": kind, "payload": payload, "status": status, "attempts": 0, "max_attempts": 5,
        "run_after": 0.0, "created_at": 0.0, "updated_at": 0.0, **columns,
    }  # fmt: skip
    execute(db, f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def jobs_by_id(db: Path) -> dict[str, Any]:
    return {row["id"]: row for row in select(db, "SELECT * FROM jobs")}


def a_dead_pid() -> int:
    """The pid of a process that has ended (not reused this soon)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=30)
    return process.pid


# id -> (columns, what its last_error must say)
POISON: dict[str, tuple[dict[str, object], str]] = {
    "payload-not-json": ({"payload": "{not json"}, "its row cannot be read: payload is not JSON"),
    "unknown-kind": ({"kind": "teleport"}, "its row cannot be read: kind: Input should be"),
    "warnings-not-a-list": ({"generation_warnings": '{"a": 1}'}, "generation_warnings: Input should be a valid"),
    # The reaper gives up a job whose lease expired for the 20th time; its row cannot be read either.
    # Its owner on another host beats no more: the reaper takes it once that has lasted its lease (1 s).
    "reaped": (
        {
            "kind": "render_video",
            "payload": "{",
            "status": "running",
            "attempts": 1,
            "lease_owner": "elsewhere:1:x",
            "lease_expires_at": 1.0,
            "lease_s": 1.0,
            "interruptions": 19,
        },
        "lease expired 20 times",
    ),  # fmt: skip
    # A job of a dead process on this host, recovered at start for the 20th time.
    "orphaned": (
        {"payload": "[", "status": "running", "attempts": 1, "lease_expires_at": 4e9, "interruptions": 19},
        "worker process died 20 times",
    ),
}


def test_poisoned_rows_are_dead_lettered_and_every_other_job_completes(tmp_path: Path) -> None:
    db = tmp_path / "storybot.db"
    made = storybot(tmp_path, "db", "migrate")
    assert made.returncode == 0, made.stderr
    owner = f"{socket.gethostname()}:{a_dead_pid()}:dead"
    for job_id, (columns, _) in POISON.items():
        add_job(db, job_id, **({"lease_owner": owner} if job_id == "orphaned" else {}), **columns)

    # JOB_LEASE_S=5 (the least allowed): its queue maintenance, which reaps, runs every 2.5 s.
    result = storybot(tmp_path, "story", PROMPT, "--scenes", "2", "--out", "out", env={"JOB_LEASE_S": "5"},
                      timeout=TIMEOUT_S)  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "is ready" in result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    jobs = jobs_by_id(db)
    for job_id, (_, reason) in POISON.items():
        assert jobs[job_id]["status"] == "dead", dict(jobs[job_id])
        assert reason in jobs[job_id]["last_error"], (job_id, jobs[job_id]["last_error"])
    others = [row for job_id, row in jobs.items() if job_id not in POISON]
    assert others and all(row["status"] == "succeeded" for row in others), [dict(r) for r in others]
    assert [tuple(row) for row in select(db, "SELECT status FROM stories")] == [("complete",)]

    status = storybot(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert ["dead", "5"] in [line.split() for line in status.stdout.splitlines()], status.stdout


async def test_a_broken_row_is_left_out_of_a_story_listing(tmp_path: Path) -> None:
    settings = load_settings(database_path=tmp_path / "storybot.db", media_dir=tmp_path / "media")
    result = storybot(tmp_path, "story", PROMPT, "--scenes", "1", "--out", "out", timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    [(story_id,)] = select(settings.database_path, "SELECT id FROM stories")
    add_job(settings.database_path, "broken", payload="{oops", story_id=story_id, status="queued", run_after=9e9)

    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        listed = await rt.queue.list_for_story(story_id)
        assert listed and "broken" not in {job.id for job in listed}
        board = await load_board(rt.db, rt.queue, story_id, settings=settings)
        assert board is not None


# Runs the real CLI with the picture handler of the first two scenes raising BaseExceptions that are not
# cancellation: SystemExit, and a subclass of BaseException of its own.
BASE_EXCEPTIONS = """
import sys

from bot.cli import main
from bot.domain import JobKind
from bot.pipeline import handlers
from bot.pipeline.flow import load_scene


class Poison(BaseException):
    pass


draw = handlers.HANDLERS[JobKind.RENDER_IMAGE]


async def poisoned(deps, job, ctx):
    _, scene = await load_scene(deps, job.payload["scene_id"])
    if scene.index == 0:
        raise SystemExit(3)
    if scene.index == 1:
        raise Poison("a handler gone wrong")
    return await draw(deps, job, ctx)


handlers.HANDLERS[JobKind.RENDER_IMAGE] = poisoned
sys.exit(main(sys.argv[1:]))
"""


def test_a_handler_raising_a_base_exception_is_dead_lettered_and_the_rest_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "storybot.db"
    result = subprocess.run(
        [sys.executable, "-c", BASE_EXCEPTIONS, "story", PROMPT, "--scenes", "3", "--out", "out"],
        env=cli_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    # The story ends, two scenes undrawn and said so, instead of the process dying with the first handler.
    assert result.returncode == 0, result.stderr
    assert "is ready" in result.stdout, result.stdout
    dead_lines = [line for line in result.stderr.splitlines() if "(the handler raised " in line and ": dead: " in line]
    assert len(dead_lines) == 2, result.stderr
    index_of = {row["id"]: row["idx"] for row in select(db, "SELECT id, idx FROM scenes")}
    renders = select(db, "SELECT payload, status, last_error FROM jobs WHERE kind = 'render_image'")
    images = sorted(
        ({"idx": index_of[json.loads(r["payload"])["scene_id"]], "status": r["status"], "last_error": r["last_error"]}
         for r in renders),
        key=lambda image: image["idx"],
    )  # fmt: skip
    scenes = [tuple(r) for r in select(db, "SELECT idx, image_status FROM scenes ORDER BY idx")]
    unsettled = count(db, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
    assert [(r["idx"], r["status"]) for r in images] == [(0, "dead"), (1, "dead"), (2, "succeeded")]
    # The kind is kept for the operator; the message (which may quote anything) only goes to the log.
    assert images[0]["last_error"] == "something went wrong on our side (the handler raised SystemExit)"
    assert images[1]["last_error"] == "something went wrong on our side (the handler raised Poison)"
    assert scenes == [(0, "failed"), (1, "failed"), (2, "complete")]
    assert unsettled == 0


def test_storybot_work_gets_through_a_queue_full_of_poison(tmp_path: Path) -> None:
    db = tmp_path / "storybot.db"
    assert storybot(tmp_path, "db", "migrate").returncode == 0
    for n in range(30):
        add_job(db, f"poison-{n:02d}", payload="not json", run_after=float(n))
    add_job(db, "fine", kind="deliver", payload=dumps({"story_id": "gone"}), run_after=100.0)

    result = subprocess.run([*STORYBOT, "work"], env=cli_env(tmp_path), cwd=tmp_path, capture_output=True,
                            text=True, timeout=TIMEOUT_S)  # fmt: skip

    assert result.returncode == 0, result.stderr
    # The one readable job ran after all the poison: it fails as it should (its story does not exist).
    assert "queue empty: 0 done, 1 failed, 30 dead" in result.stdout, result.stdout
    jobs = jobs_by_id(db)
    assert all(jobs[f"poison-{n:02d}"]["status"] == "dead" for n in range(30))
    assert (jobs["fine"]["status"], jobs["fine"]["last_error"]) == ("failed", "story gone no longer exists")
