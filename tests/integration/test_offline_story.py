"""A whole story rendered offline with the local models, in burst mode, with every output decoded."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.clock import ServerClock
from bot.domain import AssetStatus, ImageStatus, JobStatus, StoryStatus, VideoStatus
from bot.errors import UserInputError
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import Settings, load_settings
from storage import assets, scenes, stories
from storage import jobs as job_rows
from storage import testing as storage_testing


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Settings:
    """On either engine (the ``engine`` fixture): SQLite at DATABASE_PATH, or PostgreSQL at DATABASE_URL."""
    monkeypatch.chdir(tmp_path)
    return load_settings(
        database_path=tmp_path / "db" / "storybot.db", database_url=database_url, media_dir=tmp_path / "media"
    )


async def test_whole_story_with_video(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "out"
    async with Runtime(settings, out_dir=out) as rt:
        # With PostgreSQL every time stored comes from the server's clock (several hosts, one queue).
        assert isinstance(rt.clock, ServerClock) == (settings.database_url is not None)
        assert abs(rt.clock.now() - time.time()) < 5  # the test server runs on this host
        story = await rt.stories.create(
            StoryOptions(prompt="a lighthouse keeper befriends a storm", scenes=4, video=True)
        )
        stats = await rt.run_until_empty()
        assert stats.failed == 0 and stats.dead == 0

        final = await stories.get(rt.db, story.id)
        assert final is not None and final.status is StoryStatus.COMPLETE
        assert final.title and final.bible
        rows = await scenes.list_for_story(rt.db, story.id)
        assert [s.index for s in rows] == [0, 1, 2, 3]
        for scene in rows:
            assert scene.text.strip()
            assert scene.image_status is ImageStatus.COMPLETE and scene.video_status is VideoStatus.COMPLETE
            with Image.open(scene.image_path) as image:
                assert image.format == "PNG" and image.size == (1024, 576)
            with av.open(scene.video_path) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                frames = sum(1 for _ in container.decode(stream))
            rate = float(stream.average_rate or 24)
            assert abs(frames - rate * settings.video_duration_s) <= 1

        story_assets = await assets.list_for_story(rt.db, story.id)
        assert len(story_assets) == 8
        for asset in story_assets:
            assert asset.status is AssetStatus.COMPLETED and asset.model_used and not asset.fallback_occurred
            data = Path(asset.path or "").read_bytes()
            assert asset.bytes == len(data) and asset.sha256 == hashlib.sha256(data).hexdigest()

        jobs = await job_rows.list_for_story(rt.db, story.id)
        assert jobs and all(job.status is JobStatus.SUCCEEDED for job in jobs)
        # written + 4 images + 4 clips + the finished story, each published once
        assert len(await storage_testing.keys_for_story(rt.db, story.id)) == 10

    page = out / story.id / "index.html"
    text = page.read_text(encoding="utf-8")
    assert final.title in text
    for n in range(1, 5):
        assert f"scene-{n:02d}-image.png" in text and f"scene-{n:02d}-video.mp4" in text
        assert (page.parent / f"scene-{n:02d}-image.png").exists()
        assert (page.parent / f"scene-{n:02d}-video.mp4").exists()
    assert not list(tmp_path.rglob("*.part"))


async def test_rerunning_the_worker_does_nothing_twice(settings: Settings, tmp_path: Path) -> None:
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="a cat who collects moons", scenes=2))
        await rt.run_until_empty()
        before = await assets.list_for_story(rt.db, story.id)
        again = await rt.run_until_empty()
        assert again.succeeded == 0
        assert await assets.list_for_story(rt.db, story.id) == before


async def test_a_story_without_video_has_no_clips(settings: Settings, tmp_path: Path) -> None:
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="two rivers race to the sea", scenes=1))
        await rt.run_until_empty()
        (scene,) = await scenes.list_for_story(rt.db, story.id)
        assert scene.image_status is ImageStatus.COMPLETE
        assert scene.video_status is VideoStatus.NONE and scene.video_path is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (StoryOptions(prompt="   "), "prompt is empty"),
        (StoryOptions(prompt="x" * 1001), "1000 or fewer"),
        (StoryOptions(prompt="ok", scenes=0), "between 1 and 10"),
        (StoryOptions(prompt="ok", scenes=11), "between 1 and 10"),
        (StoryOptions(prompt="ok", image_model="gpt-imag-1.5"), "did you mean"),
        (StoryOptions(prompt="ok", image_model="gpt-image-1.5"), "OPENAI_API_KEY"),
        (StoryOptions(prompt="ok", image_model="local-kenburns"), "video model"),
        (StoryOptions(prompt="ok", video=False, video_model="local-kenburns"), "without video"),
    ],
)
async def test_bad_input_is_refused_and_stores_nothing(
    settings: Settings, tmp_path: Path, options: StoryOptions, message: str
) -> None:
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        with pytest.raises(UserInputError, match=message):
            await rt.stories.create(options)
        assert await storage_testing.list_all(rt.db) == []
        assert sum((await rt.queue.counts()).values()) == 0


@pytest.mark.parametrize("engine", ["sqlite"])  # the staging folder is the point here, not the engine
async def test_a_local_clip_resumed_on_a_machine_without_its_render_is_rendered_again(
    settings: Settings, tmp_path: Path
) -> None:
    """A clip job of local-kenburns interrupted after its submit is resumed where its staged render is not (another
    machine, or after the sweep): rendering again costs nothing, so the clip is made, not given up on."""
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="a kite over the harbour", scenes=1, video=True))
        assert (await rt.run_until_empty()).dead == 0
        [job] = [j for j in await job_rows.list_for_story(rt.db, story.id) if j.kind.value == "render_video"]
        assert job.remote_id and job.remote_id.startswith("local-kenburns")
        async with rt.db.transaction() as conn:  # as it stood when its worker died, after the submit
            await conn.execute(
                "UPDATE jobs SET status = 'queued', attempts = 0, finished_at = NULL, run_after = 0 WHERE id = ?",
                (job.id,),
            )
            await conn.execute("UPDATE media_assets SET status = 'GENERATING' WHERE id = ?", (job.id,))
            await conn.execute("UPDATE scenes SET video_status = 'generating' WHERE story_id = ?", (story.id,))
        assert rt.providers.adapter("local").sweep(-1.0, time.time() + 60) == 1  # this machine has no render

        stats = await rt.run_until_empty()

        assert (stats.dead, stats.failed) == (0, 0), stats
        [again] = [j for j in await job_rows.list_for_story(rt.db, story.id) if j.id == job.id]
        assert again.status is JobStatus.SUCCEEDED and again.remote_id != job.remote_id
        [scene] = await scenes.list_for_story(rt.db, story.id)
        assert scene.video_status is VideoStatus.COMPLETE
        with av.open(scene.video_path) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0
