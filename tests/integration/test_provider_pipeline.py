"""Whole stories through the real adapters (real SDKs) against the fake providers on 127.0.0.1:
the happy path, fallback with a plain warning, content policy, reference-aware routing, the local
last resort, and a SIGKILL between video submit and download that resumes polling the same request."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from bot.domain import AssetKind, ImageStatus, JobKind, JobStatus, StoryStatus, VideoStatus
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import Settings, load_settings
from storage import assets, scenes, stories
from storage import jobs as job_rows
from storage import testing as storage_testing
from tests.fakes.providers import FakeProviders, Fault, png_bytes
from tests.support.providers import provider_env


@pytest.fixture
def settings(fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in provider_env(fake, tmp_path).items():
        monkeypatch.setenv(name, value)
    return load_settings()


async def render(settings: Settings, tmp_path: Path, **options: Any) -> tuple[Runtime, str]:
    rt = await Runtime(settings, out_dir=tmp_path / "out").open()
    story = await rt.stories.create(StoryOptions(prompt="a girl and her lantern", **options))
    stats = await rt.run_until_empty()
    assert stats.dead == 0
    return rt, story.id


def data_url_bytes(url: str) -> bytes:
    return base64.b64decode(url.split(",", 1)[1])


async def test_a_story_with_real_providers(settings: Settings, fake: FakeProviders, tmp_path: Path) -> None:
    rt, story_id = await render(settings, tmp_path, scenes=2, video=True)
    try:
        story = await stories.get(rt.db, story_id)
        assert story is not None and story.status is StoryStatus.COMPLETE
        assert story.title == "The Lantern Keeper" and story.text_model == "gpt-5-mini"
        rows = await scenes.list_for_story(rt.db, story_id)
        assert [s.image_model_used for s in rows] == ["gpt-image-1.5"] * 2
        assert [s.video_model_used for s in rows] == ["grok-imagine-video"] * 2

        assert len(fake.calls("openai.chat")) == 1
        (generate,) = fake.calls("openai.images.generate")
        assert "Mira" in generate.json["prompt"]  # the character bible goes into every image prompt
        # Consistency: scene 2 is an edit that carries scene 1's picture as its reference.
        (edit,) = fake.calls("openai.images.edit")
        assert edit.form("input_fidelity") == "high"
        sent = [part for name in ("image", "image[]") for part in edit.files.get(name, [])]
        assert sent == [Path(rows[0].image_path or "").read_bytes()]

        creates = fake.calls("xai.videos.create")
        assert len(creates) == 2
        sent_frames = {data_url_bytes(c.json["image"]["url"]) for c in creates}
        assert sent_frames == {Path(s.image_path or "").read_bytes() for s in rows}
        for scene in rows:
            with av.open(scene.video_path) as container:
                assert sum(1 for _ in container.decode(video=0)) > 0
        for asset in await assets.list_for_story(rt.db, story_id):
            assert not asset.fallback_occurred and asset.generation_metadata.get("warnings") in ([], None)
    finally:
        await rt.close()


async def test_a_rate_limited_model_falls_back_and_says_so(
    settings: Settings, fake: FakeProviders, tmp_path: Path
) -> None:
    fake.fail_always("openai.images.generate", Fault.rate_limit())
    rt, story_id = await render(settings, tmp_path, scenes=1)
    try:
        (scene,) = await scenes.list_for_story(rt.db, story_id)
        assert scene.image_status is ImageStatus.COMPLETE and scene.image_model_used == "gemini-3.1-flash-image"
        assert len(fake.calls("openai.images.generate")) == settings.routing["image"].max_retries
        warning = "gpt-image-1.5 was rate-limited; drawn with gemini-3.1-flash-image instead"
        (asset,) = await storage_testing.list_for_scene(rt.db, scene.id, AssetKind.IMAGE)
        assert asset.fallback_occurred and asset.model_requested == "gpt-image-1.5"
        assert asset.generation_metadata["warnings"] == [warning]
        jobs = await job_rows.list_for_story(rt.db, story_id)
        (image_job,) = [job for job in jobs if job.kind is JobKind.RENDER_IMAGE]
        assert image_job.generation_warnings == [warning] and image_job.model_fallback_occurred
        page = (tmp_path / "out" / story_id / "index.html").read_text(encoding="utf-8")
        assert "Drawn with gemini-3.1-flash-image (fallback)" in page
    finally:
        await rt.close()


async def test_a_content_policy_block_fails_the_scene_with_a_rephrase_hint(
    settings: Settings, fake: FakeProviders, tmp_path: Path
) -> None:
    fake.fail_always("openai.images.generate", Fault.content_policy())
    rt, story_id = await render(settings, tmp_path, scenes=1)
    try:
        (scene,) = await scenes.list_for_story(rt.db, story_id)
        assert scene.image_status is ImageStatus.FAILED
        assert "blocked" in (scene.image_error or "") and "rephras" in (scene.image_error or "")
        assert len(fake.calls("openai.images.generate")) == 1  # never retried on the same model
        assert fake.calls("google.generate_content") == [] and fake.calls("xai.images.generate") == []
        story = await stories.get(rt.db, story_id)
        assert story is not None and story.status is StoryStatus.FAILED
        (image_job,) = [j for j in await job_rows.list_for_story(rt.db, story_id) if j.kind is JobKind.RENDER_IMAGE]
        assert image_job.status is JobStatus.FAILED and image_job.attempts == 1
    finally:
        await rt.close()


async def test_a_reference_story_never_falls_back_to_a_model_without_references(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[[models]]\nkey = "gemini-3.1-flash-image"\nsupports_references = false\n', encoding="utf-8")
    for name, value in provider_env(fake, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODELS_FILE", str(models))
    fake.fail_always("openai.images.edit", Fault.auth())
    reference = png_bytes(64, 48)
    rt, story_id = await render(load_settings(), tmp_path, scenes=2, reference=reference)
    try:
        rows = await scenes.list_for_story(rt.db, story_id)
        assert [s.image_model_used for s in rows] == ["grok-imagine-image"] * 2
        assert fake.calls("google.generate_content") == []
        edits = fake.calls("xai.images.edit")
        assert len(edits) == 2 and all(data_url_bytes(e.json["image"]["url"]) == reference for e in edits)
        story = await stories.get(rt.db, story_id)
        assert story is not None and Path(story.reference_path or "").read_bytes() == reference
    finally:
        await rt.close()


async def test_the_local_model_is_the_last_resort_and_says_so(
    settings: Settings, fake: FakeProviders, tmp_path: Path
) -> None:
    for route in ("openai.images.generate", "google.generate_content", "xai.images.generate"):
        fake.fail_always(route, Fault.server_error(500))
    rt, story_id = await render(settings, tmp_path, scenes=1, text_model="local-template")
    try:
        (scene,) = await scenes.list_for_story(rt.db, story_id)
        assert scene.image_model_used == "local-sketch"
        (asset,) = await storage_testing.list_for_scene(rt.db, scene.id, AssetKind.IMAGE)
        assert asset.generation_metadata["warnings"][0].endswith("drawn with local-sketch instead")
    finally:
        await rt.close()


async def test_a_crash_after_video_submit_resumes_polling_the_same_request(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.video_pending_polls = 10**6  # the clip never finishes while the first process lives
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")} | provider_env(fake, tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "story", "a girl and her lantern", "--scenes", "1", "--video",
        "--out", str(tmp_path / "out"), env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    db = tmp_path / "storybot.db"

    def remote_ids() -> list[str]:
        if not db.exists():
            return []
        with sqlite3.connect(db, timeout=5) as conn:
            try:
                rows = conn.execute("SELECT remote_id FROM jobs WHERE kind = 'render_video' AND remote_id IS NOT NULL")
                return [row[0] for row in rows]
            except sqlite3.OperationalError:
                return []

    for _ in range(600):
        if remote_ids() and len(fake.calls("xai.videos.poll")) >= 2:
            break
        assert proc.returncode is None
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    (remote,) = remote_ids()
    request_id = remote.split("|", 1)[1]

    fake.video_pending_polls = 0
    for name, value in provider_env(fake, tmp_path).items():
        monkeypatch.setenv(name, value)
    async with Runtime(load_settings(), out_dir=tmp_path / "out") as rt:
        stats = await rt.run_until_empty()
        assert stats.dead == 0 and stats.failed == 0
        (story,) = await storage_testing.list_all(rt.db)
        assert story.status is StoryStatus.COMPLETE
        (scene,) = await scenes.list_for_story(rt.db, story.id)
        assert scene.video_status is VideoStatus.COMPLETE
    assert len(fake.calls("xai.videos.create")) == 1  # no second video paid for
    assert all(request_id in call.path for call in fake.calls("xai.videos.poll"))


async def test_transient_poll_errors_on_a_paid_clip_do_not_spend_attempts(
    settings: Settings, fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.pipeline.video.TRANSIENT_WAIT_S", 0.01)
    outages = settings.job_max_attempts + 2  # more than the job's attempts: each one must be given back
    fake.script("xai.videos.poll", [Fault.server_error(503)] * outages)
    rt, story_id = await render(settings, tmp_path, scenes=1, video=True)
    try:
        [scene] = await scenes.list_for_story(rt.db, story_id)
        assert scene.video_status is VideoStatus.COMPLETE
        [video_job] = [j for j in await job_rows.list_for_story(rt.db, story_id) if j.kind is JobKind.RENDER_VIDEO]
        assert video_job.status is JobStatus.SUCCEEDED and video_job.attempts == 1
        assert len(fake.calls("xai.videos.create")) == 1  # polled through the outage, never paid twice
        assert len(fake.calls("xai.videos.poll")) > outages
    finally:
        await rt.close()


async def test_broken_pictures_are_retried_then_fall_back_and_are_never_stored(
    settings: Settings, fake: FakeProviders, tmp_path: Path
) -> None:
    """Every real provider answers 200 with an HTML page, a cut-off PNG or 48 megapixels where the picture
    should be: each is retried on its model, then the next model is tried, and the local model draws it."""
    fake.fail_always("openai.images.generate", Fault.bad_media("html"))
    fake.fail_always("google.generate_content", Fault.bad_media("truncated"))
    fake.fail_always("xai.images.generate", Fault.bad_media("huge"))
    rt, story_id = await render(settings, tmp_path, scenes=1, text_model="local-template")
    try:
        (scene,) = await scenes.list_for_story(rt.db, story_id)
        assert scene.image_status is ImageStatus.COMPLETE and scene.image_model_used == "local-sketch"
        retries = settings.routing["image"].max_retries
        for route in ("openai.images.generate", "google.generate_content", "xai.images.generate"):
            assert len(fake.calls(route)) == retries, route
        (asset,) = await storage_testing.list_for_scene(rt.db, scene.id, AssetKind.IMAGE)
        assert asset.generation_metadata["warnings"] == [
            "gpt-image-1.5 sent a picture that could not be used; gemini-3.1-flash-image sent a picture that could "
            "not be used; grok-imagine-image sent a picture that could not be used; drawn with local-sketch instead"
        ]
        stored = sorted(p for p in (tmp_path / "media").rglob("*") if p.is_file() and ".staging" not in p.parts)
        assert [p.name for p in stored] == [Path(scene.image_path or "").name]  # only the local model's picture
        with Image.open(stored[0]) as picture:
            picture.load()
            assert picture.format == "PNG"
    finally:
        await rt.close()


async def test_an_unusable_clip_fails_once_and_is_never_downloaded_again(
    settings: Settings, fake: FakeProviders, tmp_path: Path
) -> None:
    """A clip that is not an H.264 MP4: the same URL would serve the same bytes, so the clip fails with a
    plain sentence (its Retry button asks for a new render) instead of being fetched again and again."""
    fake.video_pending_polls = 0
    fake.fail_always("xai.videos.download", Fault.bad_media("not-h264"))
    rt, story_id = await render(settings, tmp_path, scenes=1, video=True, text_model="local-template")
    try:
        (scene,) = await scenes.list_for_story(rt.db, story_id)
        assert scene.image_status is ImageStatus.COMPLETE and scene.video_status is VideoStatus.FAILED
        assert scene.video_error == "grok-imagine-video sent a clip that could not be used"
        assert len(fake.calls("xai.videos.download")) == 1 and len(fake.calls("xai.videos.create")) == 1
        assert scene.video_path is None
        assert not [p for p in (tmp_path / "media").rglob("*.mp4") if ".staging" not in p.parts]
    finally:
        await rt.close()
