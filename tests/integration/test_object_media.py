"""Media in S3-compatible object storage (MEDIA_URL): the real obstore client against moto's S3 server on 127.0.0.1.

Each test gets its own bucket (``s3_bucket``, tests/support/s3.py). "Another host" is a second MediaStore with
an empty MEDIA_DIR: all it shares with the first is the bucket (and, for a story, the database).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import logging
import os
import random
import uuid
from pathlib import Path
from typing import BinaryIO

import av
import pytest
from PIL import Image

from bot.domain import AssetKind, ImageStatus, StoryStatus, VideoStatus
from bot.errors import MediaStoreError, MediaWriteError
from bot.media import objects
from bot.media.store import MediaStore, StoredFile
from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import Settings, load_settings
from storage import assets, scenes, stories
from tests.fakes.providers_core import padded_mp4_chunks, tiny_mp4
from tests.support.s3 import Bucket

MiB = 1024 * 1024
PREFIX = "media/v1"


def store_for(bucket: Bucket, root: Path, **overrides: str) -> MediaStore:
    """A MediaStore built as the Runtime builds it, from settings naming ``bucket`` (MEDIA_DIR ``root``)."""
    settings = load_settings(media_dir=root, **{**bucket.settings(PREFIX), **overrides})
    return MediaStore.from_settings(settings)


def new_story_id() -> str:
    return uuid.uuid4().hex


def noisy_png(side: int = 600) -> bytes:
    """A real PNG of about 1 MB: random pixels barely compress."""
    rng = random.Random(side)
    image = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_clip(path: Path, size: int) -> None:
    """A playable MP4 of exactly ``size`` bytes (a tiny clip, then a ``free`` box), written chunk by chunk."""
    with path.open("wb") as handle:
        for chunk in padded_mp4_chunks(tiny_mp4(), size):
            handle.write(chunk)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


async def commit_clip(store: MediaStore, story_id: str, size: int) -> StoredFile:
    """A clip as the video handler stores one: written to the temp path beside its final path, then committed."""
    final = store.path_for(story_id, "mp4")
    temp = store.temp_path(final)
    await asyncio.to_thread(write_clip, temp, size)
    return await store.commit(temp, final)


def parts(tree: Path) -> list[Path]:
    return sorted(tree.rglob("*.part"))


# -- one host writes, another reads --------------------------------------------------------------


async def test_a_picture_and_a_clip_written_on_one_host_are_read_on_another(s3_bucket: Bucket, tmp_path: Path) -> None:
    writer = store_for(s3_bucket, tmp_path / "host-a")
    story_id = new_story_id()
    picture = noisy_png()
    stored_picture = await writer.write_bytes(story_id, picture, "png")
    stored_clip = await commit_clip(writer, story_id, 3 * MiB)

    for stored in (stored_picture, stored_clip):
        key = f"{PREFIX}/{story_id}/{stored.path.name}"
        assert stored.ref == f"s3://{s3_bucket.name}/{key}"  # what rows keep: no host path, no credentials
        assert stored.path.is_file()  # the writer's own copy stays as its cache
        assert s3_bucket.read(key) == stored.path.read_bytes()
    assert s3_bucket.keys() == sorted(f"{PREFIX}/{story_id}/{s.path.name}" for s in (stored_picture, stored_clip))
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"{PREFIX}/{story_id}/{stored_clip.path.name}")
    assert head["ContentType"] == "video/mp4"

    reader = store_for(s3_bucket, tmp_path / "host-b")  # another host: an empty MEDIA_DIR, the same bucket
    got_picture = await reader.local_file(stored_picture.ref)
    got_clip = await reader.local_file(stored_clip.ref)
    assert got_picture == tmp_path / "host-b" / story_id / stored_picture.path.name
    assert got_clip == tmp_path / "host-b" / story_id / stored_clip.path.name
    assert got_picture.read_bytes() == picture and sha256_of(got_clip) == stored_clip.sha256
    with Image.open(got_picture) as image:
        assert image.format == "PNG" and image.size == (600, 600)
    with av.open(str(got_clip)) as container:
        assert container.streams.video[0].codec_context.name == "h264"

    # Cached now: the next read is the same file, not a second download; several readers at once share one.
    before = got_clip.stat().st_mtime_ns
    again = await asyncio.gather(*(reader.local_file(stored_clip.ref) for _ in range(5)))
    assert again == [got_clip] * 5 and got_clip.stat().st_mtime_ns == before
    third = store_for(s3_bucket, tmp_path / "host-c")
    together = await asyncio.gather(*(third.local_file(stored_clip.ref) for _ in range(4)))
    assert len(set(together)) == 1 and sha256_of(together[0]) == stored_clip.sha256
    assert parts(tmp_path) == []

    # An object the store no longer has reads as none; a local path is handed back as it is.
    gone = stored_picture.ref.replace(stored_picture.path.stem, uuid.uuid4().hex)
    assert await reader.local_file(gone) is None
    assert await reader.local_file(str(stored_picture.path)) == stored_picture.path


async def test_a_story_deleted_takes_its_objects_with_it(s3_bucket: Bucket, tmp_path: Path) -> None:
    store = store_for(s3_bucket, tmp_path / "media")
    keep, drop = new_story_id(), new_story_id()
    kept = await store.write_bytes(keep, b"\x89PNG kept", "png")
    for _ in range(3):
        await store.write_bytes(drop, b"\x89PNG dropped", "png")
    assert await store.delete_story_objects(drop) == 3
    assert s3_bucket.keys() == [f"{PREFIX}/{keep}/{kept.path.name}"]
    discarded = await store.write_bytes(keep, b"\x89PNG never stored", "png")
    await store.discard(discarded)
    assert s3_bucket.keys() == [f"{PREFIX}/{keep}/{kept.path.name}"] and not discarded.path.exists()


# -- atomic writes ----------------------------------------------------------------------------------


class BrokenDisk:
    """A file whose reads fail as a failing disk's do."""

    def read(self, size: int = -1) -> bytes:
        raise OSError(errno.EIO, "Input/output error")


