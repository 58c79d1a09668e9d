"""WorkerSupervisor: keeps a long-running Worker alive.

The worker settles every job it runs, whatever the job raises; what is left to kill it is a bug in
the worker itself or something below it. Then the bot would go on accepting stories that nothing
makes, so the supervisor logs the crash and starts the worker again after a backoff (doubling up to
``max_delay_s``, back to ``first_delay_s`` once a run has lasted ``steady_s``). While no worker runs,
``running`` is False: /health answers 503 and /story new refuses.

It is a class of its own, not a mode of Worker: it is the policy of a long-lived process (the bot)
around any run, with its own state (the backoff, the restarts), and a Worker knows nothing of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from bot.jobs.worker import Worker, WorkerStats

log = logging.getLogger(__name__)


class WorkerSupervisor:
    def __init__(
        self,
        worker: Worker,
        *,
        first_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        steady_s: float = 300.0,
    ) -> None:
        self.worker = worker
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.steady_s = steady_s
        self.restarts = 0

    @property
    def running(self) -> bool:
        return self.worker.running

    async def run(self, stop: asyncio.Event) -> WorkerStats:
        """Run the worker until ``stop`` is set, restarting it whenever it dies. Cancel to hand jobs back."""
        delay = self.first_delay_s
        while True:
            started = time.monotonic()
            try:
                return await self.worker.run_forever(stop)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise  # a stop asked for by the process, not a crash
            except BaseException as exc:
                if time.monotonic() - started >= self.steady_s:
                    delay = self.first_delay_s
                self.restarts += 1
                log.error("the worker pool stopped (%s: %s); restarting it in %.0f s (restart %d)",
                          type(exc).__name__, exc, delay, self.restarts, exc_info=exc)  # fmt: skip
            if await _stopped_within(stop, delay):
                return self.worker.stats
            delay = min(delay * 2, self.max_delay_s)
            log.warning("restarting the worker pool")


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
