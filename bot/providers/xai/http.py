"""xAI's HTTP plumbing: the httpx clients, and every failure classified into a ``ProviderError``.

provider-apis.md s7: xAI reports a bad key as 400, content policy as 403, spent credits as 429 or
403 (like a rate limit or a refusal), overload as 529, and phrases its error bodies three ways:
``{"code", "error": str}``, OpenAI's ``{"error": {"message", "code", "type"}}``, or a bare string.
All three are parsed, and a message that arrives percent-encoded is decoded first.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from bot.errors import ErrorKind, ProviderError
from bot.providers.http_errors import retry_after_from_headers
from bot.routing.registry import Registry
from bot.settings import Settings

log = logging.getLogger(__name__)

DETAIL_LIMIT = 200
NO_KEY = "no key set (set XAI_API_KEY)"
TRANSIENT_STATUSES = frozenset({408, 529})
_BAD_KEY = re.compile(r"api[ _-]?key", re.IGNORECASE)
_BAD_KEY_WORDS = ("invalid", "incorrect", "no api key", "not valid", "missing", "malformed")
# xAI's 400 for a token it cannot authenticate at all: "Bad credentials. [WKE=unauthenticated:bad-credentials]".
_BAD_CREDENTIALS = re.compile(r"bad credentials|unauthenticated", re.IGNORECASE)
_CONTENT_403 = re.compile(r"content|guideline|moderat|safety|violat", re.IGNORECASE)
# A 400 is a plain bad request unless it clearly speaks of the content rules.
_CONTENT_400 = re.compile(r"usage guidelines|content polic|moderat|safety check|violates", re.IGNORECASE)
_SPENT = re.compile(r"credit|spending limit|insufficient_quota|billing", re.IGNORECASE)
_KEY_LIKE = re.compile(r"xai-[A-Za-z0-9_-]{6,}")


def error_details(response: httpx.Response) -> tuple[str, str]:
    """(message, code) out of an error body in any of xAI's three shapes ("" when absent)."""
    text = response.text
    try:
        body: Any = json.loads(text)
    except ValueError:
        return ("" if text.lstrip().startswith("<") else _decoded(text)), ""  # an HTML page says nothing useful
    if isinstance(body, str):
        return _decoded(body), ""
    if not isinstance(body, dict):
        return "", ""
    inner = body.get("error")
    if isinstance(inner, dict):
        return _decoded(str(inner.get("message") or "")), str(inner.get("code") or inner.get("type") or "")
    if isinstance(inner, str):
        return _decoded(inner), str(body.get("code") or "")
    return _decoded(str(body.get("message") or "")), str(body.get("code") or "")


def _decoded(message: str) -> str:
    """Some xAI errors arrive percent-encoded ("Incorrect%20API%20key%20provided:..."): not one real space."""
    return unquote(message) if "%20" in message and " " not in message else message


def kind_for(status: int, message: str, code: str) -> ErrorKind:
    text = f"{message} {code}"
    lowered = text.lower()
    bad_key = _BAD_KEY.search(text) and any(word in lowered for word in _BAD_KEY_WORDS)
    if status == 400 and (bad_key or _BAD_CREDENTIALS.search(message)):
        return ErrorKind.AUTH
    if status == 400 and _CONTENT_400.search(text):
        return ErrorKind.CONTENT_POLICY
    if status == 401:
        return ErrorKind.AUTH
    if status == 403 and _CONTENT_403.search(text):
        return ErrorKind.CONTENT_POLICY
    if status == 403:  # spent credits or spending limit say nothing of the key
        return ErrorKind.QUOTA_EXHAUSTED if _SPENT.search(text) else ErrorKind.AUTH
    if status == 404:
        return ErrorKind.MODEL_RETIRED
    if status == 429:
        return ErrorKind.QUOTA_EXHAUSTED if _SPENT.search(text) else ErrorKind.RATE_LIMITED
    if status >= 500 or status in TRANSIENT_STATUSES:
        return ErrorKind.TRANSIENT
    return ErrorKind.BAD_REQUEST


