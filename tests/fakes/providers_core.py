"""Shared pieces of the fake provider server: faults, recorded requests, routes and media bytes.

``tests.fakes.providers`` is the public entry point; this module exists so the per-provider
modules (``providers_openai``, ``providers_google``, ``providers_xai``) can share types with the
server without importing it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fractions import Fraction
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol

import av
from aiohttp import web
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from tests.fakes.providers import FakeProviders

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
DOWNLOAD_CHUNK = 64 * 1024


class FaultKind(StrEnum):
    OK = "ok"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    HANG = "hang"
    RESET = "reset"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    CONTENT_POLICY = "content_policy"
    IMAGE_SAFETY = "image_safety"
    TEXT_ONLY = "text_only"
    VIDEO_FAILED = "video_failed"
    RETIRED = "retired"
    QUOTA = "quota"
    AUTH = "auth"
    HTTP = "http"
    THOUGHT_IMAGES = "thought_images"
    MODERATED_IMAGE = "moderated_image"
    DRIP = "drip"
    BAD_MEDIA = "bad_media"


@dataclass(frozen=True)
class Fault:
    """One scripted answer. Every fault may be delayed first (``Fault.latency`` is a delayed ok)."""

    kind: FaultKind
    delay: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    html: bool = False
    seconds: float = 0.0
    reason: str | None = None
    shape: str | None = None  # one recorded variant of the fault (see SHAPES)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def delayed(self, seconds: float) -> Fault:
        return replace(self, delay=seconds)

    @classmethod
    def ok(cls) -> Fault:
        return cls(FaultKind.OK)

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        return cls(FaultKind.OK, delay=seconds)

    @classmethod
    def rate_limit(
        cls, retry_after: float | None = None, retry_after_ms: int | None = None, *, shape: str | None = None
    ) -> Fault:
        """429. OpenAI/xAI send ``Retry-After`` (and OpenAI ``retry-after-ms``); Gemini sends RetryInfo.
        Shapes: Gemini "free-tier-per-minute" (a per-minute token quota that names a non-zero limit)."""
        return cls(FaultKind.RATE_LIMIT, retry_after=retry_after, retry_after_ms=retry_after_ms, shape=shape)

    @classmethod
    def server_error(cls, status: int = 500, *, html: bool = False) -> Fault:
        return cls(FaultKind.SERVER_ERROR, status=status, html=html)

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Fault:
        """Answer nothing for ``seconds`` (ended early by the client disconnecting or ``stop()``)."""
        return cls(FaultKind.HANG, seconds=seconds)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without answering."""
        return cls(FaultKind.RESET)

    @classmethod
    def malformed(cls) -> Fault:
        """200 with a JSON content type and a body that is not valid JSON."""
        return cls(FaultKind.MALFORMED)

    @classmethod
    def truncated(cls) -> Fault:
        """Video download only: announce the full Content-Length, send half, then close."""
        return cls(FaultKind.TRUNCATED)

    @classmethod
    def content_policy(cls, reason: str | None = None) -> Fault:
        """Each provider's block: OpenAI 400 moderation_blocked, xAI 403 (on a video poll: done with
        respect_moderation false and an empty url), Gemini 200 promptFeedback.blockReason=reason."""
        return cls(FaultKind.CONTENT_POLICY, reason=reason)

    @classmethod
    def image_safety(cls, finish_reason: str = "IMAGE_SAFETY") -> Fault:
        """Gemini only: 200 with one candidate that has this finishReason and no content."""
        return cls(FaultKind.IMAGE_SAFETY, reason=finish_reason)

    @classmethod
    def text_only(cls, text: str = "I can't draw that, but here is a description instead.") -> Fault:
        """Gemini only: 200, finishReason STOP, only a text part (the model refused in prose)."""
        return cls(FaultKind.TEXT_ONLY, reason=text)

    @classmethod
    def video_failed(cls, code: str = "internal_error", message: str = "Video generation failed.") -> Fault:
        """xAI video poll only: 200 {"status":"failed","error":{code,message}}."""
        return cls(FaultKind.VIDEO_FAILED, reason=code, body=message)

    @classmethod
    def retired(cls) -> Fault:
        """404 for the requested model, in the provider's shape (same as ``FakeProviders.retire``)."""
        return cls(FaultKind.RETIRED)

    @classmethod
    def quota(cls, shape: str | None = None) -> Fault:
        """429 that must not be retried: OpenAI insufficient_quota, xAI spent credits, Gemini daily quota.
        Shapes: Gemini "free-tier-limit-0" and "per-day-with-retry" (both carry RetryInfo), xAI
        "credits-403" and "no-credits-403" (spent credits reported as 403)."""
        return cls(FaultKind.QUOTA, shape=shape)

    @classmethod
    def auth(cls, shape: str | None = None) -> Fault:
        """Bad key: OpenAI 401 invalid_api_key, Gemini 400 API_KEY_INVALID, xAI 400 incorrect key.
        Shapes: xAI "percent-encoded" and "bad-credentials" (400s whose message is percent-encoded)."""
        return cls(FaultKind.AUTH, shape=shape)

    @classmethod
    def thought_images(cls, shape: str = "flagged") -> Fault:
        """Gemini only: 200 whose parts hold interim draft images before the final one.
        Shapes: "flagged", "signed", "flagged-final", "unmarked" (see providers_google)."""
        return cls(FaultKind.THOUGHT_IMAGES, shape=shape)

    @classmethod
    def moderated_image(cls, shape: str = "nulls") -> Fault:
        """xAI images only: 200 where moderation withheld the picture.
        Shapes: "nulls", "placeholder", "empty" (see providers_xai)."""
        return cls(FaultKind.MODERATED_IMAGE, shape=shape)

    @classmethod
    def drip(cls, interval_s: float = 0.5) -> Fault:
        """The normal answer, one byte every ``interval_s`` (headers and Content-Length at once): each read
        arrives well within any per-read timeout, yet the whole answer takes hours."""
        return cls(FaultKind.DRIP, seconds=interval_s)

    @classmethod
    def bad_media(cls, shape: str) -> Fault:
        """HTTP 200 whose picture or clip is not what it claims to be (see BAD_PICTURES and BAD_CLIPS)."""
        return cls(FaultKind.BAD_MEDIA, shape=shape)

    @classmethod
    def http(cls, status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> Fault:
        """Any status with any JSON body (or a str body sent as text/plain)."""
        return cls(FaultKind.HTTP, status=status, body=body, headers=dict(headers or {}))


PICTURE_ROUTES = frozenset(
    {
        "openai.images.generate",
        "openai.images.edit",
        "google.generate_content",
        "xai.images.generate",
        "xai.images.edit",
    }
)
CLIP_ROUTE = "xai.videos.download"
# Fault.bad_media shapes on the picture routes: the bytes a provider sends as the picture.
BAD_PICTURES = {
    "html": "an HTML page (a proxy's or CDN's) where the picture should be, still labelled as the picture",
    "truncated": "the picture cut in half",
    "mislabelled": "a PNG said to be a JPEG (OpenAI, whose type is the PNG asked for: a JPEG)",
    "huge": "a 6 kB PNG that declares 8000x6000 pixels (48 megapixels)",
}
# Fault.bad_media shapes on the clip download route.
BAD_CLIPS = {
    "html": "an HTML page served as video/mp4",
    "not-h264": "an MP4 whose video is MPEG-4 Part 2, not H.264",
    "not-mp4": "H.264 in a Matroska file, not an MP4",
    "too-long": "an H.264 MP4 lasting 40 s",
    "endless": "a clip's first bytes, then zeros without end (no Content-Length)",
}

# Faults that only make sense on some routes; scripting them elsewhere is a test bug.
ROUTE_ONLY_FAULTS: dict[FaultKind, frozenset[str]] = {
    FaultKind.BAD_MEDIA: PICTURE_ROUTES | {CLIP_ROUTE},
    FaultKind.TRUNCATED: frozenset({"xai.videos.download"}),
    FaultKind.IMAGE_SAFETY: frozenset({"google.generate_content"}),
    FaultKind.TEXT_ONLY: frozenset({"google.generate_content"}),
    FaultKind.VIDEO_FAILED: frozenset({"xai.videos.poll"}),
    FaultKind.THOUGHT_IMAGES: frozenset({"google.generate_content"}),
    FaultKind.MODERATED_IMAGE: frozenset({"xai.images.generate", "xai.images.edit"}),
    FaultKind.CONTENT_POLICY: frozenset(
        {
            "openai.images.generate",
            "openai.images.edit",
            "google.generate_content",
            "xai.images.generate",
            "xai.images.edit",
            "xai.videos.create",
            "xai.videos.poll",
        }
    ),
}


# The recorded variants each fault kind knows, and the provider whose routes may answer with them.
SHAPES: dict[FaultKind, dict[str, str]] = {
    FaultKind.RATE_LIMIT: {"free-tier-per-minute": "google"},
    FaultKind.QUOTA: {
        "free-tier-limit-0": "google",
        "per-day-with-retry": "google",
        "credits-403": "xai",
        "no-credits-403": "xai",
    },
    FaultKind.AUTH: {"percent-encoded": "xai", "bad-credentials": "xai"},
    FaultKind.THOUGHT_IMAGES: {
        "flagged": "google",
        "signed": "google",
        "flagged-final": "google",
        "unmarked": "google",
    },
    FaultKind.MODERATED_IMAGE: {"nulls": "xai", "placeholder": "xai", "empty": "xai"},
}


def check_shape(route: str, fault: Fault) -> None:
    """Raise ValueError when ``fault.shape`` is unknown for its kind or belongs to another provider."""
    if fault.kind is FaultKind.BAD_MEDIA:
        known = BAD_CLIPS if route == CLIP_ROUTE else BAD_PICTURES
        if fault.shape not in known:
            raise ValueError(f"bad_media on {route!r} has no shape {fault.shape!r}; known: {sorted(known)}")
        return
    if fault.shape is None:
        return
    provider = SHAPES.get(fault.kind, {}).get(fault.shape)
    if provider is None:
        raise ValueError(f"{fault.kind} has no shape {fault.shape!r}; known: {sorted(SHAPES.get(fault.kind, {}))}")
    if route.split(".", 1)[0] != provider:
        raise ValueError(f"shape {fault.shape!r} is {provider}'s, not for {route!r}")


@dataclass
class RecordedRequest:
    route: str
    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive (a CIMultiDict)
    json: Any = None
    form_fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[bytes]] = field(default_factory=dict)
    file_types: dict[str, list[str]] = field(default_factory=dict)  # part Content-Type, parallel to files
    query: dict[str, str] = field(default_factory=dict)
    path_params: dict[str, str] = field(default_factory=dict)

    def form(self, name: str) -> str | None:
        """The first text part with this name, if any."""
        values = self.form_fields.get(name)
        return values[0] if values else None


