"""The OpenAI adapter: stories from a chat model, scene images from the gpt-image models.

Wire shapes and error semantics: shared/reference/provider-apis.md sections 2, 4 and 12. The SDK's
own retries are off (``max_retries=0``): the router is the only retry loop. Every failure leaves
this module as a classified ``ProviderError``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, date, datetime
from typing import Any, Literal, NoReturn

import openai
from pydantic import SecretStr

from bot.clock import Clock, SystemClock
from bot.domain import Modality
from bot.errors import ErrorKind, ProviderError
from bot.providers.base import (
    ImageRequest,
    ImageResult,
    ModelListing,
    ReferenceImage,
    StoryDraft,
    StoryRequest,
)
from bot.providers.http_errors import retry_after_from_headers
from bot.providers.story_prompt import SYSTEM_PROMPT, parse_story, user_prompt
from bot.routing.catalog import ModelSpec
from bot.routing.registry import Registry
from bot.settings import Settings

log = logging.getLogger(__name__)

SQUARE, LANDSCAPE, PORTRAIT = "1024x1024", "1536x1024", "1024x1536"
MAX_API_REFERENCES = 16  # images.edit takes up to 16 files
QUOTA_CODES = frozenset({"insufficient_quota"})
CONTENT_POLICY_CODES = frozenset({"moderation_blocked", "content_policy_violation"})
# The SDK itself treats these as retryable (provider-apis.md s4), so they are not the caller's fault.
TRANSIENT_STATUSES = frozenset({408, 409})
DETAIL_LIMIT = 200
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/webp": "webp"}

Quality = Literal["medium", "high"]


def size_for_aspect_ratio(aspect_ratio: str) -> str:
    """The gpt-image size closest in shape to ``W:H``: landscape, portrait or square."""
    try:
        width, height = (float(part) for part in aspect_ratio.split(":"))
        ratio = width / height
    except (ValueError, ZeroDivisionError):
        return SQUARE
    if ratio > 1.1:
        return LANDSCAPE
    if ratio < 1 / 1.1:
        return PORTRAIT
    return SQUARE


def quality_for(spec: ModelSpec | None) -> Quality:
    return "high" if spec is not None and "hq" in spec.tags else "medium"


class OpenAIAdapter:
    """TextProvider and ImageProvider over the official ``openai`` SDK."""

    def __init__(self, settings: Settings, registry: Registry, *, clock: Clock | None = None) -> None:
        self._settings = settings
        self._registry = registry
        self._clock: Clock = clock or SystemClock()
        self._client: openai.AsyncOpenAI | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # --- text -----------------------------------------------------------------------------------

    async def write_story(self, request: StoryRequest) -> StoryDraft:
        name = self._display_name(request.model)
        client = self._client_or_raise(name)
        try:
            completion = await client.chat.completions.create(
                model=request.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": user_prompt(request)},
                ],
                response_format={"type": "json_object"},
            )
        except Exception as exc:
            self._raise_classified(exc, request.model)
        choice = completion.choices[0] if completion.choices else None
        if choice is not None and (choice.message.refusal or choice.finish_reason == "content_filter"):
            raise ProviderError(
                ErrorKind.CONTENT_POLICY,
                "OpenAI refused to write this story",
                model=name,
                request_id=completion._request_id,
            )
        return parse_story(choice.message.content if choice else None, request, model=name)

    # --- images ---------------------------------------------------------------------------------

    async def generate_image(self, request: ImageRequest) -> ImageResult:
        spec = self._registry.get(request.model)
        name = self._display_name(request.model)
        client = self._client_or_raise(name)
        references, warnings = self._usable_references(request.references, spec)
        size = size_for_aspect_ratio(request.aspect_ratio)
        quality = quality_for(spec)
        try:
            if references:
                extra: dict[str, Any] = {}
                if spec is not None and spec.supports_input_fidelity:
                    extra["input_fidelity"] = "high"
                files = [_file_tuple(index, ref) for index, ref in enumerate(references, start=1)]
                response = await client.images.edit(
                    model=request.model,
                    prompt=request.prompt,
                    image=files[0] if len(files) == 1 else files,
                    size=size,
                    quality=quality,
                    output_format="png",
                    n=1,
                    **extra,
                )
            else:
                # gpt-image models always answer base64 and reject response_format and style.
                response = await client.images.generate(
                    model=request.model, prompt=request.prompt, size=size, quality=quality, output_format="png", n=1
                )
        except Exception as exc:
            self._raise_classified(exc, request.model)
        encoded = response.data[0].b64_json if response.data else None
        try:
            data = base64.b64decode(encoded or "", validate=True)
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            raise ProviderError(
                ErrorKind.TRANSIENT, "OpenAI returned no image", model=name, request_id=response._request_id
            )
        return ImageResult(data=data, mime_type="image/png", request_id=response._request_id, warnings=warnings)

    # --- health ---------------------------------------------------------------------------------

    async def describe_model(self, api_model: str, modality: Modality | None = None) -> ModelListing:
        """``GET /v1/models/{id}``: 404 is ``found=False``; the optional ``shutdown_date`` is read as a day."""
        client = self._client_or_raise(self._display_name(api_model))
        try:
            found = await client.models.retrieve(api_model)
        except openai.NotFoundError:
            return ModelListing(model=api_model, found=False)
        except Exception as exc:
            self._raise_classified(exc, api_model)
        shutdown = _parse_day(getattr(found, "shutdown_date", None))
        return ModelListing(model=api_model, found=True, shutdown_date=shutdown, request_id=found._request_id)

    async def check(self, model: str) -> bool:
        """True when ``model`` exists and has no shutdown date in the past; False when it is gone."""
        listing = await self.describe_model(model)
        shutdown = listing.shutdown_date
        today = datetime.fromtimestamp(self._clock.now(), tz=UTC).date()
        return listing.found and (shutdown is None or shutdown > today)

    # --- helpers --------------------------------------------------------------------------------

    def _client_or_raise(self, name: str) -> openai.AsyncOpenAI:
        if self._client is None:
            key = self._settings.openai_api_key
            secret = key.get_secret_value().strip() if key is not None else ""
            if not secret:
                raise ProviderError(ErrorKind.AUTH, "no key set (set OPENAI_API_KEY)", model=name)
            self._client = openai.AsyncOpenAI(
                api_key=secret,
                base_url=self._settings.openai_base_url,
                max_retries=0,
                timeout=self._settings.provider_timeout_s,
            )
        return self._client

    def _display_name(self, api_model: str) -> str:
        spec = self._registry.get(api_model)
        return spec.key if spec is not None else api_model

    def _usable_references(
        self, references: list[ReferenceImage], spec: ModelSpec | None
    ) -> tuple[list[ReferenceImage], list[str]]:
        if not references:
            return [], []
        if spec is not None and not spec.supports_references:
            return [], [f"{spec.key} does not take reference images; they were left out"]
        limit = min(spec.max_reference_images, MAX_API_REFERENCES) if spec is not None else MAX_API_REFERENCES
        if len(references) <= limit:
            return list(references), []
        return list(references[:limit]), [f"only the first {limit} of {len(references)} reference images were used"]

    def _raise_classified(self, exc: Exception, api_model: str) -> NoReturn:
        spec = self._registry.get(api_model)
        name = spec.key if spec is not None else api_model
        key = self._settings.openai_api_key
        error = classify(exc, model=name, successor=spec.successor if spec else None, secret=key)
        log.info("openai call for %s failed: %s (%s)", name, error.kind.value, error)
        raise error from exc


def classify(
    exc: Exception, *, model: str, successor: str | None = None, secret: SecretStr | None = None
) -> ProviderError:
    """Turn anything the SDK raised into a ProviderError (provider-apis.md s4); re-raise what is not the SDK's."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc, model=model, successor=successor, secret=secret)
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(ErrorKind.TRANSIENT, "OpenAI timed out", model=model)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(ErrorKind.TRANSIENT, "could not reach OpenAI", model=model)
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        # The SDK lets a malformed 200 body through as a raw JSONDecodeError.
        return ProviderError(ErrorKind.TRANSIENT, "OpenAI sent a malformed answer", model=model)
    if isinstance(exc, TimeoutError | ConnectionError):
        return ProviderError(ErrorKind.TRANSIENT, "OpenAI connection failed", model=model)
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(ErrorKind.BAD_REQUEST, f"OpenAI client error: {type(exc).__name__}", model=model)
    raise exc


