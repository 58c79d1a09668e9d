"""xAI's wire shapes for the fake provider server, served under /xai/v1. See provider-apis.md s5, s6, s7, s12.

Errors use xAI's observed shape ``{"code": "<gRPC status text>", "error": "<message>"}``. xAI moderates
images silently, with HTTP 200 (``Fault.moderated_image``); spent credits come as 429 or 403.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.providers_core import (
    DOWNLOAD_CHUNK,
    Call,
    Fault,
    FaultKind,
    Route,
    b64,
    bad_clip,
    bad_picture,
    clip_size,
    decode_data_url,
    jpeg_bytes,
    json_response,
    padded_mp4_chunks,
    size_for_ratio,
    tiny_mp4,
)
from tests.fakes.providers_openai import chat_completion

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

IMAGE_MODELS = ("grok-imagine-image", "grok-imagine-image-2.0")
VIDEO_MODELS = ("grok-imagine-video", "grok-imagine-video-1.5")
CHAT_MODELS = ("grok-4", "grok-4-fast")
CREATED = 1_763_700_000
MAX_EDIT_IMAGES = 5
_UNSUPPORTED_IMAGE_ARGS = ("size", "style")
_INVALID_ARGUMENT = "Client specified an invalid argument"
_NOT_FOUND = "Some requested entity was not found"
_EXHAUSTED = "Some resource has been exhausted"
_DENIED = "The caller does not have permission to execute the specified operation"
# Recorded: github.com/continuedev/continue/issues/10373 (429) and warpdotdev/warp#14863 (the same
# words as a 403 Forbidden).
_SPENT = (
    "Your team 00000000-fake has either used all available credits or reached its monthly spending limit. "
    "To continue making API requests, please purchase more credits or raise your spending limit."
)
# Recorded: github.com/griptape-ai/griptape-nodes-engine/issues/1079 (403 with the code field as below).
_NO_CREDITS = (
    "Your newly created teams doesn't have any credits yet. You can purchase credits on "
    "https://console.x.ai/team/00000000-fake."
)
# Recorded with percent-encoding kept: github.com/superlanding/x-meet, prompt.md (both 400s).
_PERCENT_ENCODED = {
    "percent-encoded": (
        "Incorrect%20API%20key%20provided:%20YO***EY.%20You%20can%20obtain%20an%20API%20key%20from%20"
        "https://console.x.ai."
    ),
    "bad-credentials": "Bad%20credentials.%20[WKE=unauthenticated:bad-credentials]",
}
_SERVER_ERRORS = {500: "Internal error", 503: "The service is currently unavailable", 529: "Service overloaded"}


@dataclass
class VideoJob:
    request_id: str
    model: str
    prompt: str
    duration: int
    polls: int = 0
    submitted_at: float = field(default_factory=time.monotonic)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"code": code, "error": message}, status=status, headers=headers)


class XaiDialect:
    def api_key(self, request: web.Request) -> str | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return (key.strip() or None) if scheme.lower() == "bearer" else None

    def model_of(self, call: Call) -> str | None:
        return call.recorded.path_params.get("model") or call.body.get("model")

    def missing_key(self, call: Call) -> web.Response:
        return error(
            400, _INVALID_ARGUMENT, "No API key provided. You can obtain an API key from https://console.x.ai."
        )

    def bad_request(self, call: Call, message: str) -> web.Response:
        return error(400, _INVALID_ARGUMENT, message)

    async def fault(self, call: Call, fault: Fault) -> web.StreamResponse:
        model = self.model_of(call) or "grok-imagine-image"
        match fault.kind:
            case FaultKind.RATE_LIMIT:
                headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                return error(429, _EXHAUSTED, f"Too many requests for model {model}. Please slow down.", headers)
            case FaultKind.QUOTA if fault.shape == "credits-403":
                return error(403, _DENIED, _SPENT)
            case FaultKind.QUOTA if fault.shape == "no-credits-403":
                return error(403, _DENIED, _NO_CREDITS)
            case FaultKind.QUOTA:
                return error(429, _EXHAUSTED, _SPENT)
            case FaultKind.AUTH if fault.shape is not None:
                return error(400, _INVALID_ARGUMENT, _PERCENT_ENCODED[fault.shape])
            case FaultKind.AUTH:
                # Recorded: github.com/mangeshraut712/mangeshrautarchive, GROK_KEY_ISSUE.md.
                message = "Incorrect API key provided: xa***. You can obtain an API key from https://console.x.ai."
                return error(400, _INVALID_ARGUMENT, message)
            case FaultKind.RETIRED:
                message = f"The model {model} does not exist or your team does not have access to it."
                return error(404, _NOT_FOUND, message)
            case FaultKind.SERVER_ERROR:
                status = fault.status or 500
                return error(status, _SERVER_ERRORS.get(status, "Internal error"), "Internal server error.")
            case FaultKind.CONTENT_POLICY if call.route == "xai.videos.poll":
                return _poll_answer(call, moderated=True)
            case FaultKind.CONTENT_POLICY:
                message = (
                    f"Content violates usage guidelines. Team: 00000000-fake, Model: {model}, "
                    f"Failed check: {fault.reason or 'SAFETY_CHECK_TYPE_BIO'}"
                )
                return error(403, "The caller does not have permission to execute the specified operation", message)
            case FaultKind.VIDEO_FAILED:
                job = _job(call)
                if job is None:
                    return _unknown_request()
                return json_response({"status": "failed", "error": {"code": fault.reason, "message": fault.body}})
            case FaultKind.TRUNCATED:
                return await videos_download(call, truncate=True)
            case FaultKind.DRIP:  # only the clip route comes here: the server drips the others
                return await videos_download(call, drip_s=fault.seconds)
            case FaultKind.BAD_MEDIA if call.route == "xai.videos.download":
                return await videos_download(call, bad=fault.shape)
            case FaultKind.BAD_MEDIA:
                data, mime_type = bad_picture(fault.shape or "html")
                item = {"b64_json": b64(data), "mime_type": mime_type}
                return json_response({"data": [item], "usage": {"cost_in_usd_ticks": 200_000_000}})
            case FaultKind.MODERATED_IMAGE:
                return json_response(_moderated_images(fault.shape or "nulls"))
        raise ValueError(f"xAI routes cannot answer {fault.kind}")


DIALECT = XaiDialect()


def placeholder_image() -> bytes:
    """The stand-in picture a moderated answer may carry instead of nothing: a decodable JPEG."""
    return jpeg_bytes(64, 64, seed="moderated")


def _moderated_images(shape: str) -> dict[str, Any]:
    """HTTP 200 answers in which moderation withheld the picture.

    Recorded in github.com/vercel/ai/issues/19168 (with its reproduction in vercel/ai#19185) and in
    xai-org/xai-sdk-python, src/xai_sdk/image.py (``respect_moderation`` per image; a flagged image
    has no base64 and no url):
    "nulls": the flagged slot with ``url`` and ``b64_json`` null;
    "placeholder": the flagged slot still carrying a picture (a stand-in, not the one asked for);
    "empty": the whole request blocked, ``data: []``.
    """
    usage = {"cost_in_usd_ticks": 200_000_000}
    match shape:
        case "nulls":
            return {"data": [{"url": None, "b64_json": None, "respect_moderation": False}], "usage": usage}
        case "placeholder":
            item = {"b64_json": b64(placeholder_image()), "mime_type": "image/jpeg", "respect_moderation": False}
            return {"data": [item], "usage": usage}
        case "empty":
            return {"data": [], "usage": usage}
    raise ValueError(f"unknown moderated-image shape {shape!r}")


def _image_data(call: Call, prompt: str, n: int) -> web.Response:
    body = call.body
    fmt = body.get("response_format", "url")
    if fmt not in ("url", "b64_json"):
        return DIALECT.bad_request(call, f"Invalid response_format: {fmt}")
    size = size_for_ratio(body.get("aspect_ratio"))
    data = []
    for index in range(n):
        jpeg = jpeg_bytes(*size, seed=f"{prompt}#{index}")
        if fmt == "b64_json":
            data.append({"b64_json": b64(jpeg), "mime_type": "image/jpeg"})
        else:
            name = f"{uuid.uuid4().hex}.jpeg"
            call.fake.xai_files[name] = jpeg
            data.append({"url": f"{call.fake.url}/xai/files/{name}", "mime_type": "image/jpeg"})
    return json_response({"data": data, "usage": {"cost_in_usd_ticks": 200_000_000 * n}})


def _check_image_args(call: Call) -> tuple[str, int] | web.Response:
    body = call.body
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return error(422, _INVALID_ARGUMENT, "Missing required field: prompt")
    for argument in _UNSUPPORTED_IMAGE_ARGS:
        if argument in body:
            return DIALECT.bad_request(call, f"Argument not supported: {argument}")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        return DIALECT.bad_request(call, "n must be between 1 and 10")
    return prompt, n


def _image_refs(value: Any) -> list[str] | None:
    """URLs out of {url} or [{url}, ...]; None when the shape is wrong."""
    items = value if isinstance(value, list) else [value]
    urls = [item.get("url") for item in items if isinstance(item, dict)]
    valid = [url for url in urls if isinstance(url, str) and url]
    return valid if valid and len(valid) == len(items) else None


def _check_url(url: str) -> str | None:
    if url.startswith(("http://", "https://")):
        return None
    try:
        decode_data_url(url)
    except ValueError as exc:
        return f"Invalid image url: {exc}"
    return None


async def images_generate(call: Call) -> web.StreamResponse:
    checked = _check_image_args(call)
    if isinstance(checked, web.Response):
        return checked
    return _image_data(call, *checked)


async def images_edit(call: Call) -> web.StreamResponse:
    checked = _check_image_args(call)
    if isinstance(checked, web.Response):
        return checked
    body = call.body
    if ("image" in body) == ("images" in body):
        return error(422, _INVALID_ARGUMENT, "Exactly one of image or images must be given")
    urls = _image_refs(body.get("image") if "image" in body else body.get("images"))
    if urls is None:
        return DIALECT.bad_request(call, "Each image must be an object with a url")
    if len(urls) > MAX_EDIT_IMAGES:
        return DIALECT.bad_request(call, f"At most {MAX_EDIT_IMAGES} images are supported")
    for url in urls:
        problem = _check_url(url)
        if problem:
            return DIALECT.bad_request(call, problem)
    return _image_data(call, *checked)


async def image_file(call: Call) -> web.StreamResponse:
    data = call.fake.xai_files.get(call.recorded.path_params["name"])
    if data is None:
        return web.Response(status=404, text="Not Found")
    return web.Response(body=data, content_type="image/jpeg")


async def videos_create(call: Call) -> web.StreamResponse:
    body = call.body
    image = body.get("image", body.get("input_reference"))
    prompt = body.get("prompt")
    if image is None and not prompt:
        return error(422, _INVALID_ARGUMENT, "Missing required field: prompt")
    if image is not None:
        urls = _image_refs(image)
        problem = "image must be an object with a url" if urls is None or len(urls) != 1 else _check_url(urls[0])
        if problem:
            return DIALECT.bad_request(call, problem)
    try:
        duration = int(body.get("duration", body.get("seconds", 8)))
    except (TypeError, ValueError):
        return DIALECT.bad_request(call, "duration must be an integer")
    if not 1 <= duration <= 15:
        return DIALECT.bad_request(call, "duration must be between 1 and 15")
    job = VideoJob(str(uuid.uuid4()), str(body.get("model", VIDEO_MODELS[0])), str(prompt or ""), duration)
    call.fake.video_jobs[job.request_id] = job
    return json_response({"request_id": job.request_id})


def _job(call: Call) -> VideoJob | None:
    return call.fake.video_jobs.get(call.recorded.path_params["request_id"])


def _unknown_request() -> web.Response:
    return error(404, _NOT_FOUND, "Request ID not found or expired.")


def _render_progress(fake: FakeProviders, job: VideoJob) -> int | None:
    """The clip's progress while it is still rendering; None once it is done."""
    if fake.video_render_s is not None:
        elapsed = time.monotonic() - job.submitted_at
        return None if elapsed >= fake.video_render_s else min(99, int(elapsed * 100 / fake.video_render_s))
    if job.polls > fake.video_pending_polls:
        return None
    return min(99, job.polls * 100 // (fake.video_pending_polls + 1))


def _poll_answer(call: Call, *, moderated: bool = False) -> web.Response:
    job = _job(call)
    if job is None:
        return _unknown_request()
    job.polls += 1
    progress = _render_progress(call.fake, job)
    if not moderated and progress is not None:
        if call.fake.video_pending_empty_body:
            return web.Response(status=202)
        return json_response({"status": "pending", "progress": progress}, status=202)
    url = "" if moderated else f"{call.fake.url}/xai/download/{job.request_id}.mp4"
    video = {"url": url, "duration": job.duration, "respect_moderation": not moderated}
    body = {"status": "done", "model": job.model, "progress": 100, "video": video}
    return json_response({**body, "usage": {"cost_in_usd_ticks": 500_000_000}})


async def videos_poll(call: Call) -> web.StreamResponse:
    return _poll_answer(call)


async def videos_download(
    call: Call, *, truncate: bool = False, bad: str | None = None, drip_s: float | None = None
) -> web.StreamResponse:
    if _job(call) is None:
        return web.Response(status=404, text="Not Found")
    if bad == "endless":
        return await _endless_download(call)
    clip = call.fake.video_bytes if call.fake.video_bytes is not None else tiny_mp4()
    padded_to = call.fake.video_size
    if bad is not None:
        clip, padded_to = bad_clip(bad), None
    total = clip_size(clip, padded_to)
    response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    response.content_length = total
    await response.prepare(call.request)
    sent = 0
    limit = total // 2 if truncate else total
    for chunk in padded_mp4_chunks(clip, padded_to):
        piece = chunk[: limit - sent]
        if drip_s is not None:
            for index in range(len(piece)):
                try:
                    await response.write(piece[index : index + 1])
                except ConnectionResetError:  # the client gave up waiting, as it should
                    return response
                call.fake.dripped_bytes += 1
                call.fake.clip_bytes_sent += 1
                await call.fake.sleep(drip_s)
                if call.fake.stopping:
                    return response
        else:
            await response.write(piece)
            call.fake.clip_bytes_sent += len(piece)
        sent += len(piece)
        if sent >= limit:
            break
    if truncate:
        transport = call.request.transport
        if transport is not None:
            transport.close()
        return response
    await response.write_eof()
    return response


async def _endless_download(call: Call) -> web.StreamResponse:
    """A clip's first bytes, then zeros for as long as the client reads (chunked: no length announced)."""
    response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    await response.prepare(call.request)
    start = tiny_mp4()
    await response.write(start)
    call.fake.clip_bytes_sent += len(start)
    zeros = bytes(DOWNLOAD_CHUNK)
    with contextlib.suppress(ConnectionResetError):  # the client hanging up is how this answer ends
        while not call.fake.stopping:
            await response.write(zeros)  # waits while the client does not read
            call.fake.clip_bytes_sent += len(zeros)
    return response


def _model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": CREATED, "owned_by": "xai"}


def _generation_model(model: str, kind: str) -> dict[str, Any]:
    price = {"image_price": 200_000_000} if kind == "image" else {"video_price_per_second": 500_000_000}
    return {
        **_model_object(model),
        "fingerprint": "fp_fake",
        "version": "1.0",
        "aliases": [],
        **price,
        "input_modalities": ["text", "image"],
        "output_modalities": [kind],
        "max_prompt_length": 8192,
    }


def _live(call: Call, models: tuple[str, ...]) -> list[str]:
    return [model for model in models if model not in call.fake.retired_models]


async def models_list(call: Call) -> web.StreamResponse:
    models = _live(call, IMAGE_MODELS + VIDEO_MODELS + CHAT_MODELS)
    return json_response({"object": "list", "data": [_model_object(model) for model in models]})


async def models_retrieve(call: Call) -> web.StreamResponse:
    return json_response(_model_object(call.recorded.path_params["model"]))


async def image_models(call: Call) -> web.StreamResponse:
    return json_response({"models": [_generation_model(model, "image") for model in _live(call, IMAGE_MODELS)]})


async def video_models(call: Call) -> web.StreamResponse:
    return json_response({"models": [_generation_model(model, "video") for model in _live(call, VIDEO_MODELS)]})


async def image_model(call: Call) -> web.StreamResponse:
    return json_response(_generation_model(call.recorded.path_params["model"], "image"))


async def video_model(call: Call) -> web.StreamResponse:
    return json_response(_generation_model(call.recorded.path_params["model"], "video"))


async def chat(call: Call) -> web.StreamResponse:
    messages = call.body.get("messages")
    if not isinstance(messages, list) or not messages:
        return error(422, _INVALID_ARGUMENT, "Missing required field: messages")
    completion = chat_completion(call, call.fake.reply_text(call))
    completion["created"] = int(time.time())
    return json_response(completion)


def routes() -> list[Route]:
    base = "/xai/v1"
    return [
        Route("xai.images.generate", "POST", f"{base}/images/generations", images_generate, DIALECT),
        Route("xai.images.edit", "POST", f"{base}/images/edits", images_edit, DIALECT),
        Route("xai.images.file", "GET", "/xai/files/{name}", image_file, DIALECT, body="none", needs_key=False),
        Route("xai.videos.create", "POST", f"{base}/videos/generations", videos_create, DIALECT),
        Route("xai.videos.poll", "GET", f"{base}/videos/{{request_id}}", videos_poll, DIALECT, body="none"),
        Route(
            "xai.videos.download",
            "GET",
            "/xai/download/{request_id}.mp4",
            videos_download,
            DIALECT,
            body="none",
            needs_key=False,
        ),
        Route("xai.models.list", "GET", f"{base}/models", models_list, DIALECT, body="none"),
        Route("xai.models.retrieve", "GET", f"{base}/models/{{model}}", models_retrieve, DIALECT, body="none"),
        Route("xai.image_models", "GET", f"{base}/image-generation-models", image_models, DIALECT, body="none"),
        Route(
            "xai.image_models.retrieve",
            "GET",
            f"{base}/image-generation-models/{{model}}",
            image_model,
            DIALECT,
            body="none",
        ),
        Route("xai.video_models", "GET", f"{base}/video-generation-models", video_models, DIALECT, body="none"),
        Route(
            "xai.video_models.retrieve",
            "GET",
            f"{base}/video-generation-models/{{model}}",
            video_model,
            DIALECT,
            body="none",
        ),
        Route("xai.chat", "POST", f"{base}/chat/completions", chat, DIALECT),
    ]
