"""The Google Gemini adapter: scene texts and images through google-genai (provider-apis.md s8, s11, s12).

Safety outcomes arrive as HTTP 200 (a prompt block, a safety finish reason, or a STOP with only prose),
so they are read from the response; HTTP and transport failures are classified from the SDK's exceptions.
Gemini 3 image models may send interim draft images before the final one (``final_image`` picks it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from bot.domain import Modality
from bot.errors import ErrorKind, ProviderError
from bot.providers.base import ImageRequest, ImageResult, ModelListing, StoryDraft, StoryRequest
from bot.providers.http_errors import retry_after_from_google_details
from bot.providers.story_prompt import SYSTEM_PROMPT, parse_story, user_prompt
from bot.routing.catalog import GEMINI_RATIOS, ModelSpec
from bot.routing.registry import Registry
from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_VERSION = "v1beta"
DEFAULT_MAX_REFERENCES = 14  # Gemini's image models take up to 14 inline images
_MESSAGE_LIMIT = 200

# Finish reasons that mean the output was withheld for policy reasons.
_POLICY_FINISH = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
# "Quota exceeded for metric: ..., limit: 0, model: ..." (a free tier that offers this model nothing).
_ZERO_LIMIT = re.compile(r"\blimit:\s*0(?![\d.])")
# Finish reasons where the model simply chose not to draw: the prompt has to change, so no retry.
_DECLINED_FINISH = frozenset({"STOP", "NO_IMAGE", "IMAGE_OTHER", "OTHER", "FINISH_REASON_UNSPECIFIED", ""})


class GoogleAdapter:
    """TextProvider and ImageProvider for Gemini models; one genai client per event loop, built on first use."""

    def __init__(self, settings: Settings, registry: Registry, *, api_version: str = DEFAULT_API_VERSION) -> None:
        self._settings = settings
        self._registry = registry
        self._api_version = api_version
        self._client: genai.Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- public API ---------------------------------------------------------------------------

    async def write_story(self, request: StoryRequest) -> StoryDraft:
        spec = self._registry.get(request.model)
        config = types.GenerateContentConfig(system_instruction=SYSTEM_PROMPT, response_mime_type="application/json")
        response = await self._call(
            request.model,
            spec,
            lambda client: client.aio.models.generate_content(
                model=request.model, contents=user_prompt(request), config=config
            ),
        )
        name = _name(request.model, spec)
        _raise_if_blocked(response, name)
        return parse_story(response.text, request, model=name)

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        spec = self._registry.get(request.model)
        limit = spec.max_reference_images if spec is not None else DEFAULT_MAX_REFERENCES
        references = request.references[:limit]
        warnings: list[str] = []
        if len(references) < len(request.references):
            warnings.append(f"{_name(request.model, spec)} takes {limit} reference images; the rest were left out")
        contents: list[Any] = [
            request.prompt,
            *(types.Part.from_bytes(data=ref.data, mime_type=ref.mime_type) for ref in references),
        ]
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE", "TEXT"],
            image_config=types.ImageConfig(aspect_ratio=_aspect_ratio(request.aspect_ratio, spec)),
        )
        response = await self._call(
            request.model,
            spec,
            lambda client: client.aio.models.generate_content(model=request.model, contents=contents, config=config),
        )
        name = _name(request.model, spec)
        _raise_if_blocked(response, name)
        image = final_image(response.parts or [])
        if image is None:
            raise _no_image(response, name)
        return ImageResult(
            data=image.data or b"",
            mime_type=image.mime_type or "image/png",
            request_id=response.response_id,
            warnings=warnings,
        )

    async def describe_model(self, api_model: str, modality: Modality | None = None) -> ModelListing:
        """``GET /{version}/models/{model}``: 404 NOT_FOUND is ``found=False``; Gemini announces no shutdown dates."""
        spec = self._registry.get(api_model)
        try:
            await self._call(api_model, spec, lambda client: client.aio.models.get(model=api_model))
        except ProviderError as exc:
            if exc.kind is ErrorKind.MODEL_RETIRED:
                return ModelListing(model=api_model, found=False)
            raise
        return ModelListing(model=api_model, found=True)

    async def check(self, model: str) -> bool:
        """True when the model exists for this key; False when the API answers 404."""
        return (await self.describe_model(model)).found

    async def aclose(self) -> None:
        client, session = self._client, self._session
        self._client, self._session, self._loop = None, None, None
        if client is not None:
            await client.aio.aclose()
        if session is not None:
            await session.close()  # genai leaves a caller-supplied session open

    # --- plumbing -----------------------------------------------------------------------------

    def _genai(self, name: str) -> genai.Client:
        key = self._settings.gemini_api_key
        if key is None or not key.get_secret_value().strip():
            raise ProviderError(ErrorKind.AUTH, "no key set (set GEMINI_API_KEY)", model=name)
        loop = asyncio.get_running_loop()
        if self._client is None or self._session is None or self._session.closed or self._loop is not loop:
            # Our own session: without it genai subclasses aiohttp.ClientSession per call, which aiohttp
            # 3.14 answers with a DeprecationWarning.
            self._session = aiohttp.ClientSession()
            self._loop = loop
            options = types.HttpOptions(
                base_url=self._settings.google_gemini_base_url,
                api_version=self._api_version,
                timeout=int(self._settings.provider_timeout_s * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),  # the router is the only retry loop
                aiohttp_client=self._session,
            )
            self._client = genai.Client(api_key=key.get_secret_value(), http_options=options)
        return self._client

    async def _call(self, model: str, spec: ModelSpec | None, make: Callable[[genai.Client], Awaitable[T]]) -> T:
        name = _name(model, spec)
        client = self._genai(name)
        try:
            return await make(client)
        except genai_errors.APIError as exc:
            raise self._classify(exc, name, spec) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(
                ErrorKind.TRANSIENT, f"Gemini could not be reached ({type(exc).__name__})", model=name
            ) from exc
        except json.JSONDecodeError as exc:
            raise ProviderError(ErrorKind.TRANSIENT, "Gemini sent a malformed response", model=name) from exc

    def _classify(self, exc: genai_errors.APIError, name: str, spec: ModelSpec | None) -> ProviderError:
        code = exc.code if isinstance(exc.code, int) else None
        raw = str(exc.message or exc.status or "")
        message = self._safe(raw)
        text = f"Gemini {code} {exc.status or ''}".rstrip() + (f": {message}" if message else "")
        details = _error_details(exc.details)

        def error(kind: ErrorKind, **extra: Any) -> ProviderError:
            return ProviderError(kind, text, model=name, status=code, **extra)

        if code == 429:
            retry_after = retry_after_from_google_details(details)
            # The whole message: "limit: 0" sits past the length the user-facing text is cut to.
            if quota_exhausted(raw, details, retry_after=retry_after):
                return error(ErrorKind.QUOTA_EXHAUSTED)
            return error(ErrorKind.RATE_LIMITED, retry_after=retry_after)
        if code in (401, 403) or (code == 400 and _invalid_key(message, details)):
            return error(ErrorKind.AUTH)
        if code == 404:
            return error(ErrorKind.MODEL_RETIRED, successor=spec.successor if spec else None)
        if code == 408 or code is None or code < 400 or code >= 500:
            return error(ErrorKind.TRANSIENT)
        return error(ErrorKind.BAD_REQUEST)

    def _safe(self, text: str) -> str:
        key = self._settings.gemini_api_key
        secret = key.get_secret_value() if key is not None else ""
        if secret:
            text = text.replace(secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _name(model: str, spec: ModelSpec | None) -> str:
    return spec.key if spec is not None else model


def _aspect_ratio(requested: str, spec: ModelSpec | None) -> str:
    """The requested ratio when the model takes it, else the closest one it does take."""
    allowed = (spec.aspect_ratios if spec is not None else ()) or GEMINI_RATIOS
    if requested in allowed:
        return requested
    target = _ratio_value(requested) or 1.0
    return min(allowed, key=lambda ratio: abs((_ratio_value(ratio) or 1.0) - target))


def _ratio_value(ratio: str) -> float | None:
    try:
        width, height = ratio.split(":")
        return float(width) / float(height)
    except (ValueError, ZeroDivisionError):
        return None


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _raise_if_blocked(response: types.GenerateContentResponse, name: str) -> None:
    """Turn the 200-with-a-block answers into CONTENT_POLICY."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        reason = _enum_text(feedback.block_reason)
        raise ProviderError(ErrorKind.CONTENT_POLICY, f"Gemini blocked the prompt ({reason})", model=name)
    if not response.candidates:
        raise ProviderError(ErrorKind.CONTENT_POLICY, "Gemini returned no answer for the prompt", model=name)
    reason = _enum_text(response.candidates[0].finish_reason)
    if reason in _POLICY_FINISH:
        raise ProviderError(ErrorKind.CONTENT_POLICY, f"Gemini withheld the output ({reason})", model=name)


