"""Gemini API wire shapes for the fake provider server. See provider-apis.md s8, s11, s12.

Every success is exactly HTTP 200 (genai raises on any other status). Both /v1 and /v1beta are served.

Telling the two 429s apart: a rate limit (``Fault.rate_limit``) carries a per-minute QuotaFailure
violation and, when ``retry_after`` is given, a RetryInfo ``retryDelay`` such as "7s"; an
exhausted quota (``Fault.quota``) says "You exceeded your current quota" and names a per-day
quota id (``...PerDay...``) with no RetryInfo.
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
    metric = "generativelanguage.googleapis.com/generate_content_requests"
    violation = {"quotaMetric": metric, "quotaId": quota_id, "quotaDimensions": {"model": model, "location": "global"}}
    return {"@type": f"{_TYPE}QuotaFailure", "violations": [violation]}


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
            case FaultKind.RATE_LIMIT:
                details = [_quota_failure("GenerateRequestsPerMinutePerProjectPerModel", model)]
                if fault.retry_after is not None:
                    details.append({"@type": f"{_TYPE}RetryInfo", "retryDelay": f"{fault.retry_after:g}s"})
                return error(429, "Resource has been exhausted (e.g. check quota).", details=details)
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
    aspect_ratio = (config.get("imageConfig") or {}).get("aspectRatio")
    prompt = " ".join(
        str(part.get("text", ""))
        for content in call.body["contents"]
        for part in content["parts"]
        if isinstance(part, dict)
    )
    image = png_bytes(*size_for_ratio(aspect_ratio), seed=prompt)
    parts: list[dict[str, Any]] = [
        {"text": "Here is the image."},
        {"inlineData": {"mimeType": "image/png", "data": b64(image)}},
    ]
    return json_response(_content_response(model, parts))


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
