"""The fake provider server speaks the real wire: the real openai and google-genai SDKs (and httpx
for xAI, as the bot uses it) are driven against it, for success and for every scriptable fault."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator

import aiohttp
import av
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

from tests.fakes.providers import FakeProviders, Fault, png_bytes, tiny_mp4
from tests.fakes.providers_core import data_url, decode_base64, decode_data_url

IMAGE_MODALITIES = types.GenerateContentConfig(response_modalities=["IMAGE", "TEXT"])


@pytest.fixture
async def oai(fake: FakeProviders) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.openai_base_url, max_retries=0, timeout=5.0)
    yield client
    await client.close()


async def _genai_client(fake: FakeProviders, api_version: str, timeout_ms: int | None = None) -> genai.Client:
    # Passing our own aiohttp session matters: without it genai subclasses aiohttp.ClientSession on
    # every call, and aiohttp 3.14 answers that with a DeprecationWarning (an error under -W error).
    options = types.HttpOptions(
        base_url=fake.gemini_base_url,
        api_version=api_version,
        timeout=timeout_ms,
        retry_options=types.HttpRetryOptions(attempts=1),
        aiohttp_client=aiohttp.ClientSession(),
    )
    return genai.Client(api_key="gemini-test", http_options=options)


@pytest.fixture
async def gemini(fake: FakeProviders) -> AsyncIterator[genai.Client]:
    client = await _genai_client(fake, "v1beta")
    yield client
    await _close_genai(client)


async def _close_genai(client: genai.Client) -> None:
    await client.aio.aclose()
    session = client._api_client._http_options.aiohttp_client
    assert isinstance(session, aiohttp.ClientSession)
    await session.close()


@pytest.fixture
async def xai(fake: FakeProviders) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": "Bearer xai-test"}
    async with httpx.AsyncClient(base_url=fake.xai_base_url, headers=headers, timeout=5.0) as client:
        yield client


def _decoded_size(data: bytes, expected_format: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == expected_format
        image.load()
        return image.size


def _frame_count(data: bytes) -> int:
    with av.open(io.BytesIO(data), mode="r") as container:
        return len(list(container.decode(video=0)))


# --- OpenAI -----------------------------------------------------------------------------------


async def test_openai_generate_returns_a_png_and_records_the_request(fake: FakeProviders, oai: openai.AsyncOpenAI):
    result = await oai.images.generate(model="gpt-image-1.5", prompt="a castle", size="1536x1024", quality="high")

    assert result.data is not None and result.data[0].b64_json is not None
    width, height = _decoded_size(base64.b64decode(result.data[0].b64_json), "PNG")
    assert width / height == pytest.approx(1.5)
    (sent,) = fake.calls("openai.images.generate")
    assert sent.headers["Authorization"] == "Bearer sk-test"
    assert sent.json == {"model": "gpt-image-1.5", "prompt": "a castle", "size": "1536x1024", "quality": "high"}


async def test_openai_edit_one_image_uses_the_image_part(fake: FakeProviders, oai: openai.AsyncOpenAI):
    reference = png_bytes(seed="hero")
    result = await oai.images.edit(
        model="gpt-image-1.5", prompt="same hero", image=("a.png", reference, "image/png"), input_fidelity="high"
    )

    assert result.data and _decoded_size(base64.b64decode(result.data[0].b64_json or ""), "PNG")
    (sent,) = fake.calls("openai.images.edit")
    assert sent.files == {"image": [reference]}
    assert sent.file_types == {"image": ["image/png"]}
    assert sent.form("input_fidelity") == "high"
    assert sent.form("model") == "gpt-image-1.5"


async def test_openai_edit_two_images_uses_repeated_image_brackets(fake: FakeProviders, oai: openai.AsyncOpenAI):
    first, second = png_bytes(seed="a"), png_bytes(seed="b")
    await oai.images.edit(
        model="gpt-image-1-mini", prompt="both", image=[("a.png", first, "image/png"), ("b.png", second, "image/png")]
    )

    (sent,) = fake.calls("openai.images.edit")
    assert sent.files == {"image[]": [first, second]}
    assert "input_fidelity" not in sent.form_fields


async def test_openai_edit_rejects_input_fidelity_the_model_lacks(oai: openai.AsyncOpenAI):
    image = ("a.png", png_bytes(), "image/png")
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.images.edit(model="gpt-image-1-mini", prompt="x", image=image, input_fidelity="high")
    assert caught.value.param == "input_fidelity"


async def test_openai_models_and_chat(fake: FakeProviders, oai: openai.AsyncOpenAI):
    fake.shutdown_dates["gpt-image-1.5"] = "2027-06-01"
    model = await oai.models.retrieve("gpt-image-1.5")
    assert model.id == "gpt-image-1.5"
    assert model.shutdown_date == "2027-06-01"
    assert (await oai.models.retrieve("gpt-image-1-mini")).shutdown_date is None

    fake.retire("gpt-image-1")
    with pytest.raises(openai.NotFoundError) as caught:
        await oai.models.retrieve("gpt-image-1")
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        await oai.images.generate(model="gpt-image-1", prompt="x")
    listed = [m.id async for m in oai.models.list()]
    assert "gpt-image-1.5" in listed and "gpt-image-1" not in listed

    fake.text_reply = lambda call: "echo: " + call.body["messages"][-1]["content"]
    completion = await oai.chat.completions.create(model="gpt-5-mini", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "echo: hi"


async def test_openai_rate_limit_then_ok(fake: FakeProviders, oai: openai.AsyncOpenAI):
    fake.script("openai.images.generate", [Fault.rate_limit(retry_after=2, retry_after_ms=1500), Fault.ok()])

    with pytest.raises(openai.RateLimitError) as caught:
        await oai.images.generate(model="gpt-image-1.5", prompt="x")
    assert caught.value.code == "rate_limit_exceeded"
    assert (caught.value.request_id or "").startswith("req_")
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.response.headers["retry-after-ms"] == "1500"
    assert (await oai.images.generate(model="gpt-image-1.5", prompt="x")).data


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        (Fault.quota(), openai.RateLimitError, "insufficient_quota"),
        (Fault.content_policy(), openai.BadRequestError, "moderation_blocked"),
        (Fault.auth(), openai.AuthenticationError, "invalid_api_key"),
        (Fault.retired(), openai.NotFoundError, "model_not_found"),
        (Fault.server_error(503), openai.InternalServerError, None),
        (Fault.server_error(502, html=True), openai.InternalServerError, None),
        (
            Fault.http(409, {"error": {"message": "busy", "type": "x", "param": None, "code": "c"}}),
            openai.ConflictError,
            "c",
        ),
    ],
)
async def test_openai_faults_map_to_sdk_errors(
    fake: FakeProviders, oai: openai.AsyncOpenAI, fault: Fault, error: type[openai.APIStatusError], code: str | None
):
    fake.script("openai.images.generate", [fault])
    with pytest.raises(error) as caught:
        await oai.images.generate(model="gpt-image-1.5", prompt="x")
    assert caught.value.code == code
    if fault.html:
        assert "<html>" in caught.value.response.text


async def test_openai_transport_faults(fake: FakeProviders, oai: openai.AsyncOpenAI):
    fake.script("openai.images.generate", [Fault.reset(), Fault.hang(), Fault.latency(30), Fault.malformed()])
    impatient = oai.with_options(timeout=0.2)

    with pytest.raises(openai.APIConnectionError) as reset:
        await oai.images.generate(model="gpt-image-1.5", prompt="x")
    assert not isinstance(reset.value, openai.APITimeoutError)
    with pytest.raises(openai.APITimeoutError):
        await impatient.images.generate(model="gpt-image-1.5", prompt="x")
    with pytest.raises(openai.APITimeoutError):
        await impatient.images.generate(model="gpt-image-1.5", prompt="x")
    with pytest.raises(ValueError):  # the SDK lets json.JSONDecodeError through
        await oai.images.generate(model="gpt-image-1.5", prompt="x")


async def test_openai_missing_key_is_401(fake: FakeProviders):
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake.openai_base_url}/images/generations", json={"prompt": "x"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert "API key" in response.json()["error"]["message"]


# --- Gemini -----------------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
async def test_gemini_generate_image_with_reference(fake: FakeProviders, api_version: str):
    client = await _genai_client(fake, api_version)
    reference = png_bytes(seed="ref")
    try:
        response = await client.aio.models.generate_content(
            model="gemini-3.1-flash-image",
            contents=types.Content(
                role="user",
                parts=[
                    types.Part.from_text(text="Draw the hero"),
                    types.Part.from_bytes(data=reference, mime_type="image/png"),
                ],
            ),
            config=types.GenerateContentConfig(
                response_modalities=["IMAGE", "TEXT"], image_config=types.ImageConfig(aspect_ratio="16:9")
            ),
        )
    finally:
        await _close_genai(client)

    images = [part.inline_data for part in response.parts or [] if part.inline_data]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert _decoded_size(images[0].data or b"", "PNG") == (114, 64)
    (sent,) = fake.calls("google.generate_content")
    assert sent.path == f"/{api_version}/models/gemini-3.1-flash-image:generateContent"
    assert sent.headers["x-goog-api-key"] == "gemini-test"
    inline = sent.json["contents"][0]["parts"][1]["inlineData"]
    assert decode_base64(inline["data"]) == reference


async def test_gemini_text_only_without_image_modality_and_models_get(fake: FakeProviders, gemini: genai.Client):
    fake.text_reply = "once upon a time"
    response = await gemini.aio.models.generate_content(model="gemini-3-flash", contents="write")
    assert response.text == "once upon a time"

    model = await gemini.aio.models.get(model="gemini-3-pro-image")
    assert model.name == "models/gemini-3-pro-image"
    fake.retire("gemini-2.5-flash-image")
    with pytest.raises(genai_errors.ClientError) as caught:
        await gemini.aio.models.get(model="gemini-2.5-flash-image")
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


async def test_gemini_rate_limit_carries_retry_info(fake: FakeProviders, gemini: genai.Client):
    fake.script("google.generate_content", [Fault.rate_limit(retry_after=7)])
    with pytest.raises(genai_errors.ClientError) as caught:
        await gemini.aio.models.generate_content(model="gemini-3.1-flash-image", contents="x", config=IMAGE_MODALITIES)
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    details = caught.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details


@pytest.mark.parametrize(
    ("fault", "error", "code", "status", "text"),
    [
        (Fault.quota(), genai_errors.ClientError, 429, "RESOURCE_EXHAUSTED", "exceeded your current quota"),
        (Fault.auth(), genai_errors.ClientError, 400, "INVALID_ARGUMENT", "API key not valid"),
        (Fault.retired(), genai_errors.ClientError, 404, "NOT_FOUND", "is not found"),
        (Fault.server_error(503), genai_errors.ServerError, 503, "UNAVAILABLE", "overloaded"),
        (Fault.server_error(500), genai_errors.ServerError, 500, "INTERNAL", "internal error"),
    ],
)
async def test_gemini_faults_map_to_sdk_errors(
    fake: FakeProviders,
    gemini: genai.Client,
    fault: Fault,
    error: type[genai_errors.APIError],
    code: int,
    status: str,
    text: str,
):
    fake.script("google.generate_content", [fault])
    with pytest.raises(error) as caught:
        await gemini.aio.models.generate_content(model="gemini-3.1-flash-image", contents="x", config=IMAGE_MODALITIES)
    assert (caught.value.code, caught.value.status) == (code, status)
    assert text in (caught.value.message or "")


async def test_gemini_safety_outcomes_are_200(fake: FakeProviders, gemini: genai.Client):
    fake.script(
        "google.generate_content",
        [Fault.content_policy("PROHIBITED_CONTENT"), Fault.image_safety(), Fault.text_only("I can't draw that.")],
    )

    async def draw() -> types.GenerateContentResponse:
        return await gemini.aio.models.generate_content(
            model="gemini-3.1-flash-image", contents="x", config=IMAGE_MODALITIES
        )

    blocked = await draw()
    assert blocked.candidates is None
    assert blocked.prompt_feedback is not None and blocked.prompt_feedback.block_reason == "PROHIBITED_CONTENT"
    unsafe = await draw()
    assert unsafe.candidates and unsafe.candidates[0].finish_reason == "IMAGE_SAFETY"
    assert unsafe.candidates[0].content is None
    prose = await draw()
    assert prose.text == "I can't draw that."
    assert not any(part.inline_data for part in prose.parts or [])


async def test_gemini_thought_images_reach_the_sdk_with_their_marks(fake: FakeProviders, gemini: genai.Client):
    fake.script("google.generate_content", [Fault.thought_images("flagged"), Fault.thought_images("signed")])
    flagged = await gemini.aio.models.generate_content(
        model="gemini-3-pro-image", contents="x", config=IMAGE_MODALITIES
    )
    signed = await gemini.aio.models.generate_content(model="gemini-3-pro-image", contents="x", config=IMAGE_MODALITIES)

    parts = flagged.parts or []
    assert [bool(part.thought) for part in parts] == [True, True, True, False, False]
    assert [part.thought_signature is not None for part in parts] == [False, False, False, True, True]
    images = [part.inline_data.data or b"" for part in parts if part.inline_data]
    assert [_decoded_size(image, "PNG") for image in images] == [(32, 32), (32, 32), (64, 64)]
    signed_parts = signed.parts or []
    assert not any(part.thought for part in signed_parts)
    assert all(part.thought_signature for part in signed_parts if part.inline_data)
    assert [part.inline_data.data for part in signed_parts if part.inline_data][-1] == images[-1]


@pytest.mark.parametrize(
    ("fault", "says", "quota_ids", "retry_delay"),
    [
        (Fault.quota("free-tier-limit-0"), "limit: 0, model: gemini-3.1-flash-image", "PerMinute", "38s"),
        (Fault.quota("per-day-with-retry"), "exceeded your current quota", "PerDay", "47s"),
        (Fault.rate_limit(shape="free-tier-per-minute"), "limit: 125000", "PerMinute", "45s"),
    ],
)
async def test_gemini_recorded_429_bodies(
    fake: FakeProviders, gemini: genai.Client, fault: Fault, says: str, quota_ids: str, retry_delay: str
):
    fake.script("google.generate_content", [fault])
    with pytest.raises(genai_errors.ClientError) as caught:
        await gemini.aio.models.generate_content(model="gemini-3.1-flash-image", contents="x", config=IMAGE_MODALITIES)
    assert (caught.value.code, caught.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert says in (caught.value.message or "")
    details = {detail["@type"].rsplit(".", 1)[-1]: detail for detail in caught.value.details["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == retry_delay
    assert any(quota_ids in violation["quotaId"] for violation in details["QuotaFailure"]["violations"])


async def test_gemini_transport_faults(fake: FakeProviders):
    client = await _genai_client(fake, "v1beta", timeout_ms=200)
    fake.script("google.generate_content", [Fault.reset(), Fault.hang(), Fault.malformed()])
    try:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await client.aio.models.generate_content(model="gemini-3-flash", contents="x")
        with pytest.raises(TimeoutError):
            await client.aio.models.generate_content(model="gemini-3-flash", contents="x")
        with pytest.raises(ValueError):
            await client.aio.models.generate_content(model="gemini-3-flash", contents="x")
    finally:
        await _close_genai(client)


async def test_gemini_missing_key_and_bad_inline_data(fake: FakeProviders):
    url = f"{fake.url}/v1beta/models/gemini-3-flash:generateContent"
    bad_part = {"inlineData": {"mime_type": "image/png", "data": "not base64!"}}
    async with httpx.AsyncClient() as client:
        missing = await client.post(url, json={"contents": [{"parts": [{"text": "x"}]}]})
        bad = await client.post(url, headers={"x-goog-api-key": "k"}, json={"contents": [{"parts": [bad_part]}]})
    assert (missing.status_code, missing.json()["error"]["status"]) == (403, "PERMISSION_DENIED")
    assert (bad.status_code, bad.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")


# --- xAI (plain httpx) ------------------------------------------------------------------------


async def test_xai_generate_b64_and_url_formats(fake: FakeProviders, xai: httpx.AsyncClient):
    request = {"model": "grok-imagine-image-2.0", "prompt": "a castle", "aspect_ratio": "16:9"}
    as_b64 = await xai.post("/images/generations", json={**request, "response_format": "b64_json"})
    as_url = await xai.post("/images/generations", json=request)

    assert as_b64.status_code == 200 and as_b64.headers["content-type"] == "application/json"
    item = as_b64.json()["data"][0]
    assert item["mime_type"] == "image/jpeg"
    assert _decoded_size(base64.b64decode(item["b64_json"]), "JPEG") == (114, 64)
    downloaded = await xai.get(as_url.json()["data"][0]["url"])
    assert _decoded_size(downloaded.content, "JPEG") == (114, 64)
    assert fake.calls("xai.images.generate")[0].headers["authorization"] == "Bearer xai-test"


async def test_xai_edit_takes_data_urls(fake: FakeProviders, xai: httpx.AsyncClient):
    reference = data_url(png_bytes(seed="hero"), "image/png")
    single = await xai.post(
        "/images/edits", json={"model": "grok-imagine-image", "prompt": "p", "image": {"url": reference}}
    )
    several = await xai.post(
        "/images/edits", json={"model": "grok-imagine-image-2.0", "prompt": "p", "images": [{"url": reference}] * 2}
    )
    sized = await xai.post(
        "/images/generations", json={"model": "grok-imagine-image", "prompt": "p", "size": "1024x1024"}
    )
    broken = await xai.post("/images/edits", json={"prompt": "p", "image": {"url": "data:image/png;base64,@@"}})

    assert (single.status_code, several.status_code) == (200, 200)
    assert decode_data_url(fake.calls("xai.images.edit")[1].json["images"][1]["url"]) == (
        "image/png",
        png_bytes(seed="hero"),
    )
    assert (sized.status_code, sized.json()["error"]) == (400, "Argument not supported: size")
    assert broken.status_code == 400


async def test_xai_video_pending_then_done_then_download(fake: FakeProviders, xai: httpx.AsyncClient):
    fake.video_pending_polls = 2
    image = {"url": data_url(png_bytes(), "image/png")}
    created = await xai.post(
        "/videos/generations", json={"model": "grok-imagine-video", "prompt": "rain", "image": image}
    )
    request_id = created.json()["request_id"]

    polls = [await xai.get(f"/videos/{request_id}") for _ in range(3)]
    assert [poll.status_code for poll in polls] == [202, 202, 200]
    assert polls[0].json()["status"] == "pending"
    done = polls[2].json()
    assert done["status"] == "done" and done["video"]["respect_moderation"] is True
    clip = await xai.get(done["video"]["url"])
    assert clip.headers["content-type"] == "video/mp4"
    assert clip.content == tiny_mp4() and _frame_count(clip.content) == 6
    assert (await xai.get("/videos/unknown-id")).status_code == 404


async def test_xai_video_download_is_configurable_large_and_truncatable(fake: FakeProviders, xai: httpx.AsyncClient):
    fake.video_pending_polls = 0
    request_id = (await xai.post("/videos/generations", json={"prompt": "rain"})).json()["request_id"]
    url = (await xai.get(f"/videos/{request_id}")).json()["video"]["url"]

    fake.video_size = 3 * 1024 * 1024 + 5
    padded = await xai.get(url)
    assert len(padded.content) == fake.video_size and _frame_count(padded.content) == 6
    fake.video_bytes, fake.video_size = b"custom clip", None
    assert (await xai.get(url)).content == b"custom clip"
    fake.script("xai.videos.download", [Fault.truncated()])
    with pytest.raises(httpx.RemoteProtocolError):
        await xai.get(url)


async def test_xai_video_moderation_and_failure(fake: FakeProviders, xai: httpx.AsyncClient):
    fake.script("xai.videos.poll", [Fault.content_policy(), Fault.video_failed("permission_denied", "no")])
    fake.script("xai.videos.create", [Fault.content_policy(), Fault.ok()])
    refused = await xai.post("/videos/generations", json={"prompt": "bad"})
    request_id = (await xai.post("/videos/generations", json={"prompt": "ok"})).json()["request_id"]

    moderated = (await xai.get(f"/videos/{request_id}")).json()
    failed = (await xai.get(f"/videos/{request_id}")).json()
    assert refused.status_code == 403 and refused.json()["error"].startswith("Content violates usage guidelines")
    assert moderated["status"] == "done" and moderated["video"] == {
        **moderated["video"],
        "respect_moderation": False,
        "url": "",
    }
    assert failed == {"status": "failed", "error": {"code": "permission_denied", "message": "no"}}


@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        (Fault.quota(), 429, "used all available credits"),
        (Fault.auth(), 400, "Incorrect API key"),
        (Fault.retired(), 404, "does not exist"),
        (Fault.server_error(503), 503, "Internal server error"),
    ],
)
async def test_xai_faults(fake: FakeProviders, xai: httpx.AsyncClient, fault: Fault, status: int, text: str):
    fake.script("xai.images.generate", [fault])
    response = await xai.post("/images/generations", json={"model": "grok-imagine-image", "prompt": "p"})
    assert response.status_code == status
    assert text in response.json()["error"] and response.json()["code"]


@pytest.mark.parametrize(
    ("fault", "status", "text"),
    [
        (Fault.quota("credits-403"), 403, "reached its monthly spending limit"),
        (Fault.quota("no-credits-403"), 403, "doesn't have any credits yet"),
        (Fault.auth("percent-encoded"), 400, "Incorrect%20API%20key%20provided"),
        (Fault.auth("bad-credentials"), 400, "Bad%20credentials."),
    ],
)
async def test_xai_recorded_error_bodies(
    fake: FakeProviders, xai: httpx.AsyncClient, fault: Fault, status: int, text: str
):
    fake.script("xai.images.generate", [fault])
    response = await xai.post("/images/generations", json={"model": "grok-imagine-image", "prompt": "p"})
    assert response.status_code == status
    assert text in response.json()["error"] and response.json()["code"]


async def test_xai_moderated_image_bodies(fake: FakeProviders, xai: httpx.AsyncClient):
    shapes = ["nulls", "placeholder", "empty"]
    fake.script("xai.images.generate", [Fault.moderated_image(shape) for shape in shapes])
    bodies = [
        (await xai.post("/images/generations", json={"prompt": "p", "response_format": "b64_json"})).json()
        for _ in shapes
    ]
    nulls, placeholder, empty = (body["data"] for body in bodies)
    assert nulls == [{"url": None, "b64_json": None, "respect_moderation": False}]
    assert placeholder[0]["respect_moderation"] is False
    assert _decoded_size(base64.b64decode(placeholder[0]["b64_json"]), "JPEG") == (64, 64)
    assert empty == []


async def test_xai_rate_limit_missing_key_models_and_chat(fake: FakeProviders, xai: httpx.AsyncClient):
    fake.fail_always("xai.images.generate", Fault.rate_limit(retry_after=3))
    limited = await xai.post("/images/generations", json={"prompt": "p"})
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")
    unauthenticated = await xai.post("/images/generations", json={"prompt": "p"}, headers={"Authorization": ""})
    assert unauthenticated.status_code == 400

    fake.retire("grok-imagine-image")
    image_models = (await xai.get("/image-generation-models")).json()["models"]
    assert [model["id"] for model in image_models] == ["grok-imagine-image-2.0"]
    assert (await xai.get("/models/grok-imagine-image")).status_code == 404
    assert (await xai.get("/models/grok-imagine-video")).json()["id"] == "grok-imagine-video"
    assert "grok-imagine-video-1.5" in [m["id"] for m in (await xai.get("/video-generation-models")).json()["models"]]
    fake.text_reply = "hello"
    chat = await xai.post(
        "/chat/completions", json={"model": "grok-4", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert chat.json()["choices"][0]["message"]["content"] == "hello"


# --- the fault DSL itself ---------------------------------------------------------------------


async def test_script_validation_wildcards_and_reset(fake: FakeProviders, xai: httpx.AsyncClient):
    with pytest.raises(ValueError, match="unknown route"):
        fake.script("openai.images.generat", [Fault.ok()])
    with pytest.raises(ValueError, match="does not apply"):
        fake.script("openai.images.generate", [Fault.truncated()])
    with pytest.raises(ValueError, match="has no shape"):
        fake.script("google.generate_content", [Fault.quota("free-tier-limit-1")])
    with pytest.raises(ValueError, match="is xai's"):
        fake.script("google.generate_content", [Fault.quota("credits-403")])
    with pytest.raises(ValueError, match="does not apply"):
        fake.script("xai.videos.poll", [Fault.moderated_image()])
    with pytest.raises(ValueError, match="does not apply"):
        fake.script("openai.chat", [Fault.bad_media("html")])
    with pytest.raises(ValueError, match="has no shape 'endless'"):
        fake.script("openai.images.generate", [Fault.bad_media("endless")])
    with pytest.raises(ValueError, match="has no shape 'huge'"):
        fake.script("xai.videos.download", [Fault.bad_media("huge")])

    fake.fail_always("xai.*", Fault.auth())
    assert (await xai.get("/models")).status_code == 400
    fake.reset()
    assert fake.requests == []
    assert (await xai.get("/models")).status_code == 200


async def test_stop_ends_a_hanging_request(fake: FakeProviders, xai: httpx.AsyncClient):
    fake.fail_always("xai.models.list", Fault.hang())
    pending = asyncio.create_task(xai.get("/models"))
    async with asyncio.timeout(5):
        await fake.wait_for_calls("xai.models.list")
        await fake.stop()
    with pytest.raises(httpx.HTTPError):
        response = await pending
        response.raise_for_status()


async def test_drip_sends_the_whole_answer_a_byte_at_a_time(fake: FakeProviders, xai: httpx.AsyncClient):
    fake.script("xai.models.list", [Fault.drip(0.001)])
    response = await xai.get("/models")
    assert response.status_code == 200 and response.json()["object"] == "list"
    assert fake.dripped_bytes == len(response.content) == int(response.headers["content-length"])