def _classify_status(
    exc: openai.APIStatusError, *, model: str, successor: str | None, secret: SecretStr | None
) -> ProviderError:
    status = exc.status_code
    request_id = exc.request_id
    detail = _detail(exc, secret)

    def error(kind: ErrorKind, message: str, **extra: Any) -> ProviderError:
        return ProviderError(kind, message, model=model, status=status, request_id=request_id, **extra)

    if isinstance(exc, openai.RateLimitError):
        if exc.code in QUOTA_CODES or exc.type in QUOTA_CODES:
            return error(ErrorKind.QUOTA_EXHAUSTED, "OpenAI quota exhausted (429)")
        retry_after = retry_after_from_headers(dict(exc.response.headers))
        return error(ErrorKind.RATE_LIMITED, f"OpenAI rate limit (429): {detail}", retry_after=retry_after)
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return error(ErrorKind.AUTH, f"OpenAI rejected the API key ({status})")
    if isinstance(exc, openai.NotFoundError):
        return error(ErrorKind.MODEL_RETIRED, f"OpenAI does not know the model ({status})", successor=successor)
    if isinstance(exc, openai.BadRequestError) and exc.code in CONTENT_POLICY_CODES:
        return error(ErrorKind.CONTENT_POLICY, f"OpenAI blocked the prompt: {detail}")
    if status >= 500 or status in TRANSIENT_STATUSES:
        return error(ErrorKind.TRANSIENT, f"OpenAI server error ({status})")
    return error(ErrorKind.BAD_REQUEST, f"OpenAI rejected the request ({status}): {detail}")


def _detail(exc: openai.APIStatusError, secret: SecretStr | None) -> str:
    """The provider's own short message (never the whole body), with the key masked just in case."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    text = " ".join(str(message or exc.code or "no details").split())
    if secret is not None:
        value = secret.get_secret_value()
        if value:
            text = text.replace(value, "***")
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 3] + "..."


def _file_tuple(index: int, reference: ReferenceImage) -> tuple[str, bytes, str]:
    extension = _EXTENSIONS.get(reference.mime_type.lower(), "png")
    return (f"reference-{index}.{extension}", reference.data, reference.mime_type)


def _parse_day(value: Any) -> date | None:
    """``shutdown_date`` as a day: an ISO date or datetime string, or Unix seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC).date()
    text = str(value).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        log.warning("unreadable OpenAI shutdown_date %r; treating the model as available", text[:40])
        return None
