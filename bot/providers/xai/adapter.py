"""The xAI adapter: stories from a Grok chat model, images from grok-imagine-image, clips from grok-imagine-video.

Plain httpx against ``XAI_BASE_URL`` (provider-apis.md s5-s7 and s12). Nothing here retries: the
router is the only retry loop. Every failure leaves as a classified ``ProviderError``; the HTTP
plumbing and the classification live in ``xai.http``, the video calls in ``xai.video``.
"""

from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bot.domain import Modality
from bot.errors import ErrorKind, ProviderError
from bot.providers.base import (
    ImageRequest,
    ImageResult,
    ModelListing,
    ReferenceImage,
    StoryDraft,
    StoryRequest,
    VideoPoll,
    VideoRequest,
)
from bot.providers.story_prompt import SYSTEM_PROMPT, parse_story, user_prompt
from bot.providers.xai import video as xai_video
from bot.providers.xai.http import XAIHttp, data_url, read_json
from bot.routing.catalog import ModelSpec
from bot.routing.registry import Registry
from bot.settings import Settings

log = logging.getLogger(__name__)

MAX_API_REFERENCES = 5  # images/edits takes up to 5 images on 2.0 (s5.2)
FALLBACK_RATIO = "auto"
_REFUSED_FINISH = frozenset({"content_filter"})
MODERATED_REQUEST = "xAI's moderation returned no image for the prompt"
MODERATED_IMAGE = "xAI's moderation withheld the image"
_LISTINGS = {Modality.IMAGE: "image-generation-models", Modality.VIDEO: "video-generation-models"}


def sniff_image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"  # xAI's usual output


class XAIAdapter:
    """TextProvider, ImageProvider and VideoProvider over xAI's REST API."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self._registry = registry
        self._http = XAIHttp(settings, registry)

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- text -----------------------------------------------------------------------------------

    async def write_story(self, request: StoryRequest) -> StoryDraft:
        body = {
            "model": request.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(request)},
            ],
        }
        response = await self._http.request("POST", "chat/completions", model=request.model, body=body)
        answer = read_json(response, request.model)
        try:
            choice = answer["choices"][0]
            text = choice["message"].get("content")
            finish = choice.get("finish_reason")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ProviderError(ErrorKind.TRANSIENT, "xAI sent no story", model=request.model) from exc
        if finish in _REFUSED_FINISH:
            raise ProviderError(ErrorKind.CONTENT_POLICY, "xAI's content filter stopped the story", model=request.model)
        return parse_story(text if isinstance(text, str) else None, request, model=request.model)

    # --- images ---------------------------------------------------------------------------------

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        spec = self._registry.get(request.model)
        references, warnings = _usable_references(request.references, spec)
        ratio, ratio_warning = _aspect_ratio(request.aspect_ratio, spec)
        warnings += ratio_warning
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "n": 1, "response_format": "b64_json"}
        if not references:
            path = "images/generations"
            body["aspect_ratio"] = ratio
        else:
            path = "images/edits"
            urls = [{"url": data_url(ref.data, ref.mime_type)} for ref in references]
            if len(urls) == 1:
                body["image"] = urls[0]
            else:  # s5.2: aspect_ratio only for multi-image edits
                body["images"] = urls
                body["aspect_ratio"] = ratio
        response = await self._http.request("POST", path, model=request.model, body=body)
        request_id = response.headers.get("x-request-id")
        item = _image_item(read_json(response, request.model), request.model, request_id)
        try:
            data = base64.b64decode(item["b64_json"], validate=True)
        except (KeyError, TypeError, binascii.Error) as exc:
            raise ProviderError(
                ErrorKind.TRANSIENT, "xAI sent no image", model=request.model, request_id=request_id
            ) from exc
        if not data:
            raise ProviderError(ErrorKind.TRANSIENT, "xAI sent an empty image", model=request.model)
        mime = item.get("mime_type")
        mime_type = mime if isinstance(mime, str) and mime.startswith("image/") else sniff_image_type(data)
        return ImageResult(data=data, mime_type=mime_type, request_id=request_id, warnings=warnings)

    # --- video ----------------------------------------------------------------------------------

    async def submit_video(self, request: VideoRequest) -> str:
        return await xai_video.submit_video(self._http, request)

    async def poll_video(self, remote_id: str) -> VideoPoll:
        return await xai_video.poll_video(self._http, remote_id)

    async def download_video(self, poll: VideoPoll, remote_id: str, dest: Path) -> None:
        await xai_video.download_video(self._http, poll, dest)

    # --- health ---------------------------------------------------------------------------------

    async def describe_model(self, api_model: str, modality: Modality | None = None) -> ModelListing:
        """GET the model in its own listing (image-generation-models, video-generation-models, else models).

        404 is ``found=False``; other failures raise. xAI announces no shutdown dates (s12).
        """
        listing = _LISTINGS.get(modality, "models") if modality is not None else "models"
        path = f"{listing}/{quote(api_model, safe='')}"
        response = await self._http.request("GET", path, model=api_model, passthrough={404})
        found = response.status_code != 404
        return ModelListing(model=api_model, found=found, request_id=response.headers.get("x-request-id"))

    async def check(self, model: str) -> bool:
        """True when xAI knows ``model`` (GET models/{id}); False on 404; other failures raise."""
        return (await self.describe_model(model)).found


def _image_item(answer: Any, model: str, request_id: str | None) -> dict[str, Any]:
    """The one image asked for, once xAI's silent moderation is ruled out.

    xAI moderates with HTTP 200: a blocked request comes back as ``data: []``, a blocked picture as
    ``respect_moderation: false`` with no bytes or with a stand-in picture. Either way the prompt is
    what must change, so it is content policy: a retry on the same model would pay for the same refusal.
    """
    data = answer.get("data") if isinstance(answer, dict) else None
    if data == []:
        raise ProviderError(ErrorKind.CONTENT_POLICY, MODERATED_REQUEST, model=model, request_id=request_id)
    item = data[0] if isinstance(data, list) else None
    if not isinstance(item, dict):
        raise ProviderError(ErrorKind.TRANSIENT, "xAI sent no image", model=model, request_id=request_id)
    if item.get("respect_moderation") is False:
        raise ProviderError(ErrorKind.CONTENT_POLICY, MODERATED_IMAGE, model=model, request_id=request_id)
    return item


def _usable_references(
    references: list[ReferenceImage], spec: ModelSpec | None
) -> tuple[list[ReferenceImage], list[str]]:
    if not references:
        return [], []
    limit = MAX_API_REFERENCES if spec is None else min(spec.max_reference_images, MAX_API_REFERENCES)
    if limit == 0:
        return [], [f"{spec.key if spec else 'this model'} takes no reference images; they were left out"]
    if len(references) > limit:
        return references[:limit], [f"only the first {limit} of {len(references)} reference images were used"]
    return list(references), []


def _aspect_ratio(requested: str, spec: ModelSpec | None) -> tuple[str, list[str]]:
    if spec is None or not spec.aspect_ratios or requested in spec.aspect_ratios:
        return requested, []
    return FALLBACK_RATIO, [f"{spec.key} does not offer aspect ratio {requested}; it chose one itself"]
