"""What a publisher is: it takes one finished thing (a Delivery) and says where it put it.

The Discord publisher (cogs/_publisher.py) and the offline storybook implement it; nothing here knows Discord.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.domain import Scene, Story


@dataclass(frozen=True)
class Delivery:
    key: str
    what: str  # written | image | image_failed | video | video_failed | story
    story: Story
    scenes: list[Scene]
    scene: Scene | None = None


class Publisher(Protocol):
    name: str

    async def publish(self, delivery: Delivery) -> str | None:
        """Publish one delivery; return a reference to what was published (message id, path)."""
        ...