def _no_image(response: types.GenerateContentResponse, name: str) -> ProviderError:
    reason = _enum_text(response.candidates[0].finish_reason if response.candidates else None)
    prose = " ".join(part.text for part in response.parts or [] if part.text and not part.thought)
    said = " ".join(prose.split())[:120]
    if reason in _DECLINED_FINISH:
        message = f"the model returned no image (finish reason {reason or 'none'})"
        return ProviderError(ErrorKind.CONTENT_POLICY, message + (f": {said}" if said else ""), model=name)
    return ProviderError(ErrorKind.TRANSIENT, f"the model stopped without an image ({reason})", model=name)


def _error_details(body: Any) -> list[Any]:
    """The ``details`` list of a Google error body, wherever the SDK left it."""
    if not isinstance(body, Mapping):
        return []
    inner = body.get("error")
    details = (inner if isinstance(inner, Mapping) else body).get("details")
    return list(details) if isinstance(details, list) else []


def quota_exhausted(message: str, details: list[Any], *, retry_after: float | None) -> bool:
    """Whether a 429 means the quota is spent rather than a short burst limit.

    A zero limit (a free tier the model is not offered on) or a per-day quota will not lift within
    any wait worth holding a worker for, so Google's RetryInfo (sent on these too) is ignored.
    Otherwise the generic "exceeded your current quota" wording counts only without RetryInfo:
    with it, it is a per-minute limit that the wait clears.
    """
    if _ZERO_LIMIT.search(message) or any(_spent_violation(violation) for violation in _violations(details)):
        return True
    return retry_after is None and "exceeded your current quota" in message.lower()


