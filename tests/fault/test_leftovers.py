"""Issue #11, no leftovers: the half-written ``.part`` file of a process killed mid-download is swept by the next
``storybot work`` and by any start, whatever its age, while a live writer's file is left alone."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.cli import cli_env, storybot

STORY = "0123456789abcdef0123456789abcdef"
TIMEOUT_S = 60

# Writes the first bytes of a clip to the temp file a download streams into (bot.media's own naming, next
# to a fresh final path), says where, then waits as a stalled download would, until it is killed.
WRITER = """
import sys, time
from pathlib import Path
from bot.media.store import MediaStore

store = MediaStore(Path(sys.argv[1]))
part = store.temp_path(store.path_for(sys.argv[2], "mp4"))
with part.open("wb") as handle:
    handle.write(b"\\0\\0\\0\\x18ftypmp42" + bytes(65536))
    handle.flush()
    print(part, flush=True)
    time.sleep(600)
"""


def start_writer(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "media"), STORY],
        env=cli_env(tmp_path), cwd=tmp_path, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    part = Path(process.stdout.readline().strip())
    assert part.is_file() and part.name.endswith(".mp4.part"), part
    return process, part


def test_the_part_file_of_a_killed_download_is_swept_and_a_live_one_is_kept(tmp_path: Path) -> None:
    killed, killed_part = start_writer(tmp_path)
    alive, alive_part = start_writer(tmp_path)
    try:
        killed.send_signal(signal.SIGKILL)
        killed.communicate(timeout=TIMEOUT_S)

        work = storybot(tmp_path, "work", timeout=TIMEOUT_S)
        assert work.returncode == 0, work.stderr
        assert not killed_part.exists()  # a minute old at most: gone because its writer is
        assert alive_part.is_file()  # its writer may still finish it
    finally:
        for writer in (killed, alive):
            writer.kill()
            writer.communicate(timeout=TIMEOUT_S)

    status = storybot(tmp_path, "status", timeout=TIMEOUT_S)  # any start sweeps too
    assert status.returncode == 0, status.stderr
    assert not alive_part.exists()
    assert list((tmp_path / "media").rglob("*.part")) == []
