"""The ``storybot`` command run in the test's own process: ``main(argv)``, its output from ``capsys``.

A subprocess gave each run a fresh process for free; here the test undoes what ``main`` changes in this one.
The environment and the working folder are the test's ``monkeypatch``'s to set (``use_cli_env``). Logging is
undone here (``fresh_logging``): ``main`` calls ``logging.basicConfig`` (which does nothing while pytest's
handlers sit on the root logger) and sets the level of a few loggers, which would stay set for later tests.
SIGTERM handlers and event loops need nothing: ``main`` removes its handler and closes its loop itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.cli import main
from tests.support.cli import cli_env

Storybot = Callable[..., subprocess.CompletedProcess[str]]
"""What the ``cli`` fixture (tests/integration/conftest.py) gives: ``cli(*args, env={...})``."""

# The loggers whose level main() sets, each NOTSET in a fresh process.
LOGGERS_MAIN_SETS = ("aiosqlite", "discord.http", "bot.app")


def use_cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str) -> None:
    """The environment and working folder a subprocess of ``tests.support.cli.storybot`` gets, set in this
    process (undone by ``monkeypatch`` when the test ends)."""
    env = cli_env(tmp_path, **extra)
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)


@contextlib.contextmanager
def fresh_logging() -> Iterator[None]:
    """Logging as a fresh process has it while inside (no root handlers, root at WARNING, the loggers main()
    touches unset), and as it was before afterwards: the handler main() adds (writing to capsys's stderr) goes."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in LOGGERS_MAIN_SETS}
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    for name in LOGGERS_MAIN_SETS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, saved in levels.items():
            logging.getLogger(name).setLevel(saved)


def run_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``storybot *args`` in this process, shaped as a subprocess's result: the exit code (argparse's
    SystemExit too), and what it printed to stdout and stderr. An uncaught exception fails the test."""
    argv = [str(arg) for arg in args]
    capsys.readouterr()  # what came before is not this command's
    with fresh_logging():
        try:
            code = main(argv)
        except SystemExit as exc:  # --help and usage errors, as the interpreter turns them into exit codes
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["storybot", *argv], code, out, err)
