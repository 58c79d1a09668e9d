"""The xAI adapter against the fake provider server: what goes on the wire, and every fault classified."""

from __future__ import annotations

import gc
import io
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from bot.clock import FakeClock
from bot.domain import Modality, RoutingConfig
from bot.errors import ErrorKind, ProviderError
from bot.providers.base import (
    ImageRequest,
    ImageResult,
    ReferenceImage,
    StoryRequest,
    VideoPoll,
    VideoRequest,
    VideoState,
)
from bot.providers.story_prompt import SYSTEM_PROMPT, user_prompt
from bot.providers.xai.adapter import XAIAdapter
from bot.routing.registry import ModelSpec, Registry
from bot.routing.router import ModelRouter
from bot.settings import load_settings
from tests.fakes.providers import FakeProviders, Fault, png_bytes
from tests.fakes.providers_core import b64, decode_data_url, jpeg_bytes

KEY = "xai-testkey0123456789"
MiB = 1024 * 1024
Build = Callable[..., Awaitable[XAIAdapter]]


@pytest.fixture
async def build(fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Build]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    made: list[XAIAdapter] = []

    async def make(**overrides: Any) -> XAIAdapter:
        values = {"xai_api_key": KEY, "xai_base_url": fake.xai_base_url, "provider_timeout_s": 2.0, **overrides}
        settings = load_settings(**values)
        adapter = XAIAdapter(settings, Registry.load(settings))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.aclose()


@pytest.fixture
async def xai(build: Build) -> XAIAdapter:
    return await build()


def _image(model: str = "grok-imagine-image", refs: int = 0, ratio: str = "16:9") -> ImageRequest:
    references = [ReferenceImage(data=png_bytes(seed=f"ref{i}"), mime_type="image/png") for i in range(refs)]
    return ImageRequest(model=model, prompt="a lighthouse at dusk", aspect_ratio=ratio, references=references)


def _video(duration: int = 5) -> VideoRequest:
    return VideoRequest(
        model="grok-imagine-video",
        prompt="slow push-in",
        image=ReferenceImage(data=png_bytes(seed="frame"), mime_type="image/png"),
        duration_s=duration,
    )


def _frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# --- text -----------------------------------------------------------------------------------------


