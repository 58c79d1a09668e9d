"""The gate between every provider adapter and the pipeline: a deadline per call, and bytes checked.

Adapters speak each API; this wraps whichever adapter ``ProviderSet`` hands out, so no provider (today's or
one added later) can hold a worker past PROVIDER_TIMEOUT_S or get a broken file stored:

- every remote call (story, picture, clip submit, poll and download) runs under one ``asyncio.timeout``
  for the whole call, first byte to last. The SDKs' own timeouts bound each read, so a server that drips
  a byte at a time would otherwise never be given up on;
- a story must fit the answer schema (``story_prompt.StoryAnswer``), whichever adapter wrote it;
- a picture must decode in full, be the format it claims and be within the caps; a downloaded clip must
  be an H.264 MP4 within the caps (``bot.media_probe``). The decoding runs in a media thread, off the loop.
  Anything else is an ``UnusableAnswer``: transient, so the router retries it and falls back, and the
  bytes are never stored.

The local provider has no network to stall on and renders clips that may outlast a short deadline, so its
calls run without one; its bytes are checked like anyone's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from bot.errors import ErrorKind, MediaError, ProviderError, ProviderTimeout, UnusableAnswer
from bot.media.probe import PICTURE_FORMATS, MediaLimits, check_clip, check_picture, off_loop
from bot.providers.base import ImageRequest, ImageResult, StoryDraft, StoryRequest, VideoPoll, VideoRequest
from bot.providers.story_prompt import check_draft

log = logging.getLogger(__name__)

T = TypeVar("T")

UNBOUNDED_PROVIDERS = frozenset({"local"})


class GuardedProvider:
    """One adapter behind the deadline and the media checks; offers whichever of the three roles it has."""

    def __init__(self, adapter: Any, provider: str, *, deadline_s: float, limits: MediaLimits) -> None:
        self.adapter = adapter
        self.provider = provider
        self.deadline_s = None if provider in UNBOUNDED_PROVIDERS else deadline_s
        self.limits = limits

    async def write_story(self, request: StoryRequest) -> StoryDraft:
        draft: StoryDraft = await self._within(self.adapter.write_story(request))
        return check_draft(draft, request)

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        result: ImageResult = await self._within(self.adapter.generate_image(request))
        try:
            info = await off_loop(check_picture, result.data, result.mime_type, self.limits)
        except MediaError as exc:
            log.info("%s sent an unusable picture for %s: %s", self.provider, request.model, exc)
            raise UnusableAnswer(str(exc), what="a picture", request_id=result.request_id) from exc
        mime_type = PICTURE_FORMATS[info.format].mime_type  # "image/jpg" and friends, said one way
        return result if mime_type == result.mime_type else result.model_copy(update={"mime_type": mime_type})

    async def submit_video(self, request: VideoRequest) -> str:
        request_id: str = await self._within(self.adapter.submit_video(request))
        return request_id

    async def poll_video(self, remote_id: str) -> VideoPoll:
        poll: VideoPoll = await self._within(self.adapter.poll_video(remote_id))
        return poll

    async def download_video(self, poll: VideoPoll, remote_id: str, dest: Path) -> None:
        """The download under the deadline, then the clip checked; on any failure ``dest`` is gone."""
        try:
            await self._within(self.adapter.download_video(poll, remote_id, dest))
            await off_loop(check_clip, dest, self.limits)
        except MediaError as exc:
            dest.unlink(missing_ok=True)
            log.info("%s sent an unusable clip for %s: %s", self.provider, remote_id, exc)
            raise UnusableAnswer(str(exc), what="a clip") from exc
        except BaseException:
            dest.unlink(missing_ok=True)  # one syscall: no await while a cancellation unwinds
            raise

    async def _within(self, call: Awaitable[T]) -> T:
        if self.deadline_s is None:
            return await call
        deadline = asyncio.timeout(self.deadline_s)
        try:
            async with deadline:
                return await call
        except TimeoutError as exc:
            if deadline.expired():
                log.info("a %s call was given up after %g s", self.provider, self.deadline_s)
                raise ProviderTimeout(self.deadline_s) from exc
            raise ProviderError(ErrorKind.TRANSIENT, f"{self.provider} timed out") from exc
