"""The storyboard's throttled edits (its data is bot/services/storyboards.py's).

Edits go through the bot's channel-message route (not the interaction token), so they keep working
after the 15-minute token expires. Each story gets at most one edit per ``interval_s``: requests that
arrive meanwhile are coalesced into the next edit, which always renders the newest state.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
_FORGET_AFTER = 1000  # stories remembered for throttling before old entries are dropped


class StoryboardUpdater:
    """Runs ``edit(story_id)`` for requested stories, no more than once per ``interval_s`` per story."""

    def __init__(
        self, edit: Callable[[str], Awaitable[None]], clock: Clock, interval_s: float = DEFAULT_INTERVAL_S
    ) -> None:
        self._edit = edit
        self._clock = clock
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.edits = 0

    def request(self, story_id: str) -> None:
        """Ask for an edit; returns at once. The edit happens now or when the story's interval has passed."""
        self._dirty.add(story_id)
        if story_id not in self._tasks:
            self._tasks[story_id] = asyncio.create_task(self._run(story_id), name=f"storyboard:{story_id[:8]}")

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def _run(self, story_id: str) -> None:
        try:
            while story_id in self._dirty:
                wait = self._last.get(story_id, float("-inf")) + self.interval_s - self._clock.now()
                if wait > 0:
                    await self._clock.sleep(wait)
                self._dirty.discard(story_id)
                self._last[story_id] = self._clock.now()
                self.edits += 1
                try:
                    await self._edit(story_id)
                except Exception:
                    log.warning("storyboard edit for story %s failed", story_id, exc_info=True)
        finally:
            self._tasks.pop(story_id, None)
            self._forget_old()

    def _forget_old(self) -> None:
        if len(self._last) <= _FORGET_AFTER:
            return
        horizon = self._clock.now() - self.interval_s
        for story_id in [key for key, at in self._last.items() if at < horizon]:
            del self._last[story_id]

    async def drain(self) -> None:
        """Wait for every pending edit (used on shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._dirty.clear()
