"""OpenAIAdapter, with the real openai SDK inside it, against the fake provider server."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.clock import FakeClock
from bot.errors import ErrorKind, ProviderError
from bot.providers.base import ImageRequest, ImageResult, ReferenceImage, StoryRequest
from bot.providers.openai import OpenAIAdapter, size_for_aspect_ratio
from bot.providers.story_prompt import SYSTEM_PROMPT, user_prompt
from bot.routing.registry import Registry
from bot.settings import load_settings
from tests.fakes.providers import FakeProviders, Fault, jpeg_bytes, png_bytes

KEY = "test-key"
AdapterFactory = Callable[..., OpenAIAdapter]


@pytest.fixture
async def make_adapter(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AdapterFactory]:
    monkeypatch.chdir(tmp_path)  # no .env is read
    made: list[OpenAIAdapter] = []

    def build(models_toml: str | None = None, **overrides: Any) -> OpenAIAdapter:
        if models_toml is not None:
            path = tmp_path / "models.toml"
            path.write_text(models_toml)
            overrides["models_file"] = path
        values = {"openai_api_key": KEY, "openai_base_url": fake.openai_base_url, "provider_timeout_s": 5.0}
        settings = load_settings(**{**values, **overrides})
        adapter = OpenAIAdapter(settings, Registry.load(settings), clock=FakeClock())  # 2027-01-15
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
def adapter(make_adapter: AdapterFactory) -> OpenAIAdapter:
    return make_adapter()


def _image(result: ImageResult) -> tuple[str | None, tuple[int, int]]:
    with Image.open(io.BytesIO(result.data)) as image:
        image.load()
        return image.format, image.size


def _request(model: str = "gpt-image-1.5", refs: int = 0, **fields: Any) -> ImageRequest:
    references = [ReferenceImage(data=png_bytes(seed=f"ref{index}")) for index in range(refs)]
    return ImageRequest(model=model, prompt="Mira with her lantern", references=references, **fields)


# --- images: generations ----------------------------------------------------------------------


async def test_generate_sends_only_gpt_image_params_and_decodes_the_png(fake: FakeProviders, adapter: OpenAIAdapter):
    result = await adapter.generate_image(_request(aspect_ratio="16:9"))

    image_format, (width, height) = _image(result)
    assert image_format == "PNG" and width / height == pytest.approx(1.5)
    assert result.mime_type == "image/png"
    assert (result.request_id or "").startswith("req_")
    assert result.warnings == []
    (sent,) = fake.calls("openai.images.generate")
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.path == "/v1/images/generations"
    assert sent.json == {
        "model": "gpt-image-1.5",
        "prompt": "Mira with her lantern",
        "size": "1536x1024",
        "quality": "high",
        "output_format": "png",
        "n": 1,
    }
    assert fake.calls("openai.images.edit") == []


async def test_generate_picks_portrait_size_and_medium_quality_for_mini(fake: FakeProviders, adapter: OpenAIAdapter):
    result = await adapter.generate_image(_request("gpt-image-1-mini", aspect_ratio="9:16"))

    assert _image(result)[1][0] < _image(result)[1][1]
    (sent,) = fake.calls("openai.images.generate")
    assert (sent.json["model"], sent.json["size"], sent.json["quality"]) == ("gpt-image-1-mini", "1024x1536", "medium")


@pytest.mark.parametrize(
    ("ratio", "size"),
    [("16:9", "1536x1024"), ("3:2", "1536x1024"), ("1:1", "1024x1024"), ("2:3", "1024x1536"), ("auto", "1024x1024")],
)
def test_aspect_ratio_maps_to_the_closest_openai_size(ratio: str, size: str):
    assert size_for_aspect_ratio(ratio) == size


# --- images: edits with references ------------------------------------------------------------


async def test_one_reference_goes_in_the_image_part_with_high_fidelity(fake: FakeProviders, adapter: OpenAIAdapter):
    reference = jpeg_bytes(seed="hero")
    request = ImageRequest(
        model="gpt-image-1.5",
        prompt="same hero",
        aspect_ratio="1:1",
        references=[ReferenceImage(data=reference, mime_type="image/jpeg")],
    )

    result = await adapter.generate_image(request)

    assert _image(result)[0] == "PNG"
    assert (result.request_id or "").startswith("req_")
    (sent,) = fake.calls("openai.images.edit")
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Content-Type"].startswith("multipart/form-data")
    assert sent.files == {"image": [reference]}
    assert sent.file_types == {"image": ["image/jpeg"]}
    fields = {name: values[0] for name, values in sent.form_fields.items()}
    assert fields == {
        "model": "gpt-image-1.5",
        "prompt": "same hero",
        "size": "1024x1024",
        "quality": "high",
        "output_format": "png",
        "n": "1",
        "input_fidelity": "high",
    }
    assert fake.calls("openai.images.generate") == []


async def test_several_references_use_image_brackets_and_no_fidelity_on_mini(
    fake: FakeProviders, adapter: OpenAIAdapter
):
    request = _request("gpt-image-1-mini", refs=2)

    await adapter.generate_image(request)

    (sent,) = fake.calls("openai.images.edit")
    assert sent.files == {"image[]": [ref.data for ref in request.references]}
    assert sent.file_types == {"image[]": ["image/png", "image/png"]}
    assert "input_fidelity" not in sent.form_fields
    assert not {"response_format", "style"} & set(sent.form_fields)


async def test_references_are_capped_at_the_spec_limit(fake: FakeProviders, make_adapter: AdapterFactory):
    adapter = make_adapter('[[models]]\nkey = "gpt-image-1.5"\nmax_reference_images = 2\n')
    request = _request(refs=3)

    result = await adapter.generate_image(request)

    (sent,) = fake.calls("openai.images.edit")
    assert sent.files == {"image[]": [ref.data for ref in request.references[:2]]}
    assert result.warnings == ["only the first 2 of 3 reference images were used"]


# --- text ----------------------------------------------------------------------------------------


async def test_write_story_asks_for_json_with_the_shared_prompt(fake: FakeProviders, adapter: OpenAIAdapter):
    request = StoryRequest(model="gpt-5-mini", prompt="a lantern in the attic", scene_count=3, style="watercolour")

    draft = await adapter.write_story(request)

    assert draft.title == "The Lantern Keeper"
    assert len(draft.scenes) == 3 and draft.bible.startswith("Mira")
    (sent,) = fake.calls("openai.chat")
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "gpt-5-mini",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_prompt(request)},
        ],
        "response_format": {"type": "json_object"},
    }


async def test_write_story_with_too_few_scenes_or_prose_is_transient(fake: FakeProviders, adapter: OpenAIAdapter):
    replies = iter(["Once upon a time, in prose.", json.dumps({"title": "T", "scenes": ["only one"]})])
    fake.text_reply = lambda _call: next(replies)
    request = StoryRequest(model="gpt-5-mini", prompt="x", scene_count=3)

    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await adapter.write_story(request)
        assert caught.value.kind is ErrorKind.TRANSIENT


async def test_write_story_refusal_is_content_policy(fake: FakeProviders, adapter: OpenAIAdapter):
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-5-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't help with that."},
                "finish_reason": "stop",
            }
        ],
    }
    fake.script("openai.chat", [Fault.http(200, completion)])

    with pytest.raises(ProviderError) as caught:
        await adapter.write_story(StoryRequest(model="gpt-5-mini", prompt="x", scene_count=1))
    assert caught.value.kind is ErrorKind.CONTENT_POLICY
    assert caught.value.model == "gpt-5-mini"


# --- faults ------------------------------------------------------------------------------------

IMAGE_ROUTES = {"openai.images.generate": 0, "openai.images.edit": 1}  # route -> references that reach it


@pytest.mark.parametrize("route", list(IMAGE_ROUTES))
@pytest.mark.parametrize(
    ("fault", "kind", "status", "retry_after"),
    [
        (Fault.rate_limit(retry_after=2), ErrorKind.RATE_LIMITED, 429, 2.0),
        (Fault.rate_limit(retry_after=2, retry_after_ms=1500), ErrorKind.RATE_LIMITED, 429, 1.5),
        (Fault.rate_limit(), ErrorKind.RATE_LIMITED, 429, None),
        (Fault.quota(), ErrorKind.QUOTA_EXHAUSTED, 429, None),
        (Fault.content_policy("sexual"), ErrorKind.CONTENT_POLICY, 400, None),
        (Fault.auth(), ErrorKind.AUTH, 401, None),
        (Fault.retired(), ErrorKind.MODEL_RETIRED, 404, None),
        (Fault.server_error(500), ErrorKind.TRANSIENT, 500, None),
        (Fault.server_error(503), ErrorKind.TRANSIENT, 503, None),
        (Fault.server_error(502, html=True), ErrorKind.TRANSIENT, 502, None),
    ],
)
async def test_image_status_faults_are_classified(
    fake: FakeProviders,
    adapter: OpenAIAdapter,
    route: str,
    fault: Fault,
    kind: ErrorKind,
    status: int,
    retry_after: float | None,
):
    fake.script(route, [fault])

    with pytest.raises(ProviderError) as caught:
        await adapter.generate_image(_request(refs=IMAGE_ROUTES[route]))

    error = caught.value
    assert (error.kind, error.status, error.retry_after) == (kind, status, retry_after)
    assert error.model == "gpt-image-1.5"
    assert len(fake.calls(route)) == 1  # never retried inside the adapter
    if not fault.html:
        assert (error.request_id or "").startswith("req_")


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (403, {"error": {"message": "Project lacks access", "type": "x", "param": None, "code": None}}, ErrorKind.AUTH),
        (409, {"error": {"message": "busy", "type": "x", "param": None, "code": "conflict"}}, ErrorKind.TRANSIENT),
        (422, {"error": {"message": "bad", "type": "x", "param": None, "code": None}}, ErrorKind.BAD_REQUEST),
        (400, {"error": {"message": "bad size", "type": "x", "param": "size", "code": None}}, ErrorKind.BAD_REQUEST),
        (413, "Request Entity Too Large", ErrorKind.BAD_REQUEST),
    ],
)
async def test_other_statuses_are_classified(
    fake: FakeProviders, adapter: OpenAIAdapter, status: int, body: Any, kind: ErrorKind
):
    fake.script("openai.images.generate", [Fault.http(status, body)])

    with pytest.raises(ProviderError) as caught:
        await adapter.generate_image(_request())
    assert (caught.value.kind, caught.value.status) == (kind, status)


@pytest.mark.parametrize("fault", [Fault.reset(), Fault.malformed(), Fault.hang()], ids=["reset", "malformed", "hang"])
async def test_transport_faults_are_transient(fake: FakeProviders, make_adapter: AdapterFactory, fault: Fault):
    adapter = make_adapter(provider_timeout_s=0.3)
    fake.script("openai.images.generate", [fault])

    with pytest.raises(ProviderError) as caught:
        await adapter.generate_image(_request())
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert caught.value.status is None


async def test_latency_under_the_timeout_still_succeeds(fake: FakeProviders, make_adapter: AdapterFactory):
    adapter = make_adapter(provider_timeout_s=2.0)
    fake.script("openai.images.generate", [Fault.latency(0.1)])

    assert _image(await adapter.generate_image(_request()))[0] == "PNG"


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.rate_limit(retry_after=3), ErrorKind.RATE_LIMITED),
        (Fault.quota(), ErrorKind.QUOTA_EXHAUSTED),
        (Fault.auth(), ErrorKind.AUTH),
        (Fault.retired(), ErrorKind.MODEL_RETIRED),
        (Fault.server_error(500), ErrorKind.TRANSIENT),
        (Fault.malformed(), ErrorKind.TRANSIENT),
        (Fault.reset(), ErrorKind.TRANSIENT),
    ],
)
async def test_chat_faults_are_classified(fake: FakeProviders, adapter: OpenAIAdapter, fault: Fault, kind: ErrorKind):
    fake.script("openai.chat", [fault])

    with pytest.raises(ProviderError) as caught:
        await adapter.write_story(StoryRequest(model="gpt-5-mini", prompt="x", scene_count=3))
    assert caught.value.kind is kind
    assert caught.value.model == "gpt-5-mini"


async def test_retired_model_names_its_successor(fake: FakeProviders, adapter: OpenAIAdapter):
    fake.retire("dall-e-3")

    with pytest.raises(ProviderError) as caught:
        await adapter.generate_image(_request("dall-e-3"))
    assert caught.value.kind is ErrorKind.MODEL_RETIRED
    assert caught.value.successor == "gpt-image-1.5"
    assert "use gpt-image-1.5 instead" in caught.value.plain()


async def test_error_messages_are_short_and_never_contain_the_key(fake: FakeProviders, adapter: OpenAIAdapter):
    message = f"Invalid value for prompt near key {KEY}: " + "x" * 2000
    body = {"error": {"message": message, "type": "invalid_request_error", "param": "prompt", "code": None}}
    fake.script("openai.images.generate", [Fault.http(400, body), Fault.auth()])

    for expected in (ErrorKind.BAD_REQUEST, ErrorKind.AUTH):
        with pytest.raises(ProviderError) as caught:
            await adapter.generate_image(_request())
        assert caught.value.kind is expected
        assert KEY not in str(caught.value)
        assert len(str(caught.value)) < 300


async def test_a_rejected_key_is_auth(fake: FakeProviders, adapter: OpenAIAdapter):
    fake.valid_keys = {"some-other-key"}

    with pytest.raises(ProviderError) as caught:
        await adapter.generate_image(_request())
    assert caught.value.kind is ErrorKind.AUTH


async def test_missing_key_is_auth_without_a_request(fake: FakeProviders, make_adapter: AdapterFactory):
    adapter = make_adapter(openai_api_key=None)

    for call in (
        adapter.generate_image(_request()),
        adapter.write_story(StoryRequest(model="gpt-5-mini", prompt="x", scene_count=1)),
        adapter.check("gpt-image-1.5"),
    ):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.kind is ErrorKind.AUTH
        assert "OPENAI_API_KEY" in str(caught.value)
    assert fake.requests == []


# --- check ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shutdown_date", "usable"),
    [
        (None, True),
        ("2027-06-01", True),
        ("2026-12-01", False),
        ("2027-01-15", False),  # FakeClock's today: shut down today
        ("2026-12-01T00:00:00Z", False),
        (1_700_000_000, False),
        (1_900_000_000, True),
    ],
)
async def test_check_reads_shutdown_date(fake: FakeProviders, adapter: OpenAIAdapter, shutdown_date: Any, usable: bool):
    fake.shutdown_dates["gpt-image-1.5"] = shutdown_date

    assert await adapter.check("gpt-image-1.5") is usable
    (sent,) = fake.calls("openai.models.retrieve")
    assert sent.path == "/v1/models/gpt-image-1.5"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"


async def test_check_retired_model_is_false_and_auth_raises(fake: FakeProviders, adapter: OpenAIAdapter):
    fake.retire("gpt-image-1")
    assert await adapter.check("gpt-image-1") is False

    fake.script("openai.models.retrieve", [Fault.auth(), Fault.server_error(503)])
    for kind in (ErrorKind.AUTH, ErrorKind.TRANSIENT):
        with pytest.raises(ProviderError) as caught:
            await adapter.check("gpt-image-1.5")
        assert caught.value.kind is kind


async def test_aclose_lets_the_adapter_reconnect(fake: FakeProviders, adapter: OpenAIAdapter):
    assert await adapter.check("gpt-image-1.5")
    await adapter.aclose()
    await adapter.aclose()  # idempotent
    assert await adapter.check("gpt-image-1-mini")
    assert len(fake.calls("openai.models.retrieve")) == 2
