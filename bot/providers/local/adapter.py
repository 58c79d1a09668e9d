"""The embedded offline provider: text, images and video with no key and no network.

It is the default for a fresh checkout and the last link of every fallback chain. The three
halves live in their own modules; ``LocalProvider`` puts them behind one adapter.
"""

from __future__ import annotations

from pathlib import Path

from bot.providers.base import (
    ImageRequest,
    ImageResult,
    StoryDraft,
    StoryRequest,
    VideoPoll,
    VideoRequest,
)
from bot.providers.local.image import LocalImageProvider
from bot.providers.local.text import LocalTextProvider
from bot.providers.local.video import LocalVideoProvider

__all__ = ["LocalImageProvider", "LocalProvider", "LocalTextProvider", "LocalVideoProvider"]


class LocalProvider:
    """One adapter for the ``local`` provider: a TextProvider, ImageProvider and VideoProvider at once."""

    def __init__(self, staging_dir: Path) -> None:
        self._text = LocalTextProvider()
        self._image = LocalImageProvider()
        self._video = LocalVideoProvider(staging_dir)

    async def write_story(self, request: StoryRequest) -> StoryDraft:
        return await self._text.write_story(request)

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        return await self._image.generate_image(request)

    async def submit_video(self, request: VideoRequest) -> str:
        return await self._video.submit_video(request)

    async def poll_video(self, remote_id: str) -> VideoPoll:
        return await self._video.poll_video(remote_id)

    async def download_video(self, poll: VideoPoll, remote_id: str, dest: Path) -> None:
        await self._video.download_video(poll, remote_id, dest)

    def sweep(self, older_than_s: float, now: float) -> int:
        return self._video.sweep(older_than_s, now)
