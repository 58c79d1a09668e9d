"""A fake OpenAI + Gemini + xAI server on 127.0.0.1 that the real SDK clients can talk to.

Usage::

    async with FakeProviders() as fake:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_base_url, max_retries=0)
        fake.script("openai.images.generate", [Fault.rate_limit(retry_after=2), Fault.ok()])
        ...
        assert fake.calls("openai.images.generate")[0].json["model"] == "gpt-image-1.5"

Base URLs: ``openai_base_url`` = url + "/v1"; ``xai_base_url`` = url + "/xai/v1";
``gemini_base_url`` = url (genai appends /v1 or /v1beta; both are served).

Route names (stable; use them with ``script``, ``fail_always`` and ``calls``):

    openai.images.generate     POST /v1/images/generations             JSON
    openai.images.edit         POST /v1/images/edits                   multipart: image | image[] (repeated)
    openai.models.retrieve     GET  /v1/models/{model}                 with shutdown_date (see shutdown_dates)
    openai.models.list         GET  /v1/models
    openai.chat                POST /v1/chat/completions               non-streaming
    google.generate_content    POST /{v1|v1beta}/models/{model}:generateContent
    google.models.get          GET  /{v1|v1beta}/models/{model}
    google.models.list         GET  /{v1|v1beta}/models
    xai.images.generate        POST /xai/v1/images/generations         JPEG; response_format url (default) | b64_json
    xai.images.edit            POST /xai/v1/images/edits               JSON: image {url} or images [{url}]
    xai.images.file            GET  /xai/files/{name}                  what a url-format image points at
    xai.videos.create          POST /xai/v1/videos/generations         -> {"request_id"}
    xai.videos.poll            GET  /xai/v1/videos/{request_id}        202 pending x video_pending_polls, then 200
    xai.videos.download        GET  /xai/download/{request_id}.mp4     streamed; no key needed
    xai.models.list            GET  /xai/v1/models
    xai.models.retrieve        GET  /xai/v1/models/{model}
    xai.image_models[.retrieve]  GET /xai/v1/image-generation-models[/{model}]
    xai.video_models[.retrieve]  GET /xai/v1/video-generation-models[/{model}]
    xai.chat                   POST /xai/v1/chat/completions

``Fault.drip`` sends any route's normal answer one byte at a time; ``Fault.bad_media`` answers a picture
route (or the clip download) with bytes that are not what they claim (``BAD_PICTURES``, ``BAD_CLIPS`` in
``providers_core``). ``dripped_bytes`` and ``clip_bytes_sent`` count what those faults have sent.

``script`` and ``fail_always`` also take a provider wildcard such as ``"xai.*"``. Order of checks
for each request: record it, then the API key (missing -> the provider's auth answer; not in
``valid_keys`` when that is set -> ``Fault.auth()``), then the body (unparseable -> 400), then a
retired model (``retire``), then the next scripted fault (exact route before wildcard, scripted
before ``fail_always``), else the normal answer. Faults are in ``providers_core.Fault``; the
recorded variants some of them take (``shape=``) are listed in ``providers_core.SHAPES``, and each
provider module builds them with the public source of the real body cited next to it.

Missing keys: OpenAI 401, Gemini 403 PERMISSION_DENIED ("unregistered callers", as the real API
answers a request without a key), xAI 400 (xAI reports key problems as 400).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from tests.fakes import providers_google, providers_openai, providers_xai
from tests.fakes.providers_core import (
    CLIP_ROUTE,
    ROUTE_ONLY_FAULTS,
    Call,
    Fault,
    FaultKind,
    RecordedRequest,
    Route,
    check_shape,
    drip,
    html_error,
    jpeg_bytes,
    json_response,
    png_bytes,
    tiny_mp4,
)

__all__ = ["Call", "FakeProviders", "Fault", "FaultKind", "RecordedRequest", "jpeg_bytes", "png_bytes", "tiny_mp4"]

log = logging.getLogger(__name__)

DEFAULT_TEXT_REPLY = json.dumps(
    {
        "title": "The Lantern Keeper",
        "bible": "Mira: a small girl with a red scarf and a brass lantern. Style: warm watercolour.",
        "scenes": [
            "Mira finds the lantern in the attic.",
            "The lantern lights a path through the forest.",
            "Mira returns home at dawn.",
        ],
    }
)

_MALFORMED_BODY = b'{"created": 1763700000, "data": [{"b64_json": "iVBORw0KGgo'


class FakeProviders:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._in_flight: Counter[str] = Counter()
        self.peak_in_flight: Counter[str] = Counter()
        self.text_reply: str | Callable[[Call], str] = DEFAULT_TEXT_REPLY
        self.video_bytes: bytes | None = None  # None: tiny_mp4()
        self.video_size: int | None = None  # pad the clip to this many bytes (still a playable MP4)
        self.video_pending_polls = 1
        self.video_render_s: float | None = None  # set: pending until this long after submit (polls ignored)
        self.video_pending_empty_body = False
        self.valid_keys: set[str] | None = None  # None: any non-empty key is accepted
        self.shutdown_dates: dict[str, Any] = {}  # OpenAI model id -> shutdown_date value
        self.retired_models: set[str] = set()
        self.video_jobs: dict[str, providers_xai.VideoJob] = {}
        self.xai_files: dict[str, bytes] = {}
        self.dripped_bytes = 0  # bytes sent by Fault.drip answers, all routes together
        self.clip_bytes_sent = 0  # bytes of clips sent by xai.videos.download, faults included
        self._scripts: dict[str, deque[Fault]] = {}
        self._always: dict[str, Fault] = {}
        self._routes = [*providers_openai.routes(), *providers_google.routes(), *providers_xai.routes()]
        self._route_names = {route.name for route in self._routes}
        self._stopping = asyncio.Event()
        self._recorded = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FakeProviders:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        for route in self._routes:
            app.router.add_route(route.method, route.path, self._bind(route), name=route.name)
        self._stopping.clear()
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        log.debug("fake providers listening on %s", self.url)
        return self

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeProviders:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeProviders is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def xai_base_url(self) -> str:
        return f"{self.url}/xai/v1"

    @property
    def gemini_base_url(self) -> str:
        return self.url

    # --- configuration ---------------------------------------------------------------------

    def script(self, route: str, faults: Iterable[Fault]) -> None:
        """Answer the next requests on ``route`` with these faults in order, then normally."""
        queue = deque(faults)
        for fault in queue:
            self._check(route, fault)
        self._scripts[route] = queue

    def fail_always(self, route: str, fault: Fault) -> None:
        """Answer every request on ``route`` with ``fault`` (after any script) until ``reset``."""
        self._check(route, fault)
        self._always[route] = fault

    def retire(self, model: str) -> None:
        """Make ``model`` answer 404 (in each provider's shape) everywhere, models/{id} included."""
        self.retired_models.add(model)

    def reset(self) -> None:
        """Forget scripts, permanent faults, retirements and recorded requests."""
        self._scripts.clear()
        self._always.clear()
        self.retired_models.clear()
        self.requests.clear()

    def calls(self, route: str) -> list[RecordedRequest]:
        return [recorded for recorded in self.requests if recorded.route == route]

    async def wait_for_calls(self, route: str, count: int = 1) -> list[RecordedRequest]:
        """Wait until ``route`` has been requested ``count`` times (wrap in asyncio.timeout)."""
        async with self._recorded:
            await self._recorded.wait_for(lambda: len(self.calls(route)) >= count)
        return self.calls(route)

    def reply_text(self, call: Call) -> str:
        return self.text_reply(call) if callable(self.text_reply) else self.text_reply

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops (so hangs never outlive a test)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # --- dispatch ---------------------------------------------------------------------------

    def _check(self, route: str, fault: Fault) -> None:
        check_shape(route, fault)
        provider, _, rest = route.partition(".")
        if rest == "*":
            if not any(name.startswith(f"{provider}.") for name in self._route_names):
                raise ValueError(f"unknown provider wildcard {route!r}")
            if fault.kind in ROUTE_ONLY_FAULTS:
                raise ValueError(f"{fault.kind} only applies to specific routes, not {route!r}")
            return
        if route not in self._route_names:
            raise ValueError(f"unknown route {route!r}; known: {sorted(self._route_names)}")
        allowed = ROUTE_ONLY_FAULTS.get(fault.kind)
        if allowed is not None and route not in allowed:
            raise ValueError(f"{fault.kind} does not apply to {route!r} (only {sorted(allowed)})")

    def _next_fault(self, route: str) -> Fault:
        wildcard = route.split(".", 1)[0] + ".*"
        for key in (route, wildcard):
            queue = self._scripts.get(key)
            if queue:
                return queue.popleft()
            if key in self._always:
                return self._always[key]
        return Fault.ok()

    def _bind(self, route: Route) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._dispatch(route, request)

        return handle

    async def _dispatch(self, route: Route, request: web.Request) -> web.StreamResponse:
        """Serve one request, counting the requests in flight per route and per provider (``peak_in_flight``,
        keyed "openai.images.edit" and "openai": the most at once, what a shared limit must keep down)."""
        keys = (route.name, route.name.split(".", 1)[0])
        for key in keys:
            self._in_flight[key] += 1
            self.peak_in_flight[key] = max(self.peak_in_flight[key], self._in_flight[key])
        try:
            return await self._serve(route, request)
        finally:
            for key in keys:
                self._in_flight[key] -= 1

    async def _serve(self, route: Route, request: web.Request) -> web.StreamResponse:
        recorded, body_error = await _record(route, request)
        self.requests.append(recorded)
        async with self._recorded:
            self._recorded.notify_all()
        call = Call(self, request, recorded, route.name)
        if route.needs_key:
            key = route.dialect.api_key(request)
            if not key:
                return route.dialect.missing_key(call)
            if self.valid_keys is not None and key not in self.valid_keys:
                return await route.dialect.fault(call, Fault.auth())
        if body_error:
            return route.dialect.bad_request(call, body_error)
        model = route.dialect.model_of(call)
        if model and model in self.retired_models:
            return await route.dialect.fault(call, Fault.retired())
        fault = self._next_fault(route.name)
        if fault.delay:
            await self.sleep(fault.delay)
        return await self._answer(route, call, fault)

    async def _answer(self, route: Route, call: Call, fault: Fault) -> web.StreamResponse:
        match fault.kind:
            case FaultKind.OK:
                return await route.handler(call)
            case FaultKind.HANG:
                await self.sleep(fault.seconds)
                if self._stopping.is_set():
                    return web.Response(status=503, text="fake provider stopping")
                return await route.handler(call)
            case FaultKind.RESET:
                transport = call.request.transport
                if transport is not None:
                    transport.abort()
                return web.Response(status=500)  # never reaches the client: the transport is gone
            case FaultKind.MALFORMED:
                return web.Response(status=200, body=_MALFORMED_BODY, content_type="application/json")
            case FaultKind.HTTP:
                if isinstance(fault.body, str):
                    return web.Response(status=fault.status or 500, text=fault.body, headers=fault.headers)
                return json_response(fault.body, status=fault.status or 500, headers=fault.headers)
            case FaultKind.SERVER_ERROR if fault.html:
                return html_error(fault.status or 502)
            case FaultKind.DRIP if route.name != CLIP_ROUTE:  # the clip route streams, so it drips itself
                return await drip(call, await route.handler(call), fault.seconds)
            case _:
                return await route.dialect.fault(call, fault)


async def _record(route: Route, request: web.Request) -> tuple[RecordedRequest, str | None]:
    """Read the request into a RecordedRequest; the second value says why the body is unusable."""
    recorded = RecordedRequest(
        route=route.name,
        method=request.method,
        path=request.path,
        headers=CIMultiDict(request.headers),
        query=dict(request.query),
        path_params=dict(request.match_info),
    )
    if route.body == "json":
        raw = await request.read()
        if not raw:
            return recorded, None
        try:
            recorded.json = json.loads(raw)
        except ValueError:
            return recorded, "We could not parse the JSON body of your request."
    elif route.body == "multipart":
        if not request.content_type.startswith("multipart/"):
            return recorded, f"Invalid Content-Type header ({request.content_type}), expected multipart/form-data."
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is None:
                recorded.form_fields.setdefault(part.name, []).append(await part.text())
            else:
                recorded.files.setdefault(part.name, []).append(bytes(await part.read()))
                recorded.file_types.setdefault(part.name, []).append(part.headers.get("Content-Type", ""))
    return recorded, None