@dataclass
class Call:
    """What a route handler or a dialect needs to answer one request."""

    fake: FakeProviders
    request: web.Request
    recorded: RecordedRequest
    route: str

    @property
    def body(self) -> dict[str, Any]:
        return self.recorded.json if isinstance(self.recorded.json, dict) else {}


Handler = Callable[[Call], Awaitable[web.StreamResponse]]
BodyKind = Literal["json", "multipart", "none"]


class Dialect(Protocol):
    """How one provider phrases keys, models and errors."""

    def api_key(self, request: web.Request) -> str | None: ...

    def model_of(self, call: Call) -> str | None: ...

    def missing_key(self, call: Call) -> web.Response: ...

    def bad_request(self, call: Call, message: str) -> web.Response: ...

    async def fault(self, call: Call, fault: Fault) -> web.StreamResponse: ...


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    handler: Handler
    dialect: Dialect
    body: BodyKind = "json"
    needs_key: bool = True


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type=JSON_CONTENT_TYPE, headers=headers)


def html_error(status: int) -> web.Response:
    text = f"<html><head><title>{status} Error</title></head><body><h1>{status} Server Error</h1></body></html>"
    return web.Response(status=status, text=text, content_type="text/html")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64 (genai sends URL-safe; protobuf JSON accepts both). Strict."""
    return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)


def data_url(data: bytes, mime_type: str) -> str:
    return f"data:{mime_type};base64,{b64(data)}"


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``data:image/png;base64,...`` -> (mime type, bytes). Raises ValueError when it is not one."""
    if not url.startswith("data:") or ";base64," not in url:
        raise ValueError(f"not a base64 data URL: {url[:40]!r}")
    header, payload = url[5:].split(";base64,", 1)
    return header, base64.b64decode(payload, validate=True)


