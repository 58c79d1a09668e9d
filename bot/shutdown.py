"""SIGTERM stops storybot the way Ctrl-C does: the running work is asked to wind down, nothing is killed.

Service managers (systemd, Docker, Kubernetes) stop a process with SIGTERM and wait before SIGKILL;
without a handler Python would die at once and leave leased jobs to expire instead of handing them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)

EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, the shell's code for "ended by SIGTERM"


class Terminated(Exception):
    """A one-shot command was stopped by a signal before it finished (the CLI exits 143)."""


@dataclass
class StopRequest:
    """Which signal asked us to stop, once one has."""

    signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


@contextlib.contextmanager
def on_sigterm(stop: Callable[[], object]) -> Iterator[StopRequest]:
    """Call ``stop()`` on the first SIGTERM while inside; later ones are ignored (we are already stopping).

    Must run inside the event loop's thread. Where the loop cannot take signal handlers (Windows), the
    default behaviour stays and the request never fires.
    """
    loop = asyncio.get_running_loop()
    request = StopRequest()

    def fire() -> None:
        if request.requested:
            log.info("already stopping; SIGTERM ignored")
            return
        request.signal_name = "SIGTERM"
        stop()

    try:
        loop.add_signal_handler(signal.SIGTERM, fire)
        installed = True
    except (NotImplementedError, RuntimeError):
        installed = False
    try:
        yield request
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGTERM)
