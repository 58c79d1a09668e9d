"""Gemini API wire shapes for the fake provider server. See provider-apis.md s8, s11, s12.

Every success is exactly HTTP 200 (genai raises on any other status). Both /v1 and /v1beta are served.

Telling the two 429s apart: a rate limit (``Fault.rate_limit``) carries a per-minute QuotaFailure
violation and, when ``retry_after`` is given, a RetryInfo ``retryDelay`` such as "7s"; an
exhausted quota (``Fault.quota``) says "You exceeded your current quota" and names a per-day
quota id (``...PerDay...``) with no RetryInfo. The recorded shapes below show that real exhausted
quotas often carry RetryInfo too, so RetryInfo alone never tells them apart.

Every successful image answer ends with a final image part that carries a ``thoughtSignature``,
as Gemini 3 image models sign it; ``Fault.thought_images`` puts interim drafts before it.
"""

from __future__ import annotations

import binascii
import uuid
from typing import Any

from aiohttp import web

from tests.fakes.providers_core import (
    Call,
    Fault,
    FaultKind,
    Route,
    b64,
    bad_picture,
    decode_base64,
    json_response,
    png_bytes,
    size_for_ratio,
)

KNOWN_MODELS = ("gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-lite-image", "gemini-3-flash")
_TYPE = "type.googleapis.com/google.rpc."
_STATUS_BY_CODE = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
_SERVER_ERRORS = {
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    502: ("UNAVAILABLE", "Bad gateway."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


def error(
    code: int, message: str, status: str | None = None, details: list[dict[str, Any]] | None = None
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message, "status": status or _STATUS_BY_CODE.get(code, "UNKNOWN")}
    if details:
        body["details"] = details
    return json_response({"error": body}, status=code)


def _quota_failure(quota_id: str, model: str) -> dict[str, Any]:
    return _quota_failures([("generate_content_requests", quota_id)], model)


def _quota_failures(violations: list[tuple[str, str]], model: str) -> dict[str, Any]:
    """A QuotaFailure detail: one violation per (metric, quotaId)."""
    dimensions = {"location": "global", "model": model}
    return {
        "@type": f"{_TYPE}QuotaFailure",
        "violations": [
            {
                "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                "quotaId": quota_id,
                "quotaDimensions": dimensions,
            }
            for metric, quota_id in violations
        ],
    }


_EXCEEDED = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    "error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
_MONITOR = " To monitor your current usage, head to: https://ai.dev/rate-limit. "
_HELP = {
    "@type": f"{_TYPE}Help",
    "links": [
        {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
        }
    ],
}


def _retry_info(seconds: float) -> dict[str, Any]:
    return {"@type": f"{_TYPE}RetryInfo", "retryDelay": f"{int(seconds)}s"}


def _free_tier_per_minute(model: str, retry_after: float | None) -> web.Response:
    # Recorded: github.com/continuedev/continue/issues/8947 (a per-minute input-token quota with a
    # non-zero limit and RetryInfo: waiting clears it).
    wait = 45.218844857 if retry_after is None else retry_after
    metric = "generate_content_free_tier_input_token_count"
    message = (
        f"{_EXCEEDED}{_MONITOR}\n* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, "
        f"limit: 125000, model: {model}\nPlease retry in {wait}s."
    )
    violations = _quota_failures([(metric, "GenerateContentInputTokensPerModelPerMinute-FreeTier")], model)
    return error(429, message, details=[_HELP, violations, _retry_info(wait)])


def _free_tier_limit_0(model: str) -> web.Response:
    # Recorded: github.com/continuedev/continue/issues/11693 (the message names "limit: 0" for a model
    # the free tier does not offer, and still says "Please retry in 38.96s" with RetryInfo). The
    # violations here are per-minute ones, as in the same family of bodies, so that only the message
    # says the quota is zero.
    requests, tokens = "generate_content_free_tier_requests", "generate_content_free_tier_input_token_count"
    lines = "".join(
        f"\n* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, limit: 0, model: {model}"
        for metric in (requests, requests, tokens, tokens)
    )
    message = f"{_EXCEEDED}{_MONITOR}{lines}\nPlease retry in 38.962214405s."
    violations = _quota_failures(
        [
            (requests, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
            (tokens, "GenerateContentInputTokensPerModelPerMinute-FreeTier"),
        ],
        model,
    )
    return error(429, message, details=[_HELP, violations, _retry_info(38)])


def _per_day_with_retry(model: str) -> web.Response:
    # Recorded: github.com/googleapis/python-genai/issues/2044 (a daily free-tier quota named among
    # per-minute ones, with RetryInfo "47s": the wait ends nothing, the day's quota is gone).
    requests, tokens = "generate_content_free_tier_requests", "generate_content_free_tier_input_token_count"
    violations = _quota_failures(
        [
            (requests, "GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
            (requests, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
            (tokens, "GenerateContentInputTokensPerModelPerMinute-FreeTier"),
        ],
        model,
    )
    return error(429, _EXCEEDED, details=[_HELP, violations, _retry_info(47)])


class GoogleDialect:
    def api_key(self, request: web.Request) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key") or None

    def model_of(self, call: Call) -> str | None:
        return call.recorded.path_params.get("model")

    def missing_key(self, call: Call) -> web.Response:
        message = (
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API."
        )
        return error(403, message)

    def bad_request(self, call: Call, message: str) -> web.Response:
        return error(400, message)

    async def fault(self, call: Call, fault: Fault) -> web.StreamResponse:
        model = self.model_of(call) or "gemini-3.1-flash-image"
        match fault.kind:
            case FaultKind.RATE_LIMIT if fault.shape == "free-tier-per-minute":
                return _free_tier_per_minute(model, fault.retry_after)
            case FaultKind.RATE_LIMIT:
                details = [_quota_failure("GenerateRequestsPerMinutePerProjectPerModel", model)]
                if fault.retry_after is not None:
                    details.append({"@type": f"{_TYPE}RetryInfo", "retryDelay": f"{fault.retry_after:g}s"})
                return error(429, "Resource has been exhausted (e.g. check quota).", details=details)
            case FaultKind.QUOTA if fault.shape == "free-tier-limit-0":
                return _free_tier_limit_0(model)
            case FaultKind.QUOTA if fault.shape == "per-day-with-retry":
                return _per_day_with_retry(model)
            case FaultKind.QUOTA:
                message = (
                    "You exceeded your current quota, please check your plan and billing details. For more "
                    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
                )
                help_link = {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
                details = [
                    {"@type": f"{_TYPE}Help", "links": [help_link]},
                    _quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier", model),
                ]
                return error(429, message, details=details)
            case FaultKind.AUTH:
                info = {
                    "@type": f"{_TYPE}ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
                return error(400, "API key not valid. Please pass a valid API key.", details=[info])
            case FaultKind.RETIRED:
                version = call.recorded.path_params.get("version", "v1beta")
                message = (
                    f"models/{model} is not found for API version {version}, or is not supported for "
                    "generateContent. Call ListModels to see the list of available models and their supported methods."
                )
                return error(404, message)
            case FaultKind.SERVER_ERROR:
                status, message = _SERVER_ERRORS.get(fault.status or 500, ("UNKNOWN", "Server error."))
                return error(fault.status or 500, message, status)
            case FaultKind.CONTENT_POLICY:
                body = {"promptFeedback": {"blockReason": fault.reason or "PROHIBITED_CONTENT"}, **_meta(model)}
                return json_response(body)
            case FaultKind.IMAGE_SAFETY:
                candidate = {"finishReason": fault.reason or "IMAGE_SAFETY", "index": 0}
                return json_response({"candidates": [candidate], **_meta(model)})
            case FaultKind.TEXT_ONLY:
                return json_response(_content_response(model, [{"text": fault.reason or ""}]))
            case FaultKind.THOUGHT_IMAGES:
                return json_response(_content_response(model, _thought_parts(call, fault.shape or "flagged")))
            case FaultKind.BAD_MEDIA:
                data, mime_type = bad_picture(fault.shape or "html")
                parts: list[dict[str, Any]] = [
                    {"text": "Here is the image."},
                    {"inlineData": {"mimeType": mime_type, "data": b64(data)}},
                ]
                return json_response(_content_response(model, parts))
        raise ValueError(f"Gemini routes cannot answer {fault.kind}")


DIALECT = GoogleDialect()


def _meta(model: str) -> dict[str, Any]:
    return {
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1290, "totalTokenCount": 1300},
        "modelVersion": model,
        "responseId": uuid.uuid4().hex[:22],
    }


def _content_response(model: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    return {"candidates": [candidate], **_meta(model)}


def _check_contents(contents: Any) -> str | None:
    """Why the request's contents are unusable, or None. Accepts inlineData with mime_type or mimeType."""
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    for content in contents:
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list) or not parts:
            return "* GenerateContentRequest.contents.parts: contents.parts must not be empty."
        for part in parts:
            inline = part.get("inlineData") or part.get("inline_data") if isinstance(part, dict) else None
            if inline is None:
                continue
            if not (inline.get("mimeType") or inline.get("mime_type")):
                return "* GenerateContentRequest.contents.parts.inline_data.mime_type: mime_type is not specified"
            try:
                decode_base64(str(inline.get("data", "")))
            except (binascii.Error, ValueError):
                return "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
    return None


def _signature(label: str) -> str:
    """An opaque thoughtSignature (real ones are long base64 blobs; the SDK decodes them as bytes)."""
    return b64(f"fake-signature:{label}".encode())


def final_image(call: Call) -> bytes:
    """The picture this request's final part carries: the requested ratio, coloured by the prompt."""
    config = call.body.get("generationConfig") or {}
    aspect_ratio = (config.get("imageConfig") or {}).get("aspectRatio")
    return png_bytes(*size_for_ratio(aspect_ratio), seed=_prompt(call))


def draft_image(call: Call, index: int) -> bytes:
    """Interim drafts are smaller than the final image, so a test can tell which one it got."""
    return png_bytes(32, 32, seed=f"draft {index}: {_prompt(call)}")


def _prompt(call: Call) -> str:
    contents = call.body.get("contents") or []
    return " ".join(
        str(part.get("text", "")) for content in contents for part in content["parts"] if isinstance(part, dict)
    )


def _image_part(data: bytes, **marks: Any) -> dict[str, Any]:
    return {"inlineData": {"mimeType": "image/png", "data": b64(data)}, **marks}


def _final_parts(call: Call) -> list[dict[str, Any]]:
    # ai.google.dev/gemini-api/docs/image-generation#thought-signatures: the first text part after
    # the thoughts and every image part outside them carry a thoughtSignature.
    return [
        {"text": "Here is the image.", "thoughtSignature": _signature("text")},
        _image_part(final_image(call), thoughtSignature=_signature("final")),
    ]


def _thought_parts(call: Call, shape: str) -> list[dict[str, Any]]:
    """Interim drafts before the final image, in the layouts seen in the wild.

    "flagged": the documented layout (ai.google.dev/gemini-api/docs/image-generation, "Thinking
    process": up to two interim images inside the thoughts, marked ``thought: true`` and unsigned;
    the final image after them, signed); filtering on ``thought`` is the fix minimaxir/gemimg#21
    made for Gemini 3.
    "signed": drafts carry only a thoughtSignature and no ``thought`` flag, just like the final
    image, so only the order tells them apart (help.apiyi.com/en?p=26130: the final image is the
    last one). No recorded body of this layout is public.
    "flagged-final": every image sits inside the thoughts, the final one last (Lixpi/lixpi#136: the
    real picture came back flagged ``thought``; the docs: the last image within the thinking is
    also the final rendered image).
    "unmarked": several images and no marks at all (a proxy that drops the fields): the last is final.
    """
    drafts = [draft_image(call, index) for index in (1, 2)]
    thinking = {"text": "**Composing the scene**\nTrying the lantern on the left first.", "thought": True}
    match shape:
        case "flagged":
            return [thinking, *(_image_part(draft, thought=True) for draft in drafts), *_final_parts(call)]
        case "signed":
            signed = (_image_part(draft, thoughtSignature=_signature(f"draft{i}")) for i, draft in enumerate(drafts))
            return [*signed, *_final_parts(call)]
        case "flagged-final":
            return [thinking, *(_image_part(data, thought=True) for data in [*drafts, final_image(call)])]
        case "unmarked":
            return [_image_part(data) for data in [*drafts, final_image(call)]]
    raise ValueError(f"unknown thought-images shape {shape!r}")


async def generate_content(call: Call) -> web.StreamResponse:
    if call.recorded.path_params.get("action") != "generateContent":
        return error(404, f"Method not found: {call.recorded.path_params.get('action')}", "NOT_FOUND")
    problem = _check_contents(call.body.get("contents"))
    if problem:
        return DIALECT.bad_request(call, problem)
    model = call.recorded.path_params["model"]
    config = call.body.get("generationConfig") or {}
    modalities = [str(modality).upper() for modality in config.get("responseModalities") or []]
    if "IMAGE" not in modalities:
        return json_response(_content_response(model, [{"text": call.fake.reply_text(call)}]))
    return json_response(_content_response(model, _final_parts(call)))


def _model_object(model: str) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "description": f"Fake {model}",
        "inputTokenLimit": 32768,
        "outputTokenLimit": 32768,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


async def models_get(call: Call) -> web.StreamResponse:
    return json_response(_model_object(call.recorded.path_params["model"]))


async def models_list(call: Call) -> web.StreamResponse:
    return json_response({"models": [_model_object(m) for m in KNOWN_MODELS if m not in call.fake.retired_models]})


def routes() -> list[Route]:
    versions = "{version:v1beta|v1}"
    return [
        Route("google.generate_content", "POST", f"/{versions}/models/{{model}}:{{action}}", generate_content, DIALECT),
        Route("google.models.get", "GET", f"/{versions}/models/{{model}}", models_get, DIALECT, body="none"),
        Route("google.models.list", "GET", f"/{versions}/models", models_list, DIALECT, body="none"),
    ]