async def test_write_story_sends_the_shared_prompt(fake: FakeProviders, xai: XAIAdapter) -> None:
    request = StoryRequest(model="grok-4-fast", prompt="a lantern", scene_count=3, style="watercolour")
    draft = await xai.write_story(request)

    assert draft.title == "The Lantern Keeper" and len(draft.scenes) == 3
    sent = fake.calls("xai.chat")[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json["model"] == "grok-4-fast"
    assert sent.json["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(request)},
    ]


async def test_write_story_without_a_story_is_transient(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.text_reply = "Once upon a time, no JSON."
    with pytest.raises(ProviderError) as caught:
        await xai.write_story(StoryRequest(model="grok-4-fast", prompt="p", scene_count=2))
    assert caught.value.kind is ErrorKind.TRANSIENT


# --- images ---------------------------------------------------------------------------------------


async def test_generate_image_wire_and_jpeg_result(fake: FakeProviders, xai: XAIAdapter) -> None:
    result = await xai.generate_image(_image())

    sent = fake.calls("xai.images.generate")[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "grok-imagine-image",
        "prompt": "a lighthouse at dusk",
        "n": 1,
        "response_format": "b64_json",
        "aspect_ratio": "16:9",
    }
    assert result.mime_type == "image/jpeg" and result.warnings == []
    with Image.open(io.BytesIO(result.data)) as image:
        assert (image.format, image.size) == ("JPEG", (114, 64))


async def test_one_reference_goes_to_edits_as_a_data_url(fake: FakeProviders, xai: XAIAdapter) -> None:
    await xai.generate_image(_image(refs=1))

    assert fake.calls("xai.images.generate") == []
    sent = fake.calls("xai.images.edit")[0].json
    assert decode_data_url(sent["image"]["url"]) == ("image/png", png_bytes(seed="ref0"))
    assert "images" not in sent and "aspect_ratio" not in sent and "size" not in sent


@pytest.mark.parametrize(("model", "cap"), [("grok-imagine-image", 3), ("grok-imagine-image-2.0", 5)])
async def test_several_references_are_capped_per_model(
    fake: FakeProviders, xai: XAIAdapter, model: str, cap: int
) -> None:
    result = await xai.generate_image(_image(model=model, refs=7))

    sent = fake.calls("xai.images.edit")[0].json
    assert [decode_data_url(item["url"]) for item in sent["images"]] == [
        ("image/png", png_bytes(seed=f"ref{i}")) for i in range(cap)
    ]
    assert "image" not in sent and sent["aspect_ratio"] == "16:9"
    assert result.warnings == [f"only the first {cap} of 7 reference images were used"]


async def test_unoffered_ratio_becomes_auto_and_mime_is_sniffed(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.script("xai.images.generate", [Fault.http(200, {"data": [{"b64_json": b64(png_bytes())}]})])
    result = await xai.generate_image(_image(ratio="7:5"))

    assert fake.calls("xai.images.generate")[0].json["aspect_ratio"] == "auto"
    assert result.mime_type == "image/png" and result.data == png_bytes()
    assert "aspect ratio 7:5" in result.warnings[0]


async def test_mime_type_from_the_answer_wins(fake: FakeProviders, xai: XAIAdapter) -> None:
    body = {"data": [{"b64_json": b64(jpeg_bytes()), "mime_type": "image/webp"}]}
    fake.script("xai.images.generate", [Fault.http(200, body, headers={"x-request-id": "req-9"})])
    result = await xai.generate_image(_image())
    assert (result.mime_type, result.request_id) == ("image/webp", "req-9")


_CREDITS = {"error": {"message": "Your team has reached its monthly spending limit.", "code": "quota"}}
_OPENAI_BAD_KEY = {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key", "type": "x"}}
FAULTS: list[tuple[str, Fault, ErrorKind, float | None]] = [
    ("rate-limit", Fault.rate_limit(retry_after=7), ErrorKind.RATE_LIMITED, 7.0),
    ("rate-limit-no-hint", Fault.rate_limit(), ErrorKind.RATE_LIMITED, None),
    ("rate-limit-ms", Fault.http(429, {"error": "slow"}, {"retry-after-ms": "1500"}), ErrorKind.RATE_LIMITED, 1.5),
    ("spent-credits", Fault.quota(), ErrorKind.QUOTA_EXHAUSTED, None),
    ("spent-credits-403", Fault.quota("credits-403"), ErrorKind.QUOTA_EXHAUSTED, None),
    ("no-credits-yet-403", Fault.quota("no-credits-403"), ErrorKind.QUOTA_EXHAUSTED, None),
    ("spent-openai-shape", Fault.http(429, _CREDITS), ErrorKind.QUOTA_EXHAUSTED, None),
    ("bad-key-400", Fault.auth(), ErrorKind.AUTH, None),
    ("bad-key-percent-encoded", Fault.auth("percent-encoded"), ErrorKind.AUTH, None),
    ("bad-credentials-percent-encoded", Fault.auth("bad-credentials"), ErrorKind.AUTH, None),
    ("bad-key-openai-shape", Fault.http(400, _OPENAI_BAD_KEY), ErrorKind.AUTH, None),
    ("bad-key-bare-string", Fault.http(400, "Invalid API key"), ErrorKind.AUTH, None),
    ("401", Fault.http(401, {"code": "Unauthenticated", "error": "who are you"}), ErrorKind.AUTH, None),
    ("content-policy-403", Fault.content_policy(), ErrorKind.CONTENT_POLICY, None),
    ("blocked-key-403", Fault.http(403, {"code": "denied", "error": "The API key is blocked."}), ErrorKind.AUTH, None),
    ("retired-404", Fault.retired(), ErrorKind.MODEL_RETIRED, None),
    ("missing-field-422", Fault.http(422, {"code": "x", "error": "Missing field"}), ErrorKind.BAD_REQUEST, None),
    ("bare-400", Fault.http(400, "bad thing"), ErrorKind.BAD_REQUEST, None),
    ("500", Fault.server_error(500), ErrorKind.TRANSIENT, None),
    ("503", Fault.server_error(503), ErrorKind.TRANSIENT, None),
    ("529-overloaded", Fault.server_error(529), ErrorKind.TRANSIENT, None),
    ("502-html", Fault.server_error(502, html=True), ErrorKind.TRANSIENT, None),
    ("reset", Fault.reset(), ErrorKind.TRANSIENT, None),
    ("malformed-json", Fault.malformed(), ErrorKind.TRANSIENT, None),
    ("no-data", Fault.http(200, {"created": 1763700000}), ErrorKind.TRANSIENT, None),
    ("no-bytes", Fault.http(200, {"data": [{"url": None, "b64_json": None}]}), ErrorKind.TRANSIENT, None),
]


@pytest.mark.parametrize(("fault", "kind", "retry_after"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
async def test_image_faults_are_classified(
    fake: FakeProviders, xai: XAIAdapter, fault: Fault, kind: ErrorKind, retry_after: float | None
) -> None:
    fake.script("xai.images.generate", [fault])
    with pytest.raises(ProviderError) as caught:
        await xai.generate_image(_image())
    assert (caught.value.kind, caught.value.retry_after) == (kind, retry_after)
    assert "<html" not in str(caught.value) and len(str(caught.value)) < 260


async def test_a_percent_encoded_message_is_read_in_plain_words(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.script("xai.images.generate", [Fault.auth("percent-encoded")])
    with pytest.raises(ProviderError) as caught:
        await xai.generate_image(_image())
    assert "Incorrect API key provided" in str(caught.value) and "%20" not in str(caught.value)
    assert caught.value.plain() == "grok-imagine-image rejected the API key"


@pytest.mark.parametrize("shape", ["nulls", "placeholder", "empty"])
@pytest.mark.parametrize("refs", [0, 2], ids=["generate", "edit"])
async def test_silently_moderated_images_are_content_policy(
    fake: FakeProviders, xai: XAIAdapter, shape: str, refs: int
) -> None:
    route = "xai.images.edit" if refs else "xai.images.generate"
    fake.script(route, [Fault.moderated_image(shape)])
    with pytest.raises(ProviderError) as caught:
        await xai.generate_image(_image(refs=refs))
    assert caught.value.kind is ErrorKind.CONTENT_POLICY and "moderation" in str(caught.value)
    assert "rephras" in caught.value.plain()


def _router(primary: str) -> ModelRouter:
    """A router whose chain is ``primary`` then the local model, with every key present."""
    settings = load_settings()
    clock = FakeClock()
    loaded = Registry.load(settings, clock=clock)
    registry = Registry(loaded.specs(), loaded.aliases, key_present=lambda env: True, clock=clock)
    routing = dict(settings.routing)
    routing[Modality.IMAGE] = RoutingConfig(primary_model=primary, fallbacks=[], max_retries=3, retry_delay_ms=100)
    return ModelRouter(registry, routing, clock)


def _drawer(xai: XAIAdapter, drawn: list[ImageResult]) -> Callable[[ModelSpec], Awaitable[str]]:
    async def draw(spec: ModelSpec) -> str:
        if spec.provider != "xai":
            return spec.key
        drawn.append(await xai.generate_image(_image(model=spec.api_model)))
        return spec.key

    return draw


async def test_a_moderated_placeholder_is_never_kept_nor_paid_for_twice(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.fail_always("xai.images.generate", Fault.moderated_image("placeholder"))
    drawn: list[ImageResult] = []
    with pytest.raises(ProviderError) as caught:
        await _router("grok-imagine-image").call("grok-imagine-image", Modality.IMAGE, _drawer(xai, drawn))
    assert caught.value.kind is ErrorKind.CONTENT_POLICY
    assert drawn == [] and len(fake.calls("xai.images.generate")) == 1


async def test_spent_credits_on_403_fall_back_without_a_retry(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.fail_always("xai.images.generate", Fault.quota("credits-403"))
    routed = await _router("grok-imagine-image").call("grok-imagine-image", Modality.IMAGE, _drawer(xai, []))
    assert routed.model_used == "local-sketch"
    assert len(fake.calls("xai.images.generate")) == 1
    assert routed.warnings[0].startswith("grok-imagine-image has used up its quota")


async def test_edit_faults_are_classified_too(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.script("xai.images.edit", [Fault.content_policy(), Fault.rate_limit(retry_after=2)])
    kinds = []
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await xai.generate_image(_image(refs=2))
        kinds.append((caught.value.kind, caught.value.retry_after))
    assert kinds == [(ErrorKind.CONTENT_POLICY, None), (ErrorKind.RATE_LIMITED, 2.0)]


async def test_hang_past_the_timeout_is_transient(fake: FakeProviders, build: Build) -> None:
    xai = await build(provider_timeout_s=0.3)
    fake.script("xai.images.generate", [Fault.hang(30)])
    with pytest.raises(ProviderError) as caught:
        await xai.generate_image(_image())
    assert caught.value.kind is ErrorKind.TRANSIENT and "0.3 s" in str(caught.value)


async def test_retired_model_names_its_successor(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.retire("grok-imagine-image-quality")
    with pytest.raises(ProviderError) as caught:
        await xai.generate_image(_image(model="grok-imagine-image-quality"))
    error = caught.value
    assert (error.kind, error.status, error.successor) == (ErrorKind.MODEL_RETIRED, 404, "grok-imagine-image-2.0")


async def test_error_carries_status_and_request_id_but_never_the_key(fake: FakeProviders, xai: XAIAdapter) -> None:
    body = {"code": "bad", "error": f"Incorrect API key provided: {KEY}. " + "x" * 500}
    fake.script("xai.images.generate", [Fault.http(400, body, headers={"x-request-id": "req-42"})])
    with pytest.raises(ProviderError) as caught:
        await xai.generate_image(_image())
    error = caught.value
    assert (error.kind, error.status, error.request_id) == (ErrorKind.AUTH, 400, "req-42")
    assert KEY not in str(error) and "testkey" not in str(error) and len(str(error)) <= 220


async def test_missing_key_fails_before_any_request(fake: FakeProviders, build: Build) -> None:
    xai = await build(xai_api_key=None)
    with pytest.raises(ProviderError) as caught:
        await xai.generate_image(_image())
    assert caught.value.kind is ErrorKind.AUTH and str(caught.value) == "no key set (set XAI_API_KEY)"
    assert fake.requests == []


async def test_key_the_server_rejects_is_auth(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.valid_keys = {"some-other-key"}
    with pytest.raises(ProviderError) as caught:
        await xai.write_story(StoryRequest(model="grok-4-fast", prompt="p", scene_count=1))
    assert caught.value.kind is ErrorKind.AUTH


# --- video ----------------------------------------------------------------------------------------


async def test_video_submit_poll_download(fake: FakeProviders, xai: XAIAdapter, tmp_path: Path) -> None:
    fake.video_pending_polls = 3
    request_id = await xai.submit_video(_video(duration=5))

    sent = fake.calls("xai.videos.create")[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "grok-imagine-video" and sent.json["prompt"] == "slow push-in"
    assert sent.json["duration"] == 5
    assert decode_data_url(sent.json["image"]["url"]) == ("image/png", png_bytes(seed="frame"))
    polls = [await xai.poll_video(request_id) for _ in range(4)]
    assert [(poll.state, poll.progress) for poll in polls[:3]] == [(VideoState.PENDING, p) for p in (25, 50, 75)]
    done = polls[3]
    assert done.state is VideoState.DONE and done.url and done.url.endswith(f"/xai/download/{request_id}.mp4")

    dest = tmp_path / "clip.mp4.part"
    await xai.download_video(done, request_id, dest)
    assert _frames(dest) == 6
    assert fake.calls("xai.videos.download")[0].headers["authorization"] == f"Bearer {KEY}"  # same host as the API


async def test_pending_with_an_empty_body(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.video_pending_empty_body = True
    request_id = await xai.submit_video(_video())
    assert await xai.poll_video(request_id) == VideoPoll(state=VideoState.PENDING)


async def test_moderated_clip_is_content_policy(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.script("xai.videos.poll", [Fault.content_policy()])
    request_id = await xai.submit_video(_video())
    with pytest.raises(ProviderError) as caught:
        await xai.poll_video(request_id)
    assert caught.value.kind is ErrorKind.CONTENT_POLICY


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.video_failed("invalid_argument", "bad frame"), "invalid_argument: bad frame"),
        (Fault.video_failed("permission_denied", "nope"), "xAI's moderation blocked the clip: nope"),
        (Fault.http(200, {"status": "expired"}), "the request expired before the clip was fetched"),
    ],
)
async def test_failed_renders(fake: FakeProviders, xai: XAIAdapter, fault: Fault, error: str) -> None:
    fake.script("xai.videos.poll", [fault])
    request_id = await xai.submit_video(_video())
    assert await xai.poll_video(request_id) == VideoPoll(state=VideoState.FAILED, error=error)


async def test_other_statuses_count_as_pending(fake: FakeProviders, xai: XAIAdapter) -> None:
    fake.script("xai.videos.poll", [Fault.http(200, {"status": "processing", "progress": 40})])
    request_id = await xai.submit_video(_video())
    assert await xai.poll_video(request_id) == VideoPoll(state=VideoState.PENDING, progress=40)


async def test_unknown_request_fails(xai: XAIAdapter) -> None:
    poll = await xai.poll_video("no-such-request")
    assert poll.state is VideoState.FAILED and "no longer knows" in (poll.error or "")


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.server_error(503), ErrorKind.TRANSIENT),
        (Fault.malformed(), ErrorKind.TRANSIENT),
        (Fault.rate_limit(retry_after=5), ErrorKind.RATE_LIMITED),
    ],
)
async def test_poll_faults_raise(fake: FakeProviders, xai: XAIAdapter, fault: Fault, kind: ErrorKind) -> None:
    request_id = await xai.submit_video(_video())
    fake.script("xai.videos.poll", [fault])
    with pytest.raises(ProviderError) as caught:
        await xai.poll_video(request_id)
    assert caught.value.kind is kind


@pytest.mark.parametrize(
    ("fault", "kind"),
    [(Fault.content_policy(), ErrorKind.CONTENT_POLICY), (Fault.server_error(500), ErrorKind.TRANSIENT)],
)
async def test_submit_faults_are_not_retried(
    fake: FakeProviders, xai: XAIAdapter, fault: Fault, kind: ErrorKind
) -> None:
    fake.script("xai.videos.create", [fault])
    with pytest.raises(ProviderError) as caught:
        await xai.submit_video(_video())
    assert caught.value.kind is kind and len(fake.calls("xai.videos.create")) == 1


async def _done(fake: FakeProviders, xai: XAIAdapter) -> tuple[str, VideoPoll]:
    fake.video_pending_polls = 0
    request_id = await xai.submit_video(_video())
    return request_id, await xai.poll_video(request_id)


@pytest.mark.parametrize("fault", [Fault.truncated(), Fault.reset()], ids=["truncated", "reset"])
async def test_broken_download_is_transient_and_leaves_no_file(
    fake: FakeProviders, xai: XAIAdapter, tmp_path: Path, fault: Fault
) -> None:
    fake.video_size = 3 * MiB
    request_id, done = await _done(fake, xai)
    fake.script("xai.videos.download", [fault])
    dest = tmp_path / "clip.mp4.part"
    with pytest.raises(ProviderError) as caught:
        await xai.download_video(done, request_id, dest)
    assert caught.value.kind is ErrorKind.TRANSIENT and not dest.exists()


async def test_expired_download_link(fake: FakeProviders, xai: XAIAdapter, tmp_path: Path) -> None:
    request_id, done = await _done(fake, xai)
    fake.video_jobs.clear()  # the fake's bucket then answers 404
    dest = tmp_path / "clip.mp4.part"
    with pytest.raises(ProviderError) as caught:
        await xai.download_video(done, request_id, dest)
    assert (caught.value.kind, caught.value.status) == (ErrorKind.BAD_REQUEST, 404) and not dest.exists()


async def test_download_is_sent_without_the_key_to_another_host(fake: FakeProviders, build: Build) -> None:
    xai = await build(xai_base_url=fake.xai_base_url.replace("127.0.0.1", "localhost"))
    request_id, done = await _done(fake, xai)
    await xai.download_video(done, request_id, Path("clip.mp4"))
    assert "authorization" not in fake.calls("xai.videos.download")[0].headers


async def test_download_memory_stays_flat_for_a_200_mib_clip(
    fake: FakeProviders, xai: XAIAdapter, tmp_path: Path
) -> None:
    fake.video_size = 200 * MiB
    request_id, done = await _done(fake, xai)
    dest = tmp_path / "big.mp4.part"
    gc.collect()
    tracemalloc.start()
    try:
        await xai.download_video(done, request_id, dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dest.stat().st_size == 200 * MiB
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert _frames(dest) == 6
    dest.unlink()


# --- health ---------------------------------------------------------------------------------------


async def test_check(fake: FakeProviders, xai: XAIAdapter) -> None:
    assert await xai.check("grok-imagine-image") is True
    fake.retire("grok-imagine-image")
    assert await xai.check("grok-imagine-image") is False
    assert fake.calls("xai.models.retrieve")[0].path == "/xai/v1/models/grok-imagine-image"
    fake.script("xai.models.retrieve", [Fault.auth()])
    with pytest.raises(ProviderError) as caught:
        await xai.check("grok-imagine-video")
    assert caught.value.kind is ErrorKind.AUTH
