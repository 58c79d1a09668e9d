"""What a provider sends is checked, and every call has a deadline: the adapters as the pipeline gets them
(``ProviderSet.text/image/video``, real openai / google-genai / httpx clients inside) against the fake
provider server sending broken pictures, broken clips, endless clips, dripping answers and stories of the
wrong shape. Every one is a transient ``ProviderError`` (the router's to retry or fall back on), and no
broken file is left behind."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.clock import FakeClock
from bot.errors import ErrorKind, ProviderError, ProviderTimeout, UnusableAnswer
from bot.media import probe as media_probe
from bot.media.probe import MAX_PICTURE_MEGAPIXELS
from bot.providers import ProviderSet
from bot.providers.base import ImageRequest, ReferenceImage, StoryRequest, VideoPoll, VideoRequest, VideoState
from bot.providers.guard import GuardedProvider
from bot.routing.registry import Registry
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from tests.fakes.providers import FakeProviders, Fault, png_bytes
from tests.fakes.providers_core import BAD_CLIPS, BAD_PICTURES, HTML_PAGE, huge_png, jpeg_bytes

MiB = 1024 * 1024
DEADLINE_S = 1.5
DRIP_S = 0.2  # far inside every client's per-read timeout (DEADLINE_S): only a whole-call deadline ends it
Providers = Callable[..., ProviderSet]

# provider, its image model, the fake's route for a generation
IMAGE_ROUTES = [
    ("openai", "gpt-image-1.5", "openai.images.generate"),
    ("google", "gemini-3.1-flash-image", "google.generate_content"),
    ("xai", "grok-imagine-image", "xai.images.generate"),
]


@pytest.fixture
async def providers(fake: FakeProviders) -> AsyncIterator[Providers]:
    made: list[ProviderSet] = []

    def build(**overrides: Any) -> ProviderSet:
        values: dict[str, Any] = {
            "openai_api_key": "sk-test", "openai_base_url": fake.openai_base_url,
            "gemini_api_key": "gemini-test", "google_gemini_base_url": fake.gemini_base_url,
            "xai_api_key": "xai-test", "xai_base_url": fake.xai_base_url,
            "provider_timeout_s": DEADLINE_S, **overrides,
        }  # fmt: skip
        settings = load_settings(**values)
        made.append(ProviderSet(settings, Registry.load(settings)))
        return made[-1]

    yield build
    for provider_set in made:
        await provider_set.aclose()


def _image(model: str) -> ImageRequest:
    return ImageRequest(model=model, prompt="Mira with her lantern", aspect_ratio="16:9")


def _video() -> VideoRequest:
    frame = ReferenceImage(data=png_bytes(seed="frame"), mime_type="image/png")
    return VideoRequest(model="grok-imagine-video", prompt="slow push-in", image=frame, duration_s=4)


async def _finished_clip(fake: FakeProviders, provider_set: ProviderSet) -> tuple[str, VideoPoll]:
    fake.video_pending_polls = 0
    xai = provider_set.video("xai")
    request_id = await xai.submit_video(_video())
    poll = await xai.poll_video(request_id)
    assert poll.state is VideoState.DONE
    return request_id, poll


# --- pictures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "model", "route"), IMAGE_ROUTES, ids=[p for p, _, _ in IMAGE_ROUTES])
async def test_a_good_picture_passes_with_the_type_it_is(
    fake: FakeProviders, providers: Providers, provider: str, model: str, route: str
) -> None:
    result = await providers().image(provider).generate_image(_image(model))
    with Image.open(io.BytesIO(result.data)) as image:
        image.load()
        assert result.mime_type == Image.MIME[image.format or ""]
    assert len(fake.calls(route)) == 1


@pytest.mark.parametrize("shape", sorted(BAD_PICTURES))
@pytest.mark.parametrize(("provider", "model", "route"), IMAGE_ROUTES, ids=[p for p, _, _ in IMAGE_ROUTES])
async def test_a_picture_that_is_not_what_it_claims_is_an_unusable_answer(
    fake: FakeProviders, providers: Providers, provider: str, model: str, route: str, shape: str
) -> None:
    """HTML labelled as the picture, a picture cut in half, a PNG said to be a JPEG, 48 megapixels."""
    fake.script(route, [Fault.bad_media(shape)])
    with pytest.raises(UnusableAnswer) as caught:
        await providers().image(provider).generate_image(_image(model))
    error = caught.value
    assert error.kind is ErrorKind.TRANSIENT and error.kind.retry_same_model  # the router retries, then falls back
    error.model = model
    assert error.plain() == f"{model} sent a picture that could not be used"
    assert len(fake.calls(route)) == 1


async def test_the_pixel_cap_is_read_from_the_header_before_anything_is_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decoded: list[bytes] = []
    real_probe = media_probe.probe_image
    monkeypatch.setattr(media_probe, "probe_image", lambda data: decoded.append(data) or real_probe(data))
    with pytest.raises(media_probe.ImageTooLarge, match="8000×6000"):
        media_probe.check_picture(huge_png(), "image/png", media_probe.MediaLimits())
    assert decoded == [] and MAX_PICTURE_MEGAPIXELS * 1_000_000 < 8000 * 6000


# --- clips ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", sorted(set(BAD_CLIPS) - {"endless"}))
async def test_a_clip_that_is_not_an_h264_mp4_within_the_caps_is_refused_and_removed(
    fake: FakeProviders, providers: Providers, tmp_path: Path, shape: str
) -> None:
    """An HTML page served as video/mp4, MPEG-4 Part 2 in an MP4, H.264 in Matroska, a 40 s clip."""
    provider_set = providers()
    request_id, poll = await _finished_clip(fake, provider_set)
    fake.script("xai.videos.download", [Fault.bad_media(shape)])
    dest = tmp_path / "clip.mp4.part"
    with pytest.raises(UnusableAnswer) as caught:
        await provider_set.video("xai").download_video(poll, request_id, dest)
    assert caught.value.kind is ErrorKind.TRANSIENT and caught.value.what == "a clip"
    assert not dest.exists()
    await provider_set.video("xai").download_video(poll, request_id, dest)  # the next, good one is taken
    assert dest.stat().st_size > 0


async def test_a_clip_that_never_ends_stops_at_the_byte_cap(
    fake: FakeProviders, providers: Providers, tmp_path: Path
) -> None:
    cap = 4 * MiB
    provider_set = providers(max_clip_bytes=cap, provider_timeout_s=60.0)
    request_id, poll = await _finished_clip(fake, provider_set)
    fake.script("xai.videos.download", [Fault.bad_media("endless")])
    dest = tmp_path / "clip.mp4.part"
    started = time.perf_counter()
    with pytest.raises(UnusableAnswer, match="MAX_CLIP_BYTES"):
        await provider_set.video("xai").download_video(poll, request_id, dest)
    assert time.perf_counter() - started < 30  # refused on the bytes, long before the 60 s deadline
    assert not dest.exists()
    await asyncio.sleep(0.2)  # let the server notice the client has gone
    # What the server managed to send: the cap, one 1 MiB read chunk and what the sockets buffer, not more.
    assert cap < fake.clip_bytes_sent < cap + 8 * MiB, fake.clip_bytes_sent


async def test_a_clip_announced_over_the_cap_is_refused_before_it_is_read(
    fake: FakeProviders, providers: Providers, tmp_path: Path
) -> None:
    cap = 2 * MiB
    provider_set = providers(max_clip_bytes=cap)
    request_id, poll = await _finished_clip(fake, provider_set)
    fake.video_size = 64 * MiB
    dest = tmp_path / "clip.mp4.part"
    with pytest.raises(UnusableAnswer, match="announced"):
        await provider_set.video("xai").download_video(poll, request_id, dest)
    assert not dest.exists()
    await asyncio.sleep(0.2)
    assert fake.clip_bytes_sent < 32 * MiB  # at most what the sockets took before the client hung up


# --- deadlines --------------------------------------------------------------------------------------


async def _gives_up(call: Any) -> tuple[ProviderError, float]:
    started = time.perf_counter()
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value, time.perf_counter() - started


def _story(p: ProviderSet) -> Any:
    return p.text("openai").write_story(StoryRequest(model="gpt-5-mini", prompt="x", scene_count=3))


DRIPPED_CALLS: list[tuple[str, str, Callable[[ProviderSet], Any]]] = [
    ("openai", "openai.chat", _story),
    ("openai", "openai.images.generate", lambda p: p.image("openai").generate_image(_image("gpt-image-1.5"))),
    ("google", "google.generate_content", lambda p: p.image("google").generate_image(_image("gemini-3.1-flash-image"))),
    ("xai", "xai.images.generate", lambda p: p.image("xai").generate_image(_image("grok-imagine-image"))),
    ("xai", "xai.videos.create", lambda p: p.video("xai").submit_video(_video())),
]


@pytest.mark.parametrize(
    ("provider", "route", "call"),
    DRIPPED_CALLS,
    ids=["openai-story", "openai-image", "google-image", "xai-image", "xai-submit"],
)
async def test_a_server_that_drips_its_answer_is_given_up_on_at_the_deadline(
    fake: FakeProviders, providers: Providers, provider: str, route: str, call: Callable[[ProviderSet], Any]
) -> None:
    fake.fail_always(route, Fault.drip(DRIP_S))
    error, seconds = await _gives_up(call(providers()))
    assert error.kind is ErrorKind.TRANSIENT
    # genai's own timeout is a total one too (aiohttp's): either may fire first, at the same moment.
    assert isinstance(error, ProviderTimeout) or provider == "google"
    assert DEADLINE_S * 0.9 <= seconds < DEADLINE_S + 5
    assert 0 < fake.dripped_bytes < 100  # it was still dripping: the whole answer would take minutes


async def test_a_dripping_clip_download_is_given_up_on_and_removed(
    fake: FakeProviders, providers: Providers, tmp_path: Path
) -> None:
    provider_set = providers()
    request_id, poll = await _finished_clip(fake, provider_set)
    fake.script("xai.videos.download", [Fault.drip(DRIP_S)])
    dest = tmp_path / "clip.mp4.part"
    error, seconds = await _gives_up(provider_set.video("xai").download_video(poll, request_id, dest))
    assert isinstance(error, ProviderTimeout) and DEADLINE_S * 0.9 <= seconds < DEADLINE_S + 5
    assert error.plain() == f"the model did not answer within {DEADLINE_S:g} s"
    assert not dest.exists()


async def test_the_local_provider_has_no_deadline(providers: Providers) -> None:
    # Clips render on this machine, and a long one may outlast a short PROVIDER_TIMEOUT_S; nothing can drip.
    guarded = providers(provider_timeout_s=0.001).video("local")
    assert isinstance(guarded, GuardedProvider) and guarded.deadline_s is None
    request_id = await guarded.submit_video(_video().model_copy(update={"model": "local-kenburns"}))
    assert request_id


# --- stories ----------------------------------------------------------------------------------------

GOOD = {"title": "T", "bible": "Mira, red scarf.", "scenes": ["one.", "two.", "three."]}


@pytest.mark.parametrize(
    "reply",
    [
        "Once upon a time, in prose.",
        json.dumps([GOOD]),
        json.dumps({**GOOD, "title": 42}),
        json.dumps({**GOOD, "title": "   "}),
        json.dumps({**GOOD, "title": "T" * 201}),
        json.dumps({k: v for k, v in GOOD.items() if k != "bible"}),
        json.dumps({**GOOD, "bible": ["Mira"]}),
        json.dumps({**GOOD, "scenes": "one. two. three."}),
        json.dumps({**GOOD, "scenes": ["one.", {"text": "two."}, "three."]}),
        json.dumps({**GOOD, "scenes": ["one.", "", "three."]}),
        json.dumps({**GOOD, "scenes": ["one.", "two.", "x" * 1501]}),
        json.dumps({**GOOD, "scenes": ["one.", "two."]}),
        json.dumps({**GOOD, "scenes": ["s."] * 51}),
    ],
    ids=[
        "prose", "array", "number-title", "blank-title", "long-title", "no-bible", "list-bible", "string-scenes",
        "object-scene", "empty-scene", "long-scene", "too-few-scenes", "hundreds-of-scenes",
    ],
)  # fmt: skip
async def test_a_story_of_the_wrong_shape_is_an_unusable_answer(
    fake: FakeProviders, providers: Providers, reply: str
) -> None:
    fake.text_reply = reply
    with pytest.raises(UnusableAnswer) as caught:
        await providers().text("openai").write_story(StoryRequest(model="gpt-5-mini", prompt="x", scene_count=3))
    assert caught.value.kind is ErrorKind.TRANSIENT and caught.value.what == "a story"


@pytest.mark.parametrize("provider", ["google", "xai"])
async def test_every_chat_adapter_holds_stories_to_the_schema(
    fake: FakeProviders, providers: Providers, provider: str
) -> None:
    model = {"google": "gemini-3-flash", "xai": "grok-4-fast"}[provider]
    fake.text_reply = json.dumps({**GOOD, "scenes": [1, 2, 3]})
    with pytest.raises(UnusableAnswer):
        await providers().text(provider).write_story(StoryRequest(model=model, prompt="x", scene_count=3))
    fake.text_reply = "```json\n" + json.dumps({**GOOD, "scenes": ["  one. ", "two.", "three.", "four."]}) + "\n```"
    draft = await providers().text(provider).write_story(StoryRequest(model=model, prompt="x", scene_count=3))
    assert draft.scenes == ["one.", "two.", "three."] and draft.title == "T"


# --- off the event loop -----------------------------------------------------------------------------


async def test_pictures_and_clips_are_checked_off_the_event_loop(
    fake: FakeProviders, providers: Providers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    for name in ("check_picture", "check_clip"):
        real = getattr(media_probe, name)

        def spy(*args: Any, _real: Any = real) -> Any:
            threads.append(threading.current_thread().name)
            return _real(*args)

        monkeypatch.setattr(f"bot.providers.guard.{name}", spy)
    provider_set = providers()
    await provider_set.image("xai").generate_image(_image("grok-imagine-image"))
    request_id, poll = await _finished_clip(fake, provider_set)
    await provider_set.video("xai").download_video(poll, request_id, tmp_path / "clip.mp4")
    assert len(threads) == 2 and threading.main_thread().name not in threads


async def test_a_reference_is_decoded_once_per_command_and_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.runtime import Runtime

    decodes: list[str] = []
    real = media_probe.decode_picture

    def spy(data: bytes, limits: media_probe.MediaLimits) -> media_probe.ImageInfo:
        decodes.append(threading.current_thread().name)
        return real(data, limits)

    monkeypatch.setattr("bot.services.stories.decode_picture", spy)
    settings = load_settings(database_path=tmp_path / "db.sqlite", media_dir=tmp_path / "media")
    async with Runtime(settings, clock=FakeClock()) as rt:
        options = StoryOptions(prompt="a fox", scenes=1, reference=jpeg_bytes(640, 480, seed="ref"), owner_id=7)
        # What /story new does: prepare (to check the limits), prepare again with the reference, then create.
        await rt.stories.prepare(options)
        await rt.stories.prepare(options)
        story = await rt.stories.create(options)
        assert Path(story.reference_path or "").suffix == ".jpg"
        assert len(decodes) == 1 and decodes[0] != threading.main_thread().name
        bad = StoryOptions(prompt="a fox", scenes=1, reference=HTML_PAGE, owner_id=7)
        for _ in range(2):
            with pytest.raises(Exception, match="not an image"):
                await rt.stories.prepare(bad)
        assert len(decodes) == 2  # a refusal is remembered too
