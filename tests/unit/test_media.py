"""Media files: uuid paths, atomic writes that leave nothing behind, probing, fitting under a limit."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.errors import MediaError, MediaWriteError
from bot.media import fit as media_fit
from bot.media import probe as media_probe
from bot.media import store as media
from bot.media.fit import fit_to_upload_limit
from bot.media.probe import MediaLimits, check_clip, check_picture, probe_image, probe_video
from bot.media.store import MediaStore, sha256_file

STORY = "0123456789abcdef0123456789abcdef"


def make_clip(
    path: Path, *, frames: int = 24, size: tuple[int, int] = (320, 180), audio: bool = False, faststart: bool = False
) -> Path:
    """A short clip of random noise: it compresses badly, so it is big for its length."""
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = container.add_stream("aac", rate=44100) if audio else None
        for index in range(frames):
            frame = av.VideoFrame.from_image(Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3)))
            frame.pts, frame.time_base = index, Fraction(1, 24)
            container.mux(video.encode(frame))
        if sound is not None:
            sound.layout = "mono"
            for index in range(frames * 44100 // 24 // 1024):
                chunk = av.AudioFrame(format="fltp", layout="mono", samples=1024)
                chunk.planes[0].update(bytes(4096))
                chunk.sample_rate, chunk.pts, chunk.time_base = 44100, index * 1024, Fraction(1, 44100)
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))
        container.mux(video.encode(None))
    return path


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- paths and atomic writes --------------------------------------------------------------------


def test_paths_are_uuid_names_under_the_story(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    first, second = store.path_for(STORY, "png"), store.path_for(STORY, ".PNG")
    assert first.parent == tmp_path / STORY and first.parent.is_dir()
    assert first.name != second.name
    assert len(first.stem) == 32 and int(first.stem, 16) >= 0
    assert second.suffix == ".png"
    temp = store.temp_path(first)
    assert temp.parent == first.parent and temp.name.startswith(f".{os.getpid()}-")
    assert temp.name.endswith(f".{first.name}.part")


@pytest.mark.parametrize("story_id", ["../etc", "ABCDEF", "", "abc/def", "a" * 65, "12 34"])
def test_story_id_must_be_hex(tmp_path: Path, story_id: str) -> None:
    with pytest.raises(MediaError):
        MediaStore(tmp_path).path_for(story_id, "png")


@pytest.mark.parametrize("ext", ["", "p/ng", "toolongext", "../x"])
def test_extension_must_be_plain(tmp_path: Path, ext: str) -> None:
    with pytest.raises(MediaError):
        MediaStore(tmp_path).path_for(STORY, ext)


async def test_write_bytes_stores_and_describes_the_file(tmp_path: Path) -> None:
    data = b"\x89PNG" + os.urandom(5000)
    stored = await MediaStore(tmp_path).write_bytes(STORY, data, "png")
    assert stored.path.read_bytes() == data
    assert stored.bytes == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.mime_type == "image/png"
    assert files_under(tmp_path) == [stored.path]


def disk_full(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["os.fsync", "os.replace", "fsync_dir"])
async def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    target = media.os if failing.startswith("os.") else media
    monkeypatch.setattr(target, failing.removeprefix("os."), disk_full)
    with pytest.raises(MediaWriteError, match="No space left on device") as caught:
        await MediaStore(tmp_path).write_bytes(STORY, b"data" * 1000, "png")
    assert caught.value.errno == errno.ENOSPC
    assert files_under(tmp_path) == []


async def test_commit_moves_a_finished_temp_into_place(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    final = store.path_for(STORY, "mp4")
    temp = store.temp_path(final)
    temp.write_bytes(b"clip" * 1000)
    stored = await store.commit(temp, final)
    assert not temp.exists()
    assert stored.path == final and final.read_bytes() == b"clip" * 1000
    assert stored.sha256 == hashlib.sha256(b"clip" * 1000).hexdigest()
    assert (stored.bytes, stored.mime_type) == (4000, "video/mp4")


async def test_failed_commit_leaves_neither_temp_nor_final(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MediaStore(tmp_path)
    final = store.path_for(STORY, "mp4")
    temp = store.temp_path(final)
    temp.write_bytes(b"clip")
    monkeypatch.setattr(media.os, "replace", disk_full)
    with pytest.raises(MediaWriteError):
        await store.commit(temp, final)
    assert files_under(tmp_path) == []


async def test_commit_refuses_a_temp_in_another_directory(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    elsewhere = tmp_path / "elsewhere.part"
    elsewhere.write_bytes(b"x")
    with pytest.raises(MediaError):
        await store.commit(elsewhere, store.path_for(STORY, "mp4"))


def test_sweep_removes_only_stale_partials(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    now = 1_800_000_000.0
    stale, fresh = store.temp_path(store.path_for(STORY, "mp4")), store.temp_path(store.path_for(STORY, "png"))
    finished = store.path_for(STORY, "png")
    for path, age in ((stale, 7200), (fresh, 60), (finished, 7200)):
        path.write_bytes(b"x")
        os.utime(path, (now - age, now - age))
    assert store.sweep_partials(3600, now=now) == 1
    assert files_under(tmp_path) == sorted([fresh, finished])


def test_sweep_removes_the_partials_of_writers_that_ended_whatever_their_age(tmp_path: Path) -> None:
    store = MediaStore(tmp_path)
    ours = store.temp_path(store.path_for(STORY, "mp4"))  # this process: may be mid-write
    dead_pid, live_pid = 4_000_001, 4_000_002
    dead = ours.with_name(ours.name.replace(f".{os.getpid()}-", f".{dead_pid}-", 1))
    live = ours.with_name(ours.name.replace(f".{os.getpid()}-", f".{live_pid}-", 1))
    earlier_self = ours.with_name(ours.name.replace(ours.name.split(".")[1], f"{os.getpid()}-000000", 1))
    unnamed = store.story_dir(STORY) / ".0123.mp4.part"  # no writer in its name: only the age rule applies
    for path in (ours, dead, live, earlier_self, unnamed):
        path.write_bytes(b"x")
    assert store.sweep_partials(3600, alive=lambda pid: pid == live_pid) == 2
    assert files_under(tmp_path) == sorted([ours, live, unnamed])
    assert store.sweep_partials(3600) == 0  # without ``alive``, the age rule alone


def test_sha256_file_streams_large_files(tmp_path: Path) -> None:
    data = os.urandom(media.CHUNK_BYTES * 2 + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# --- probing ------------------------------------------------------------------------------------


def test_probe_image_reads_size_and_format(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (64, 36), (1, 2, 3)).save(path)
    assert probe_image(path) == media_probe.ImageInfo(64, 36, "PNG")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_probe_image_rejects_broken_files(tmp_path: Path, damage: str) -> None:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(buffer, format="PNG")
    path = tmp_path / "a.png"
    path.write_bytes(b"hello, not an image" if damage == "garbage" else buffer.getvalue()[:2000])
    with pytest.raises(MediaError):
        probe_image(path)


def test_probe_video_describes_a_clip(tmp_path: Path) -> None:
    info = probe_video(make_clip(tmp_path / "a.mp4", frames=12))
    assert (info.width, info.height, info.frames, info.codec) == (320, 180, 12, "h264")
    assert info.duration_s == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-first"])
@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_probe_video_rejects_a_truncated_download(tmp_path: Path, keep: float, faststart: bool) -> None:
    data = make_clip(tmp_path / "whole.mp4", frames=12, faststart=faststart).read_bytes()
    assert (data.find(b"moov") < data.find(b"mdat")) is faststart
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MediaError) as caught:
        probe_video(cut)
    assert isinstance(caught.value, ValueError)


def test_probe_video_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaError):
        probe_video(path)


# --- the gate for provider media (check_picture, check_clip) ------------------------------------


def _picture(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(("fmt", "claimed"), [("PNG", "image/png"), ("JPEG", "image/jpg"), ("WEBP", None)])
def test_check_picture_takes_what_it_claims_to_be(fmt: str, claimed: str | None) -> None:
    assert check_picture(_picture(fmt), claimed, MediaLimits()) == media_probe.ImageInfo(64, 48, fmt)


@pytest.mark.parametrize(
    ("data", "claimed", "limits", "match"),
    [
        (_picture("PNG"), "image/jpeg", MediaLimits(), "claims to be image/jpeg but is image/png"),
        (_picture("GIF"), "image/gif", MediaLimits(), "GIF image, not PNG, JPEG or WebP"),
        (_picture("PNG"), "image/png", MediaLimits(picture_bytes=100), "over the cap"),
        (_picture("PNG", (100, 100)), "image/png", MediaLimits(picture_pixels=9_999), "100×100 pixels"),
        (_picture("JPEG")[:-200], "image/jpeg", MediaLimits(), "not a readable image"),
    ],
    ids=["mislabelled", "gif", "bytes", "pixels", "truncated"],
)
def test_check_picture_refuses_anything_else(data: bytes, claimed: str, limits: MediaLimits, match: str) -> None:
    with pytest.raises(MediaError, match=match):
        check_picture(data, claimed, limits)


def test_check_clip_describes_an_h264_mp4(tmp_path: Path) -> None:
    info = check_clip(make_clip(tmp_path / "a.mp4", frames=12), MediaLimits())
    assert (info.width, info.height, info.frames, info.codec) == (320, 180, 12, "h264")
    assert info.duration_s == pytest.approx(0.5, abs=0.05)


def test_check_clip_decodes_a_frame_or_two_not_the_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=48)
    decoded: list[int] = []
    real = av.Packet.decode

    def counting(packet: av.Packet) -> list[av.VideoFrame]:
        frames = real(packet)
        decoded.append(len(frames))
        return frames  # type: ignore[return-value]

    monkeypatch.setattr(av.Packet, "decode", counting)
    check_clip(clip, MediaLimits())
    assert sum(decoded) == 1 and len(decoded) <= 3


@pytest.mark.parametrize("faststart", [False, True], ids=["index-at-end", "index-first"])
@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_check_clip_rejects_a_truncated_download(tmp_path: Path, keep: float, faststart: bool) -> None:
    data = make_clip(tmp_path / "whole.mp4", frames=12, faststart=faststart).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MediaError):
        check_clip(cut, MediaLimits())


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (MediaLimits(clip_bytes=1000), "over the cap of 1000"),
        (MediaLimits(clip_seconds=0.25), "lasts 0.5 s, over the cap of 0.25 s"),
        (MediaLimits(picture_pixels=320 * 180 - 1), "320×180 pixels"),
    ],
    ids=["bytes", "seconds", "pixels"],
)
def test_check_clip_holds_the_caps(tmp_path: Path, limits: MediaLimits, match: str) -> None:
    with pytest.raises(MediaError, match=match):
        check_clip(make_clip(tmp_path / "a.mp4", frames=12), limits)


def test_check_clip_refuses_what_is_not_an_mp4(tmp_path: Path) -> None:
    html = tmp_path / "page.mp4"
    html.write_bytes(b"<!DOCTYPE html><html><body>Access denied</body></html>")
    with pytest.raises(MediaError, match="not an MP4"):
        check_clip(html, MediaLimits())


# --- fitting under an upload limit --------------------------------------------------------------


async def test_fit_keeps_a_file_that_already_fits(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=6)
    assert await fit_to_upload_limit(clip, clip.stat().st_size) == clip


async def test_fit_re_encodes_until_the_clip_fits(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", audio=True)
    original = clip.read_bytes()
    limit = len(original) // 4
    fitted = await fit_to_upload_limit(clip, limit)
    assert fitted != clip and fitted.parent == clip.parent
    assert fitted.stat().st_size <= limit
    assert clip.read_bytes() == original
    info = probe_video(fitted)
    assert (info.codec, info.frames) == ("h264", 24)
    with av.open(str(fitted)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert len(container.streams.audio) == 1  # the sound track is kept
    assert not list(tmp_path.glob(".*.part"))


async def test_fit_refuses_a_limit_below_the_container_overhead(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=12)
    with pytest.raises(MediaError, match="cannot fit"):
        await fit_to_upload_limit(clip, 2000)
    assert files_under(tmp_path) == [clip]


async def test_fit_gives_up_clearly_when_no_step_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=12)
    limit = clip.stat().st_size // 2
    attempts: list[tuple[int, int, int]] = []

    def stubborn_encoder(source: Path, dest: Path, width: int, height: int, bit_rate: int) -> None:
        attempts.append((width, height, bit_rate))
        dest.write_bytes(b"x" * (limit + 1))

    monkeypatch.setattr(media_fit, "_reencode", stubborn_encoder)
    with pytest.raises(MediaError, match="could not be made smaller"):
        await fit_to_upload_limit(clip, limit)
    assert len(attempts) == len(media_fit.FIT_STEPS)
    assert [a[2] for a in attempts] == sorted((a[2] for a in attempts), reverse=True)  # bitrate only goes down
    assert attempts[-1][0] < attempts[0][0]  # and then the resolution
    assert files_under(tmp_path) == [clip]