def failing_reads(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """Make the upload's reads of the local file fail once ``after`` chunks were read (and sent)."""
    real = objects._read
    count = 0

    async def read(handle: BinaryIO) -> bytes:
        nonlocal count
        count += 1
        return await real(BrokenDisk() if count > after else handle)  # type: ignore[arg-type]

    monkeypatch.setattr(objects, "_read", read)


@pytest.mark.parametrize("how", ["read_error", "cancelled"])
async def test_a_write_that_fails_midway_leaves_nothing_at_the_final_key(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    store = store_for(s3_bucket, tmp_path / "media")
    story_id = new_story_id()
    final = store.path_for(story_id, "mp4")
    temp = store.temp_path(final)
    await asyncio.to_thread(write_clip, temp, 12 * MiB)
    # 7 chunks of 1 MiB read: the first 5 MiB part is uploaded, the second is on its way.
    if how == "read_error":
        failing_reads(monkeypatch, 7)
        with pytest.raises(MediaWriteError, match="could not read"):
            await store.commit(temp, final)
    else:
        started = asyncio.Event()
        real = objects._read

        async def slow_read(handle: BinaryIO) -> bytes:
            chunk = await real(handle)
            if handle.tell() > 7 * MiB:
                started.set()
                await asyncio.sleep(60)
            return chunk

        monkeypatch.setattr(objects, "_read", slow_read)
        task = asyncio.create_task(store.commit(temp, final))
        await asyncio.wait_for(started.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert s3_bucket.keys() == []  # nothing at the final key (or any other)
    assert s3_bucket.pending_uploads() == []  # and the multipart upload was aborted: no hidden parts
    assert not final.exists() and not temp.exists() and parts(tmp_path) == []


# -- streaming -------------------------------------------------------------------------------------


def _status_mib(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise LookupError(field)


class PeakGrowth:
    """The process's peak RSS growth over a block: VmHWM reset at the start (``/proc/self/clear_refs``), minus
    the RSS then. None where Linux does not let us reset the peak."""

    def __init__(self) -> None:
        self.mib: float | None = None

    def __enter__(self) -> PeakGrowth:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self._base = _status_mib("VmRSS")
        except (OSError, LookupError):
            self._base = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._base is not None:
            self.mib = _status_mib("VmHWM") - self._base


async def test_a_large_clip_streams_both_ways_without_being_held_in_memory(
    s3_bucket: Bucket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    size = 40 * MiB
    writer = store_for(s3_bucket, tmp_path / "host-a")
    story_id = new_story_id()
    final = writer.path_for(story_id, "mp4")
    temp = writer.temp_path(final)
    await asyncio.to_thread(write_clip, temp, size)
    caplog.set_level(logging.DEBUG, logger="bot.media.objects")

    with PeakGrowth() as upload:
        stored = await writer.commit(temp, final)
    key = f"{PREFIX}/{story_id}/{final.name}"
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key)
    assert head["ContentLength"] == size
    # A multipart upload of 5 MiB parts: S3 gives such an object the ETag "<md5 of the parts' md5s>-<parts>".
    assert head["ETag"].strip('"').endswith(f"-{size // objects.PART_BYTES}")

    reader = store_for(s3_bucket, tmp_path / "host-b")
    with PeakGrowth() as download:
        got = await reader.local_file(stored.ref)
    assert got is not None and got.stat().st_size == size and sha256_of(got) == stored.sha256
    with av.open(str(got)) as container:
        assert container.streams.video[0].codec_context.name == "h264"

    fetched = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"fetched {key} in ")]
    assert len(fetched) == 1 and int(fetched[0].split(" in ")[1].split()[0]) >= 10  # about 1 MiB a chunk
    if upload.mib is None or download.mib is None:
        pytest.skip("this kernel does not let a process reset its peak RSS; the chunked paths were checked")
    # Neither direction held the clip: an upload holds about two 5 MiB parts (11-12 MiB measured, whatever the
    # clip's size), a download a chunk or two (about 6 MiB).
    assert upload.mib < size / MiB / 2, f"upload grew the peak RSS by {upload.mib:.1f} MiB"
    assert download.mib < size / MiB / 2, f"download grew the peak RSS by {download.mib:.1f} MiB"


# -- failures in plain words -----------------------------------------------------------------------


def assert_plain(error: BaseException, *secrets: str) -> None:
    text = str(error)
    assert error.__cause__ is None and error.__suppress_context__  # the store's own reply is not chained on
    for secret in secrets:
        assert secret not in text
    assert "Error performing" not in text and "<?xml" not in text


async def test_wrong_credentials_are_refused_in_plain_words_without_the_key(
    s3_bucket: Bucket, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = store_for(s3_bucket, tmp_path / "good")
    story_id = new_story_id()
    stored = await good.write_bytes(story_id, b"\x89PNG picture", "png")
    wrong_secret = "wrong-secret-" + uuid.uuid4().hex
    wrong_key = "AKIAWRONGKEY" + uuid.uuid4().hex[:8].upper()
    caplog.set_level(logging.WARNING)
    for overrides in ({"media_secret_access_key": wrong_secret}, {"media_access_key_id": wrong_key}):
        bad = store_for(s3_bucket, tmp_path / "bad", **overrides)
        with pytest.raises(MediaStoreError, match="refused the credentials; check MEDIA_ACCESS_KEY_ID") as caught:
            await bad.write_bytes(story_id, b"\x89PNG another", "png")
        assert_plain(caught.value, wrong_secret, wrong_key, s3_bucket.secret_access_key, s3_bucket.access_key_id)
        assert list((tmp_path / "bad" / story_id).iterdir()) == []  # the local copy went with the failed write
        with pytest.raises(MediaStoreError, match="could not read a file from the media storage") as caught:
            await bad.local_file(stored.ref)
        assert_plain(caught.value, wrong_secret, wrong_key)
    assert s3_bucket.keys() == [f"{PREFIX}/{story_id}/{stored.path.name}"]
    assert parts(tmp_path) == []
    # The log has the store's reply, with every key and secret masked (bot.settings registers them).
    logged = caplog.text
    assert "InvalidAccessKeyId" in logged or "SignatureDoesNotMatch" in logged
    for secret in (wrong_secret, wrong_key, s3_bucket.secret_access_key, s3_bucket.access_key_id):
        assert secret not in logged


async def test_an_unreachable_endpoint_is_said_in_plain_words(
    s3_bucket: Bucket, tmp_path: Path, reserved_port: int
) -> None:
    store = store_for(s3_bucket, tmp_path / "media", media_endpoint_url=f"http://127.0.0.1:{reserved_port}")
    story_id = new_story_id()
    with pytest.raises(MediaStoreError, match="it could not be reached; check MEDIA_ENDPOINT_URL") as caught:
        await store.write_bytes(story_id, b"\x89PNG picture", "png")
    assert_plain(caught.value, s3_bucket.secret_access_key, s3_bucket.access_key_id)
    with pytest.raises(MediaStoreError, match="could not be reached") as caught:
        await store.local_file(f"s3://{s3_bucket.name}/{PREFIX}/{story_id}/{uuid.uuid4().hex}.png")
    assert_plain(caught.value, s3_bucket.secret_access_key)
    assert list((tmp_path / "media" / story_id).iterdir()) == [] and parts(tmp_path) == []


# -- a whole story -----------------------------------------------------------------------------------


@pytest.fixture
def object_settings(s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    return load_settings(
        database_path=tmp_path / "db" / "storybot.db", media_dir=tmp_path / "host-a", **s3_bucket.settings(PREFIX)
    )


async def test_an_offline_story_with_media_url_lands_whole_in_the_bucket(
    object_settings: Settings, s3_bucket: Bucket, tmp_path: Path
) -> None:
    async with Runtime(object_settings, out_dir=tmp_path / "out-a") as rt:
        story = await rt.stories.create(
            StoryOptions(prompt="a lighthouse keeper befriends a storm", scenes=2, video=True)
        )
        stats = await rt.run_until_empty()
        assert stats.failed == 0 and stats.dead == 0
        final = await stories.get(rt.db, story.id)
        assert final is not None and final.status is StoryStatus.COMPLETE
        story_assets = await assets.list_for_story(rt.db, story.id)
        rows = await scenes.list_for_story(rt.db, story.id)

    assert len(story_assets) == 4
    keys = s3_bucket.keys()
    assert len(keys) == 4 and all(key.startswith(f"{PREFIX}/{story.id}/") for key in keys)
    for asset in story_assets:
        assert asset.path is not None and asset.path.startswith(f"s3://{s3_bucket.name}/{PREFIX}/{story.id}/")
        key = asset.path.removeprefix(f"s3://{s3_bucket.name}/")
        assert key in keys
        data = s3_bucket.read(key)  # straight from the bucket, not from any host's copy
        assert asset.bytes == len(data) and asset.sha256 == hashlib.sha256(data).hexdigest()
        if asset.kind is AssetKind.IMAGE:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                assert image.format == "PNG" and image.size == (1024, 576)
        else:
            with av.open(io.BytesIO(data)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                assert sum(1 for _ in container.decode(stream)) > 0
    for scene in rows:
        assert scene.image_status is ImageStatus.COMPLETE and scene.video_status is VideoStatus.COMPLETE
        assert scene.image_path in {a.path for a in story_assets} and scene.video_path in {a.path for a in story_assets}

    # Another host (same database, an empty MEDIA_DIR) publishes the storybook again: its deliver job fetches
    # every picture and clip from the bucket into its own cache before the publisher copies them.
    other = object_settings.model_copy(update={"media_dir": tmp_path / "host-b"})
    async with Runtime(other, out_dir=tmp_path / "out-b") as rt:
        async with rt.db.transaction() as conn:
            await rt.jobs.enqueue_delivery(conn, final, "story", f"story:{story.id}:again", None)
        stats = await rt.run_until_empty()
        assert stats.succeeded == 1 and stats.failed == 0
    page = tmp_path / "out-b" / story.id / "index.html"
    assert page.is_file()
    for n in (1, 2):
        with Image.open(page.parent / f"scene-{n:02d}-image.png") as image:
            assert image.format == "PNG"
        with av.open(str(page.parent / f"scene-{n:02d}-video.mp4")) as container:
            assert container.streams.video[0].codec_context.name == "h264"
    fetched = sorted(p.name for p in (tmp_path / "host-b" / story.id).iterdir())
    assert fetched == sorted(key.rpartition("/")[2] for key in keys)
    assert parts(tmp_path) == []
    assert os.listdir(tmp_path / "host-a" / story.id)  # the writer kept its copies as its cache