def _violations(details: list[Any]) -> list[Mapping[str, Any]]:
    return [
        violation
        for detail in details
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure")
        for violation in detail.get("violations") or []
        if isinstance(violation, Mapping)
    ]


def _spent_violation(violation: Mapping[str, Any]) -> bool:
    return "perday" in str(violation.get("quotaId", "")).lower() or str(violation.get("quotaValue", "")) == "0"


def final_image(parts: list[types.Part]) -> types.Blob | None:
    """The picture a Gemini image model settled on, or None.

    Gemini 3 image models think in pictures: up to two interim drafts come before the final image.
    Drafts flagged ``thought`` are skipped. A ``thoughtSignature`` says nothing either way (the docs
    put one on the final image itself, and some responses sign the drafts too), so among the rest
    the last one wins: the final image always comes after its drafts. When every image is flagged,
    the last one is the final render (it closes the thinking), never an earlier draft.
    """
    images = [part for part in parts if _is_image(part)]
    settled = [part for part in images if not part.thought] or images
    return settled[-1].inline_data if settled else None


def _is_image(part: types.Part) -> bool:
    inline = part.inline_data
    return inline is not None and bool(inline.data) and (inline.mime_type or "image/").startswith("image/")


def _invalid_key(message: str, details: list[Any]) -> bool:
    if "api key not valid" in message.lower():
        return True
    return any(
        isinstance(detail, Mapping) and str(detail.get("reason", "")).startswith("API_KEY_") for detail in details
    )
