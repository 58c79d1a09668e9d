"""What every provider adapter offers, in provider-neutral types.

An adapter turns these requests into one API's wire calls and classifies every failure into a
``bot.errors.ProviderError`` before it leaves the adapter. Adapters never retry: the router is
the only retry loop.

Video is always submit -> poll -> download, even for the local provider, so the pipeline has one
path: the remote id is saved right after submit, and a restart resumes polling that id.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from bot.domain import Modality


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReferenceImage(_Frozen):
    data: bytes
    mime_type: str = "image/png"


class StoryRequest(_Frozen):
    model: str  # the provider's own model id
    prompt: str
    scene_count: int = Field(ge=1, le=10)
    style: str | None = None


class StoryDraft(_Frozen):
    title: str
    bible: str  # a short style and character bible that goes into every image prompt
    scenes: list[str]


class ImageRequest(_Frozen):
    model: str
    prompt: str  # the full prompt: bible + scene text
    scene_text: str = ""  # the bare scene text, for captions
    aspect_ratio: str = "16:9"
    references: list[ReferenceImage] = Field(default_factory=list)
    seed: str = ""  # makes the local provider deterministic per story and scene


class ImageResult(_Frozen):
    data: bytes
    mime_type: str
    request_id: str | None = None
    warnings: list[str] = Field(default_factory=list)


class VideoRequest(_Frozen):
    model: str
    prompt: str
    image: ReferenceImage
    duration_s: int = Field(default=4, ge=1, le=15)
    seed: str = ""


class VideoState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class VideoPoll(_Frozen):
    state: VideoState
    progress: int | None = None
    url: str | None = None  # where download() fetches the clip from, when done
    error: str | None = None


class ModelListing(_Frozen):
    """What a provider's listing endpoint says about one model (a cheap GET, never a generation)."""

    model: str  # the provider's own model id
    found: bool  # False: the provider answered 404, so the model is gone for this key
    shutdown_date: date | None = None  # announced by the provider (OpenAI), past or future
    request_id: str | None = None


@runtime_checkable
class TextProvider(Protocol):
    async def write_story(self, request: StoryRequest) -> StoryDraft: ...


@runtime_checkable
class ImageProvider(Protocol):
    async def generate_image(self, request: ImageRequest) -> ImageResult: ...


@runtime_checkable
class VideoProvider(Protocol):
    async def submit_video(self, request: VideoRequest) -> str:
        """Start a render; return the provider's request id at once."""
        ...

    async def poll_video(self, remote_id: str) -> VideoPoll: ...

    async def download_video(self, poll: VideoPoll, remote_id: str, dest: Path) -> None:
        """Stream the finished clip to ``dest`` (a temp path; the caller renames it)."""
        ...


@runtime_checkable
class ModelLister(Protocol):
    async def describe_model(self, api_model: str, modality: Modality | None = None) -> ModelListing:
        """One listing request for ``api_model``: 404 comes back as ``found=False``; any other failure
        raises a classified ``ProviderError``. ``modality`` picks the listing where a provider has several."""
        ...