def read_json(response: httpx.Response, model: str | None) -> Any:
    """The response body as JSON; a malformed body is a transient failure (ask again)."""
    try:
        return response.json()
    except ValueError as exc:
        raise ProviderError(
            ErrorKind.TRANSIENT,
            "xAI sent a malformed response",
            model=model,
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from exc


class XAIHttp:
    """The API client (key, base URL, timeout) and a key-less one for downloads, both built lazily."""

    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self._api: httpx.AsyncClient | None = None
        self._downloads: httpx.AsyncClient | None = None

    @property
    def timeout_s(self) -> float:
        return self.settings.provider_timeout_s

    def api(self, model: str | None = None) -> httpx.AsyncClient:
        if self._api is None:
            key = self._key()
            if not key:
                raise ProviderError(ErrorKind.AUTH, NO_KEY, model=model)
            self._api = httpx.AsyncClient(
                base_url=self.settings.xai_base_url,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                timeout=self.timeout_s,
            )
        return self._api

    def downloads(self) -> httpx.AsyncClient:
        """For clip URLs on other hosts (a storage bucket): the API key must not travel there."""
        if self._downloads is None:
            self._downloads = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True)
        return self._downloads

    def download_headers(self, url: str) -> dict[str, str]:
        """The key only when the clip is served by the API's own host (httpx drops it on cross-host redirects)."""
        key = self._key()
        same_origin = _origin(url) == _origin(self.settings.xai_base_url)
        return {"Authorization": f"Bearer {key}"} if key and same_origin else {}

    async def aclose(self) -> None:
        for client in (self._api, self._downloads):
            if client is not None:
                await client.aclose()
        self._api = self._downloads = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        model: str | None,
        body: dict[str, Any] | None = None,
        passthrough: Collection[int] = (),
    ) -> httpx.Response:
        """One call; any status >= 400 not in ``passthrough`` raises a classified ProviderError."""
        client = self.api(model)
        try:
            response = await client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self.transport_error(exc, model) from exc
        if response.status_code >= 400 and response.status_code not in passthrough:
            raise self.classify(response, model)
        return response

    def transport_error(self, exc: httpx.HTTPError, model: str | None) -> ProviderError:
        if isinstance(exc, httpx.TimeoutException):
            message = f"xAI did not answer within {self.timeout_s:g} s"
        else:
            message = f"could not reach xAI ({type(exc).__name__})"
        log.debug("xAI transport error: %r", exc)
        return ProviderError(ErrorKind.TRANSIENT, message, model=model)

    def classify(self, response: httpx.Response, model: str | None) -> ProviderError:
        """The ProviderError for an error response (its body must already be read)."""
        status = response.status_code
        message, code = error_details(response)
        kind = kind_for(status, message, code)
        retry_after = (
            retry_after_from_headers(response.headers)
            if kind in (ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT)
            else None
        )
        successor = None
        if kind is ErrorKind.MODEL_RETIRED and model:
            spec = self.registry.get(model)
            successor = spec.successor if spec is not None else None
        detail = self.redact(" ".join(message.split()))
        if len(detail) > DETAIL_LIMIT:
            detail = detail[: DETAIL_LIMIT - 3] + "..."
        return ProviderError(
            kind,
            f"xAI answered {status}: {detail}" if detail else f"xAI answered {status}",
            model=model,
            retry_after=retry_after,
            status=status,
            request_id=response.headers.get("x-request-id"),
            successor=successor,
        )

    def redact(self, text: str) -> str:
        key = self._key()
        if key:
            text = text.replace(key, "***")
        return _KEY_LIKE.sub("xai-***", text)

    def _key(self) -> str:
        secret = self.settings.xai_api_key
        return secret.get_secret_value().strip() if secret is not None else ""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def data_url(data: bytes, mime_type: str) -> str:
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"