def size_for_ratio(aspect_ratio: str | None, short_side: int = 64) -> tuple[int, int]:
    """A small image size with the requested ``W:H`` ratio (square when unknown)."""
    try:
        width_part, height_part = (aspect_ratio or "").split(":")
        ratio = float(width_part) / float(height_part)
    except ValueError:
        return short_side, short_side
    if ratio >= 1:
        return round(short_side * ratio), short_side
    return short_side, round(short_side / ratio)


def _draw(width: int, height: int, seed: str) -> Image.Image:
    digest = hashlib.sha256(seed.encode()).digest()
    image = Image.new("RGB", (width, height), (digest[0], digest[1], digest[2]))
    ImageDraw.Draw(image).rectangle(
        (width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(digest[3], digest[4], digest[5])
    )
    return image


def png_bytes(width: int = 64, height: int = 64, seed: str = "") -> bytes:
    """A real, decodable PNG whose colours depend on ``seed`` (the prompt)."""
    buffer = io.BytesIO()
    _draw(width, height, seed).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 64, seed: str = "") -> bytes:
    buffer = io.BytesIO()
    _draw(width, height, seed).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


@cache
def tiny_mp4() -> bytes:
    """A valid H.264 MP4 (64x64, 6 frames at 12 fps), encoded once per test session."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(6):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (index * 40, 90, 160)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def padded_mp4_chunks(clip: bytes, total_size: int | None, chunk_size: int = DOWNLOAD_CHUNK) -> Iterator[bytes]:
    """The clip, then (when ``total_size`` exceeds it) a top-level MP4 ``free`` box filling the rest.

    The result is still a playable MP4 of exactly ``total_size`` bytes, generated chunk by chunk so
    a 200 MB download never sits in memory.
    """
    yield clip
    padding = (total_size or 0) - len(clip)
    if padding <= 0:
        return
    if padding < 8:
        raise ValueError("video_size must leave room for an 8-byte free box")
    if padding <= 0xFFFFFFFF:
        header = padding.to_bytes(4, "big") + b"free"
    else:  # 64-bit "largesize" box
        header = (1).to_bytes(4, "big") + b"free" + padding.to_bytes(8, "big")
    yield header
    remaining = padding - len(header)
    zeros = bytes(chunk_size)
    while remaining > 0:
        step = min(chunk_size, remaining)
        yield zeros if step == chunk_size else zeros[:step]
        remaining -= step


def clip_size(clip: bytes, total_size: int | None) -> int:
    return max(len(clip), total_size or 0)


HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser before accessing the site.</h1></body></html>"
)


@cache
def huge_png() -> bytes:
    """8000x6000 one-bit pixels of nothing: 48 megapixels in about 6 kB."""
    buffer = io.BytesIO()
    Image.new("1", (8000, 6000)).save(buffer, format="PNG")
    return buffer.getvalue()


def bad_picture(shape: str) -> tuple[bytes, str]:
    """(the bytes, the MIME type to claim for them) of a Fault.bad_media picture shape."""
    good = png_bytes(seed="bad media")
    match shape:
        case "html":
            return HTML_PAGE, "image/png"
        case "truncated":
            return good[: len(good) // 2], "image/png"
        case "mislabelled":
            return good, "image/jpeg"
        case "huge":
            return huge_png(), "image/png"
    raise ValueError(f"unknown bad picture {shape!r}")


def _encode_clip(fmt: str, codec: str, rate: Fraction | int, frames: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", (64, 64), (index * 10 % 256, 90, 160)))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


@cache
def bad_clip(shape: str) -> bytes:
    """The bytes of a Fault.bad_media clip shape ("endless" is streamed by the route itself)."""
    match shape:
        case "html":
            return HTML_PAGE
        case "not-h264":
            return _encode_clip("mp4", "mpeg4", 12, 6)
        case "not-mp4":
            return _encode_clip("matroska", "libx264", 12, 6)
        case "too-long":
            return _encode_clip("mp4", "libx264", Fraction(1, 2), 20)  # 20 frames, 2 s each
    raise ValueError(f"unknown bad clip {shape!r}")


async def drip(call: Call, answer: web.StreamResponse, interval_s: float) -> web.StreamResponse:
    """Send a finished answer's body one byte every ``interval_s`` (until the client leaves or the server stops)."""
    if not isinstance(answer, web.Response) or answer.prepared or not isinstance(answer.body, bytes):
        return answer
    body = answer.body
    headers = {name: value for name, value in answer.headers.items() if name.lower() != "content-length"}
    response = web.StreamResponse(status=answer.status, headers=headers)
    response.content_length = len(body)
    await response.prepare(call.request)
    for index in range(len(body)):
        try:
            await response.write(body[index : index + 1])
        except ConnectionResetError:  # the client gave up waiting, as it should
            return response
        call.fake.dripped_bytes += 1
        await call.fake.sleep(interval_s)
        if call.fake.stopping:
            return response
    await response.write_eof()
    return response
