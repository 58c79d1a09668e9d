"""xAI video (provider-apis.md s6): submit -> poll -> download, one call each, never retried here.

``submit_video`` is a POST that starts a paid render, so it is never repeated by this module; the
pipeline saves the returned request id at once and polls it (HTTP 202 while pending). A finished
clip lives at an ephemeral bucket URL and is streamed to disk in 1 MiB chunks, so memory stays flat
whatever the clip's size, and stops at MAX_CLIP_BYTES: a URL that never ends costs one cap of bytes.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from bot.errors import ErrorKind, ProviderError, UnusableAnswer
from bot.providers.base import VideoPoll, VideoRequest, VideoState
from bot.providers.xai.http import DETAIL_LIMIT, XAIHttp, data_url, read_json

log = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 1024 * 1024
UNKNOWN_REQUEST = "the provider no longer knows this request (unknown or expired)"
EXPIRED = "the request expired before the clip was fetched"
MODERATED = "xAI's moderation blocked the clip"
# error.code of a failed render that means the content was refused rather than broken.
_REFUSED_CODES = frozenset({"permission_denied"})
_LINK_GONE = frozenset({403, 404, 410})


async def submit_video(http: XAIHttp, request: VideoRequest) -> str:
    body = {
        "model": request.model,
        "prompt": request.prompt,
        "image": {"url": data_url(request.image.data, request.image.mime_type)},
        "duration": request.duration_s,
    }
    response = await http.request("POST", "videos/generations", model=request.model, body=body)
    answer = read_json(response, request.model)
    request_id = answer.get("request_id") if isinstance(answer, dict) else None
    if not isinstance(request_id, str) or not request_id:
        raise ProviderError(
            ErrorKind.TRANSIENT, "xAI accepted the clip without a request id", model=request.model, status=200
        )
    log.debug("xAI video %s submitted for %s", request_id, request.model)
    return request_id


async def poll_video(http: XAIHttp, remote_id: str) -> VideoPoll:
    path = f"videos/{quote(remote_id, safe='')}"
    response = await http.request("GET", path, model=None, passthrough={404})
    if response.status_code == 404:
        return VideoPoll(state=VideoState.FAILED, error=UNKNOWN_REQUEST)
    if response.status_code == 202:  # pending; the body may be empty or {"status":"pending","progress":n}
        return VideoPoll(state=VideoState.PENDING, progress=_progress(_lenient_json(response)))
    answer = read_json(response, None)
    if not isinstance(answer, dict):
        raise ProviderError(ErrorKind.TRANSIENT, "xAI sent an unexpected poll answer", status=response.status_code)
    status = str(answer.get("status") or "").lower()
    if status == "done" or (not status and isinstance(answer.get("video"), dict)):
        return _finished(answer, response)
    if status == "failed":
        return VideoPoll(state=VideoState.FAILED, error=_failure_text(http, answer.get("error")))
    if status == "expired":
        return VideoPoll(state=VideoState.FAILED, error=EXPIRED)
    return VideoPoll(state=VideoState.PENDING, progress=_progress(answer))  # queued, processing, pending...


async def download_video(http: XAIHttp, poll: VideoPoll, dest: Path) -> None:
    """Stream ``poll.url`` to ``dest``; on any failure ``dest`` is removed."""
    if not poll.url:
        raise ProviderError(ErrorKind.BAD_REQUEST, "the poll answer has no clip URL to download")
    try:
        await _stream_to(http, poll.url, dest)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


async def _stream_to(http: XAIHttp, url: str, dest: Path) -> None:
    client = http.downloads()
    cap = http.settings.max_clip_bytes
    try:
        async with client.stream("GET", url, headers=http.download_headers(url)) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _download_refused(http, response)
            expected = _content_length(response)
            if expected is not None and expected > cap:
                raise _over_cap(f"announced {expected} bytes", cap)
            handle = await asyncio.to_thread(dest.open, "wb")
            written = 0
            try:
                async for chunk in response.aiter_bytes(DOWNLOAD_CHUNK):
                    written += len(chunk)
                    # Both counts: a compressed body could unpack to far more than it took to send.
                    if max(written, response.num_bytes_downloaded) > cap:  # leaving the block closes the connection
                        raise _over_cap(f"sent more than {cap} bytes", cap)
                    await asyncio.to_thread(handle.write, chunk)
            finally:
                await asyncio.to_thread(handle.close)
            received = response.num_bytes_downloaded
    except httpx.HTTPError as exc:
        raise http.transport_error(exc, None) from exc
    if expected is not None and received != expected:
        raise ProviderError(ErrorKind.TRANSIENT, f"the clip download was cut short ({received} of {expected} bytes)")


def _over_cap(said: str, cap: int) -> UnusableAnswer:
    return UnusableAnswer(f"the clip download {said}, over MAX_CLIP_BYTES ({cap})", what="a clip")


def _download_refused(http: XAIHttp, response: httpx.Response) -> ProviderError:
    if response.status_code in _LINK_GONE:
        return ProviderError(
            ErrorKind.BAD_REQUEST,
            f"the clip's download link no longer works (HTTP {response.status_code})",
            status=response.status_code,
        )
    return http.classify(response, None)


def _finished(answer: dict[str, Any], response: httpx.Response) -> VideoPoll:
    video = answer.get("video")
    video = video if isinstance(video, dict) else {}
    url = video.get("url")
    if video.get("respect_moderation") is False or not isinstance(url, str) or not url:
        raise ProviderError(
            ErrorKind.CONTENT_POLICY,
            MODERATED,
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        )
    return VideoPoll(state=VideoState.DONE, progress=100, url=url)


def _failure_text(http: XAIHttp, error: Any) -> str:
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        message = str(error.get("message") or "")
    else:
        code, message = "", str(error or "")
    detail = http.redact(" ".join(message.split()))[:DETAIL_LIMIT] or "no reason given"
    if code in _REFUSED_CODES:
        return f"{MODERATED}: {detail}"
    return f"{code}: {detail}" if code else detail


def _lenient_json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json() if response.content else {}
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _progress(answer: dict[str, Any]) -> int | None:
    value = answer.get("progress")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(0, min(100, int(value)))


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None
