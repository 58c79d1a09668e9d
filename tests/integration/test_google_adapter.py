"""GoogleAdapter against the fake Gemini API, through the real google-genai SDK: what goes on the wire,
and which ErrorKind each fault becomes."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.clock import FakeClock
from bot.domain import Modality, RoutingConfig
from bot.errors import ErrorKind, ProviderError
from bot.providers.base import ImageRequest, ImageResult, ReferenceImage, StoryRequest
from bot.providers.google import GoogleAdapter
from bot.providers.story_prompt import SYSTEM_PROMPT
from bot.routing.registry import ModelSpec, Registry
from bot.routing.router import ModelRouter
from bot.settings import load_settings
from tests.fakes.providers import FakeProviders, Fault, png_bytes
from tests.fakes.providers_core import decode_base64

KEY = "test-key"
IMAGE_MODEL = "gemini-3.1-flash-image"
TEXT_MODEL = "gemini-3-flash"
GENERATE = "google.generate_content"

AdapterFactory = Callable[..., GoogleAdapter]


@pytest.fixture
async def make_adapter(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AdapterFactory]:
    monkeypatch.chdir(tmp_path)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "PROVIDER_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    adapters: list[GoogleAdapter] = []

    def build(*, key: str | None = KEY, timeout_s: float = 5.0, api_version: str = "v1beta") -> GoogleAdapter:
        overrides: dict[str, Any] = {"google_gemini_base_url": fake.gemini_base_url, "provider_timeout_s": timeout_s}
        if key is not None:
            overrides["gemini_api_key"] = key
        settings = load_settings(**overrides)
        adapter = GoogleAdapter(settings, Registry.load(settings), api_version=api_version)
        adapters.append(adapter)
        return adapter

    yield build
    for adapter in adapters:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: AdapterFactory) -> GoogleAdapter:
    return make_adapter()


def _image_request(**fields: Any) -> ImageRequest:
    return ImageRequest(**{"model": IMAGE_MODEL, "prompt": "Mira lights the lantern", **fields})


async def _error(awaitable: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await awaitable
    return caught.value


# --- success -----------------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
async def test_write_story_sends_system_prompt_and_json_mime(
    fake: FakeProviders, make_adapter: AdapterFactory, api_version: str
) -> None:
    adapter = make_adapter(api_version=api_version)
    draft = await adapter.write_story(StoryRequest(model=TEXT_MODEL, prompt="a lantern", scene_count=3, style="ink"))

    assert draft.title == "The Lantern Keeper"
    assert len(draft.scenes) == 3 and draft.bible.startswith("Mira")
    (sent,) = fake.calls(GENERATE)
    assert sent.path == f"/{api_version}/models/{TEXT_MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["systemInstruction"]["parts"][0]["text"] == SYSTEM_PROMPT
    assert sent.json["generationConfig"] == {"responseMimeType": "application/json"}
    prompt = sent.json["contents"][0]["parts"][0]["text"]
    assert "exactly 3 scenes" in prompt and "a lantern" in prompt and "ink" in prompt


async def test_write_story_with_too_few_scenes_is_transient(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    fake.text_reply = json.dumps({"title": "Short", "bible": "", "scenes": ["only one"]})
    error = await _error(adapter.write_story(StoryRequest(model=TEXT_MODEL, prompt="x", scene_count=3)))
    assert error.kind is ErrorKind.TRANSIENT and error.model == TEXT_MODEL


@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
async def test_generate_image_with_references(
    fake: FakeProviders, make_adapter: AdapterFactory, api_version: str
) -> None:
    adapter = make_adapter(api_version=api_version)
    references = [
        ReferenceImage(data=png_bytes(seed="a")),
        ReferenceImage(data=b"\xff\xd8jpeg", mime_type="image/jpeg"),
    ]
    result = await adapter.generate_image(_image_request(aspect_ratio="16:9", references=references))

    assert result.mime_type == "image/png" and result.warnings == []
    assert Image.open(io.BytesIO(result.data)).size == (114, 64)  # the fake draws the requested ratio
    assert result.request_id
    (sent,) = fake.calls(GENERATE)
    assert sent.path == f"/{api_version}/models/{IMAGE_MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["generationConfig"] == {
        "responseModalities": ["IMAGE", "TEXT"],
        "imageConfig": {"aspectRatio": "16:9"},
    }
    text_part, *image_parts = sent.json["contents"][0]["parts"]
    assert text_part == {"text": "Mira lights the lantern"}
    inline = [part["inlineData"] for part in image_parts]
    assert [decode_base64(item["data"]) for item in inline] == [ref.data for ref in references]
    assert [item.get("mimeType") or item.get("mime_type") for item in inline] == ["image/png", "image/jpeg"]


async def test_references_are_capped_at_the_model_limit(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    references = [ReferenceImage(data=png_bytes(seed=str(index))) for index in range(16)]
    result = await adapter.generate_image(_image_request(references=references))

    (sent,) = fake.calls(GENERATE)
    sent_images = [part for part in sent.json["contents"][0]["parts"] if "inlineData" in part]
    assert [decode_base64(part["inlineData"]["data"]) for part in sent_images] == [r.data for r in references[:14]]
    assert result.warnings == [f"{IMAGE_MODEL} takes 14 reference images; the rest were left out"]


@pytest.mark.parametrize(("requested", "sent_ratio"), [("9:16", "9:16"), ("5:4", "4:3"), ("2:1", "16:9")])
async def test_unsupported_aspect_ratio_becomes_the_closest(
    fake: FakeProviders, adapter: GoogleAdapter, requested: str, sent_ratio: str
) -> None:
    await adapter.generate_image(_image_request(aspect_ratio=requested))
    (sent,) = fake.calls(GENERATE)
    assert sent.json["generationConfig"]["imageConfig"] == {"aspectRatio": sent_ratio}


async def test_model_missing_from_registry_is_tolerated(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    result = await adapter.generate_image(_image_request(model="gemini-3.1-flash-lite-image"))
    assert result.mime_type == "image/png"
    assert fake.calls(GENERATE)[0].path.endswith("/models/gemini-3.1-flash-lite-image:generateContent")


async def test_aclose_closes_the_session_and_the_adapter_reopens(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    await adapter.generate_image(_image_request())
    session = adapter._session
    assert session is not None and not session.closed
    await adapter.aclose()
    assert session.closed
    await adapter.generate_image(_image_request())
    assert len(fake.calls(GENERATE)) == 2


# --- interim "thought" images --------------------------------------------------------------------

FINAL = png_bytes(114, 64, seed="Mira lights the lantern")  # what the fake's final part carries for 16:9


@pytest.mark.parametrize("shape", ["flagged", "signed", "flagged-final", "unmarked"])
async def test_the_final_image_is_returned_not_a_draft(fake: FakeProviders, adapter: GoogleAdapter, shape: str) -> None:
    fake.script(GENERATE, [Fault.thought_images(shape)])
    result = await adapter.generate_image(_image_request())
    assert result.data == FINAL and result.mime_type == "image/png"
    assert len(fake.calls(GENERATE)) == 1


async def test_the_signed_final_image_of_an_ordinary_answer_is_returned(
    fake: FakeProviders, adapter: GoogleAdapter
) -> None:
    result = await adapter.generate_image(_image_request())  # the fake signs its final image, as Gemini 3 does
    assert result.data == FINAL


async def test_thinking_prose_stays_out_of_a_refusal(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    body = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "secret plan", "thought": True}, {"text": "No."}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ]
    }
    fake.script(GENERATE, [Fault.http(200, body)])
    error = await _error(adapter.generate_image(_image_request()))
    assert error.kind is ErrorKind.CONTENT_POLICY
    assert str(error).endswith(": No.") and "secret plan" not in str(error)


# --- safety outcomes (HTTP 200) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.content_policy("PROHIBITED_CONTENT"), "blocked the prompt (PROHIBITED_CONTENT)"),
        (Fault.content_policy("SAFETY"), "blocked the prompt (SAFETY)"),
        (Fault.image_safety("IMAGE_SAFETY"), "withheld the output (IMAGE_SAFETY)"),
        (Fault.image_safety("SAFETY"), "withheld the output (SAFETY)"),
        (Fault.image_safety("PROHIBITED_CONTENT"), "withheld the output (PROHIBITED_CONTENT)"),
        (Fault.image_safety("IMAGE_PROHIBITED_CONTENT"), "withheld the output (IMAGE_PROHIBITED_CONTENT)"),
        (Fault.image_safety("NO_IMAGE"), "returned no image (finish reason NO_IMAGE)"),
        (Fault.text_only("I can't draw that."), "returned no image (finish reason STOP): I can't draw that."),
    ],
)
async def test_image_safety_outcomes_are_content_policy(
    fake: FakeProviders, adapter: GoogleAdapter, fault: Fault, words: str
) -> None:
    fake.script(GENERATE, [fault])
    error = await _error(adapter.generate_image(_image_request()))
    assert error.kind is ErrorKind.CONTENT_POLICY
    assert words in str(error)
    assert error.model == IMAGE_MODEL


async def test_image_stopped_early_without_image_is_transient(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    fake.script(GENERATE, [Fault.image_safety("MAX_TOKENS")])
    error = await _error(adapter.generate_image(_image_request()))
    assert error.kind is ErrorKind.TRANSIENT


@pytest.mark.parametrize("fault", [Fault.content_policy("PROHIBITED_CONTENT"), Fault.image_safety("SAFETY")])
async def test_story_safety_block_is_content_policy(fake: FakeProviders, adapter: GoogleAdapter, fault: Fault) -> None:
    fake.script(GENERATE, [fault])
    error = await _error(adapter.write_story(StoryRequest(model=TEXT_MODEL, prompt="x", scene_count=3)))
    assert error.kind is ErrorKind.CONTENT_POLICY


# --- HTTP errors ---------------------------------------------------------------------------------


def _google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


@pytest.mark.parametrize(
    ("fault", "kind", "status"),
    [
        (Fault.rate_limit(), ErrorKind.RATE_LIMITED, 429),
        (Fault.quota(), ErrorKind.QUOTA_EXHAUSTED, 429),
        (Fault.auth(), ErrorKind.AUTH, 400),
        (Fault.http(403, _google_error(403, "PERMISSION_DENIED", "denied")), ErrorKind.AUTH, 403),
        (Fault.http(401, _google_error(401, "UNAUTHENTICATED", "no")), ErrorKind.AUTH, 401),
        (Fault.retired(), ErrorKind.MODEL_RETIRED, 404),
        (Fault.server_error(500), ErrorKind.TRANSIENT, 500),
        (Fault.server_error(502, html=True), ErrorKind.TRANSIENT, 502),
        (Fault.server_error(503), ErrorKind.TRANSIENT, 503),
        (Fault.server_error(504), ErrorKind.TRANSIENT, 504),
        (Fault.http(400, _google_error(400, "INVALID_ARGUMENT", "bad size")), ErrorKind.BAD_REQUEST, 400),
        (Fault.http(418, "teapot"), ErrorKind.BAD_REQUEST, 418),
        (Fault.http(202, {}), ErrorKind.TRANSIENT, 202),
    ],
)
async def test_http_faults_are_classified(
    fake: FakeProviders, adapter: GoogleAdapter, fault: Fault, kind: ErrorKind, status: int
) -> None:
    fake.script(GENERATE, [fault])
    error = await _error(adapter.generate_image(_image_request()))
    assert (error.kind, error.status, error.model) == (kind, status, IMAGE_MODEL)
    assert error.retry_after is None


@pytest.mark.parametrize(("retry_after", "expected"), [(7, 7.0), (0.5, 0.5)])
async def test_rate_limit_carries_retry_info(
    fake: FakeProviders, adapter: GoogleAdapter, retry_after: float, expected: float
) -> None:
    fake.script(GENERATE, [Fault.rate_limit(retry_after=retry_after)])
    error = await _error(adapter.write_story(StoryRequest(model=TEXT_MODEL, prompt="x", scene_count=1)))
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == expected


async def test_quota_message_with_retry_info_is_a_rate_limit(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    body = _google_error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, per minute.")
    body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]
    fake.script(GENERATE, [Fault.http(429, body)])
    error = await _error(adapter.generate_image(_image_request()))
    assert (error.kind, error.retry_after) == (ErrorKind.RATE_LIMITED, 30.0)


@pytest.mark.parametrize(
    ("fault", "kind", "retry_after"),
    [
        (Fault.quota("free-tier-limit-0"), ErrorKind.QUOTA_EXHAUSTED, None),
        (Fault.quota("per-day-with-retry"), ErrorKind.QUOTA_EXHAUSTED, None),
        (Fault.rate_limit(shape="free-tier-per-minute"), ErrorKind.RATE_LIMITED, 45.0),
    ],
    ids=["limit-0-with-retry-info", "per-day-with-retry-info", "per-minute-token-quota"],
)
async def test_recorded_quota_bodies(
    fake: FakeProviders, adapter: GoogleAdapter, fault: Fault, kind: ErrorKind, retry_after: float | None
) -> None:
    fake.script(GENERATE, [fault])
    error = await _error(adapter.generate_image(_image_request()))
    assert (error.kind, error.retry_after, error.status) == (kind, retry_after, 429)
    assert len(str(error)) < 260


def _router(primary: str) -> ModelRouter:
    """A router whose chain is ``primary`` then the local model, with every key present."""
    settings = load_settings()
    clock = FakeClock()
    loaded = Registry.load(settings, clock=clock)
    registry = Registry(loaded.specs(), loaded.aliases, key_present=lambda env: True, clock=clock)
    routing = dict(settings.routing)
    routing[Modality.IMAGE] = RoutingConfig(primary_model=primary, fallbacks=[], max_retries=3, retry_delay_ms=100)
    return ModelRouter(registry, routing, clock)


async def test_an_exhausted_free_tier_falls_back_at_once_despite_retry_info(
    fake: FakeProviders, adapter: GoogleAdapter
) -> None:
    fake.fail_always(GENERATE, Fault.quota("free-tier-limit-0"))

    async def draw(spec: ModelSpec) -> ImageResult | None:
        return await adapter.generate_image(_image_request(model=spec.api_model)) if spec.provider == "google" else None

    routed = await _router(IMAGE_MODEL).call(IMAGE_MODEL, Modality.IMAGE, draw)
    assert routed.model_used == "local-sketch"
    assert len(fake.calls(GENERATE)) == 1  # not retried on the same model, RetryInfo notwithstanding
    assert routed.warnings[0].startswith(f"{IMAGE_MODEL} has used up its quota")


async def test_retired_model_names_its_successor(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    fake.retire("imagen-4.0-generate-001")
    error = await _error(adapter.generate_image(_image_request(model="imagen-4.0-generate-001")))
    assert error.kind is ErrorKind.MODEL_RETIRED
    assert error.successor == "gemini-3.1-flash-image"
    assert "use gemini-3.1-flash-image instead" in error.plain()


async def test_error_message_is_short_and_never_holds_the_key(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    fake.script(GENERATE, [Fault.http(400, _google_error(400, "INVALID_ARGUMENT", f"key {KEY} " + "x" * 5000))])
    error = await _error(adapter.generate_image(_image_request()))
    assert KEY not in str(error) and KEY not in repr(error)
    assert len(str(error)) < 260


async def test_rejected_key_on_the_wire_is_auth(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    fake.valid_keys = {"another-key"}
    error = await _error(adapter.write_story(StoryRequest(model=TEXT_MODEL, prompt="x", scene_count=1)))
    assert error.kind is ErrorKind.AUTH


async def test_missing_key_is_auth_without_a_request(fake: FakeProviders, make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(key=None)
    error = await _error(adapter.generate_image(_image_request()))
    assert error.kind is ErrorKind.AUTH and "GEMINI_API_KEY" in str(error)
    assert fake.requests == []


# --- transport faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.reset(), Fault.hang(), Fault.malformed()], ids=["reset", "hang", "malformed"])
async def test_transport_faults_are_transient(fake: FakeProviders, make_adapter: AdapterFactory, fault: Fault) -> None:
    adapter = make_adapter(timeout_s=0.3)
    fake.script(GENERATE, [fault])
    error = await _error(adapter.generate_image(_image_request()))
    assert error.kind is ErrorKind.TRANSIENT and error.model == IMAGE_MODEL
    assert len(fake.calls(GENERATE)) == 1  # the SDK did not retry


async def test_unreachable_server_is_transient(make_adapter: AdapterFactory, fake: FakeProviders) -> None:
    adapter = make_adapter()
    await fake.stop()
    error = await _error(adapter.write_story(StoryRequest(model=TEXT_MODEL, prompt="x", scene_count=1)))
    assert error.kind is ErrorKind.TRANSIENT


# --- check -----------------------------------------------------------------------------------------


# Only v1beta: the fake's OpenAI route GET /v1/models/{model} shadows Gemini's GET /v1/models/{model}.
@pytest.mark.parametrize("api_version", ["v1beta"])
async def test_check(fake: FakeProviders, make_adapter: AdapterFactory, api_version: str) -> None:
    adapter = make_adapter(api_version=api_version)
    assert await adapter.check("gemini-3-pro-image") is True
    fake.retire("gemini-2.5-flash-image")
    assert await adapter.check("gemini-2.5-flash-image") is False
    paths = [call.path for call in fake.calls("google.models.get")]
    assert paths == [f"/{api_version}/models/gemini-3-pro-image", f"/{api_version}/models/gemini-2.5-flash-image"]
    assert all(call.headers["x-goog-api-key"] == KEY for call in fake.calls("google.models.get"))


async def test_check_raises_for_auth_and_outages(fake: FakeProviders, adapter: GoogleAdapter) -> None:
    fake.script("google.models.get", [Fault.auth(), Fault.server_error(503)])
    assert (await _error(adapter.check(IMAGE_MODEL))).kind is ErrorKind.AUTH
    assert (await _error(adapter.check(IMAGE_MODEL))).kind is ErrorKind.TRANSIENT
