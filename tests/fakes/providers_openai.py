"""OpenAI's wire shapes for the fake provider server (images, models, chat). See provider-apis.md s2, s4."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from tests.fakes.providers_core import (
    Call,
    Fault,
    FaultKind,
    Route,
    b64,
    bad_picture,
    jpeg_bytes,
    json_response,
    png_bytes,
)

CREATED = 1_763_700_000
KNOWN_MODELS = (
    "gpt-image-1.5",
    "gpt-image-1-mini",
    "gpt-image-2",
    "chatgpt-image-latest",
    "gpt-5-mini",
    "gpt-4.1-mini",
)
_OUTPUT_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_NOT_FOR_GPT_IMAGE = ("response_format", "style")


def _request_id_headers() -> dict[str, str]:
    return {"x-request-id": f"req_{uuid.uuid4().hex}"}


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(body, status=status, headers={**_request_id_headers(), **(headers or {})})


def error(
    status: int, message: str, type_: str, code: str | None, param: str | None = None, **extra: Any
) -> web.Response:
    return reply({"error": {"message": message, "type": type_, "param": param, "code": code, **extra}}, status)


class OpenAIDialect:
    def api_key(self, request: web.Request) -> str | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return key.strip() or None if scheme.lower() == "bearer" else None

    def model_of(self, call: Call) -> str | None:
        recorded = call.recorded
        return recorded.path_params.get("model") or call.body.get("model") or recorded.form("model")

    def missing_key(self, call: Call) -> web.Response:
        message = (
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
        return error(401, message, "invalid_request_error", None)

    def bad_request(self, call: Call, message: str, param: str | None = None) -> web.Response:
        return error(400, message, "invalid_request_error", "invalid_value" if param else None, param)

    async def fault(self, call: Call, fault: Fault) -> web.StreamResponse:
        model = self.model_of(call) or "gpt-image-1.5"
        match fault.kind:
            case FaultKind.RATE_LIMIT:
                headers: dict[str, str] = {}
                if fault.retry_after is not None:
                    headers["retry-after"] = f"{fault.retry_after:g}"
                if fault.retry_after_ms is not None:
                    headers["retry-after-ms"] = str(fault.retry_after_ms)
                message = (
                    f"Rate limit reached for {model} in organization org-fake on images per min (IPM): "
                    "Limit 5, Used 5, Requested 1. Please try again in 12s."
                )
                body = {"error": {"message": message, "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
                return reply(body, 429, headers)
            case FaultKind.QUOTA:
                message = (
                    "You exceeded your current quota, please check your plan and billing details. For more "
                    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes."
                )
                return error(429, message, "insufficient_quota", "insufficient_quota")
            case FaultKind.AUTH:
                message = (
                    "Incorrect API key provided: sk-***. You can find your API key at "
                    "https://platform.openai.com/account/api-keys."
                )
                return error(401, message, "invalid_request_error", "invalid_api_key")
            case FaultKind.RETIRED:
                message = f"The model `{model}` does not exist or you do not have access to it."
                return error(404, message, "invalid_request_error", "model_not_found")
            case FaultKind.CONTENT_POLICY:
                categories = [fault.reason or "violence"]
                message = (
                    "Your request was rejected by the safety system. If you believe this is an error, contact us "
                    f"at help.openai.com and include the request ID. safety_violations=[{categories[0]}]."
                )
                details = {"moderation_stage": "input", "categories": categories}
                return error(
                    400, message, "image_generation_user_error", "moderation_blocked", moderation_details=details
                )
            case FaultKind.BAD_MEDIA:
                data, _ = bad_picture(fault.shape or "html")
                if fault.shape == "mislabelled":  # OpenAI names no type: the PNG it was asked for is a JPEG
                    data = jpeg_bytes(seed="bad media")
                answer = {"created": int(time.time()), "data": [{"b64_json": b64(data)}], "output_format": "png"}
                return reply(answer)
            case FaultKind.SERVER_ERROR:
                status = fault.status or 500
                if status == 503:
                    return error(
                        503, "The engine is currently overloaded, please try again later.", "server_error", None
                    )
                message = "The server had an error while processing your request. Sorry about that!"
                return error(status, message, "server_error", None)
        raise ValueError(f"OpenAI routes cannot answer {fault.kind}")


DIALECT = OpenAIDialect()


def _pixel_size(size: str | None) -> tuple[int, int] | None:
    """'1536x1024' -> a small image with the same ratio; 'auto' or absent -> square."""
    if size in (None, "auto"):
        return 64, 64
    try:
        width, height = (int(value) for value in str(size).split("x"))
    except ValueError:
        return None
    if width <= 0 or height <= 0:
        return None
    return max(16, width // 16), max(16, height // 16)


def _image_response(call: Call, prompt: str, size: str | None, output_format: str, n: int) -> web.Response:
    dimensions = _pixel_size(size)
    if dimensions is None:
        return DIALECT.bad_request(call, f"Invalid value: '{size}'. Supported values are: '1024x1024', ...", "size")
    pillow_format = _OUTPUT_FORMATS.get(output_format)
    if pillow_format is None:
        return DIALECT.bad_request(call, f"Invalid value: '{output_format}'.", "output_format")
    images = []
    for index in range(n):
        png = png_bytes(*dimensions, seed=f"{prompt}#{index}")
        if pillow_format != "PNG":
            buffer = io.BytesIO()
            Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format=pillow_format)
            png = buffer.getvalue()
        images.append({"b64_json": b64(png)})
    body = {
        "created": int(time.time()),
        "data": images,
        "background": "opaque",
        "output_format": output_format,
        "quality": "high",
        "size": size or "1024x1024",
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": 10},
            "output_tokens": 100 * n,
            "total_tokens": 10 + 100 * n,
        },
    }
    return reply(body)


def _parse_n(call: Call, raw: Any) -> int | None:
    try:
        n = int(raw) if raw is not None else 1
    except (TypeError, ValueError):
        return None
    return n if 1 <= n <= 10 else None


async def images_generate(call: Call) -> web.StreamResponse:
    body = call.body
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return DIALECT.bad_request(call, "Missing required parameter: 'prompt'.", "prompt")
    model = str(body.get("model", "gpt-image-1.5"))
    if model.startswith("gpt-image"):
        for param in _NOT_FOR_GPT_IMAGE:
            if param in body:
                return error(400, f"Unknown parameter: '{param}'.", "invalid_request_error", "unknown_parameter", param)
    n = _parse_n(call, body.get("n"))
    if n is None:
        return DIALECT.bad_request(call, "Invalid value for 'n': must be between 1 and 10.", "n")
    return _image_response(call, prompt, body.get("size"), str(body.get("output_format", "png")), n)


async def images_edit(call: Call) -> web.StreamResponse:
    recorded = call.recorded
    prompt = recorded.form("prompt")
    if not prompt:
        return DIALECT.bad_request(call, "Missing required parameter: 'prompt'.", "prompt")
    images = recorded.files.get("image", []) + recorded.files.get("image[]", [])
    if not images:
        return DIALECT.bad_request(call, "Missing required parameter: 'image'.", "image")
    if len(images) > 16:
        return DIALECT.bad_request(call, "Too many images: at most 16 are allowed.", "image")
    for index, data in enumerate(images, start=1):
        try:
            Image.open(io.BytesIO(data)).verify()
        except (UnidentifiedImageError, OSError, SyntaxError):
            message = f"Invalid image file or mode for image {index}, please check your image file."
            return DIALECT.bad_request(call, message, "image")
    model = recorded.form("model") or "gpt-image-1.5"
    fidelity = recorded.form("input_fidelity")
    if fidelity is not None and not _fidelity_supported(model, fidelity):
        message = f"Invalid value: '{fidelity}'. input_fidelity is not supported for model '{model}'."
        return DIALECT.bad_request(call, message, "input_fidelity")
    n = _parse_n(call, recorded.form("n"))
    if n is None:
        return DIALECT.bad_request(call, "Invalid value for 'n': must be between 1 and 10.", "n")
    return _image_response(call, prompt, recorded.form("size"), recorded.form("output_format") or "png", n)


def _fidelity_supported(model: str, fidelity: str) -> bool:
    """gpt-image-1.5: high|low; gpt-image-1-mini: low only; gpt-image-2 and later: not at all (s2.2)."""
    if fidelity not in ("high", "low"):
        return False
    if model.startswith("gpt-image-1-mini"):
        return fidelity == "low"
    return not model.startswith("gpt-image-2")


def _model_object(model: str, call: Call) -> dict[str, Any]:
    shutdown = call.fake.shutdown_dates.get(model)
    return {"id": model, "object": "model", "created": CREATED, "owned_by": "system", "shutdown_date": shutdown}


async def models_retrieve(call: Call) -> web.StreamResponse:
    return reply(_model_object(call.recorded.path_params["model"], call))


async def models_list(call: Call) -> web.StreamResponse:
    models = [_model_object(model, call) for model in KNOWN_MODELS if model not in call.fake.retired_models]
    return reply({"object": "list", "data": models})


def chat_completion(call: Call, text: str) -> dict[str, Any]:
    """The non-streaming chat completion object (also what xAI's OpenAI-compatible chat returns)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.body.get("model", "gpt-5-mini"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 40, "total_tokens": 60},
        "system_fingerprint": None,
    }


async def chat(call: Call) -> web.StreamResponse:
    messages = call.body.get("messages")
    if not isinstance(messages, list) or not messages:
        return DIALECT.bad_request(call, "Missing required parameter: 'messages'.", "messages")
    return reply(chat_completion(call, call.fake.reply_text(call)))


def routes() -> list[Route]:
    return [
        Route("openai.images.generate", "POST", "/v1/images/generations", images_generate, DIALECT),
        Route("openai.images.edit", "POST", "/v1/images/edits", images_edit, DIALECT, body="multipart"),
        Route("openai.models.retrieve", "GET", "/v1/models/{model}", models_retrieve, DIALECT, body="none"),
        Route("openai.models.list", "GET", "/v1/models", models_list, DIALECT, body="none"),
        Route("openai.chat", "POST", "/v1/chat/completions", chat, DIALECT),
    ]
