"""The embedded offline provider: template stories, procedural PNGs and Ken Burns MP4s."""

from __future__ import annotations

import errno
import io
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.errors import ErrorKind, ProviderError
from bot.providers.base import (
    ImageProvider,
    ImageRequest,
    ReferenceImage,
    StoryRequest,
    TextProvider,
    VideoProvider,
    VideoRequest,
    VideoState,
)
from bot.providers.local import video as local_video
from bot.providers.local.adapter import LocalImageProvider, LocalProvider, LocalTextProvider, LocalVideoProvider
from bot.providers.local.image import ASPECT_SIZES, caption_text, load_font, reference_colors, tinted, wrap_caption
from bot.providers.local.scene import plan_scene
from bot.providers.local.text import arc_phases

PROMPT = "A lighthouse cat who learns to paint the sea"


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (64, 36)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_providers_satisfy_the_protocols(tmp_path: Path) -> None:
    assert isinstance(LocalTextProvider(), TextProvider)
    assert isinstance(LocalImageProvider(), ImageProvider)
    assert isinstance(LocalVideoProvider(tmp_path), VideoProvider)
    combined = LocalProvider(tmp_path)
    assert all(isinstance(combined, protocol) for protocol in (TextProvider, ImageProvider, VideoProvider))


async def test_one_local_adapter_does_all_three_jobs(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path / "staging")
    draft = await provider.write_story(StoryRequest(model="m", prompt=PROMPT, scene_count=2))
    image = await provider.generate_image(ImageRequest(model="m", prompt=draft.bible, scene_text=draft.scenes[0]))
    remote_id = await provider.submit_video(VideoRequest(model="m", prompt="p", image=ReferenceImage(data=image.data)))
    poll = await provider.poll_video(remote_id)
    assert poll.state is VideoState.DONE
    await provider.download_video(poll, remote_id, tmp_path / "clip.mp4")
    assert (tmp_path / "clip.mp4").stat().st_size > 0


# --- text ---------------------------------------------------------------------------------------


async def test_story_is_deterministic_and_depends_on_every_input() -> None:
    writer = LocalTextProvider()
    base = StoryRequest(model="local-template", prompt=PROMPT, scene_count=4)
    first, again = await writer.write_story(base), await writer.write_story(base)
    assert first == again
    for changed in (
        base.model_copy(update={"prompt": PROMPT + " at night"}),
        base.model_copy(update={"style": "pixel art"}),
        base.model_copy(update={"scene_count": 5}),
    ):
        assert await writer.write_story(changed) != first


@pytest.mark.parametrize("scene_count", range(1, 11))
async def test_story_has_exactly_the_requested_scenes(scene_count: int) -> None:
    draft = await LocalTextProvider().write_story(StoryRequest(model="m", prompt=PROMPT, scene_count=scene_count))
    assert len(draft.scenes) == scene_count
    assert draft.title.strip()
    assert 2 <= len(sentences(draft.bible)) <= 4
    hero = draft.bible.split()[0]
    assert hero in draft.bible
    assert hero in draft.scenes[0]
    for scene in draft.scenes:
        assert 2 <= len(sentences(scene)) <= 3, scene
    assert len(set(draft.scenes)) == scene_count  # no scene repeats another


async def test_story_uses_the_prompt_without_pasting_it() -> None:
    draft = await LocalTextProvider().write_story(StoryRequest(model="m", prompt=PROMPT, scene_count=6))
    assert "lighthouse cat" in draft.bible and "lighthouse cat" in draft.scenes[0]
    assert "learn to paint the sea" in draft.scenes[0]
    assert "cat who learns to paint the sea" not in " ".join([draft.title, *draft.scenes]).lower()
    assert "Cat" in draft.title or draft.bible.split()[0] in draft.title
    mentions = [scene for scene in draft.scenes if re.search(r"\b(lighthouse|sea)\b", scene)]
    assert len(mentions) >= 4


async def test_story_strips_a_request_preamble_and_uses_the_style() -> None:
    draft = await LocalTextProvider().write_story(
        StoryRequest(
            model="m", prompt="Write me a story about a dragon afraid of the dark.", scene_count=3, style="ink wash"
        )
    )
    assert "dragon" in draft.scenes[0] and "face the dark" in draft.scenes[0]
    assert "Write me" not in " ".join(draft.scenes)
    assert "ink wash" in draft.bible


@pytest.mark.parametrize(
    ("scene_count", "phases"),
    [
        (1, ["whole"]),
        (2, ["setup", "finale"]),
        (3, ["setup", "trouble", "resolution"]),
        (4, ["setup", "trouble", "turn", "resolution"]),
        (
            10,
            [
                "setup",
                "departure",
                "meeting",
                "journey",
                "wonder",
                "trouble",
                "darkest",
                "turn",
                "climax",
                "resolution",
            ],
        ),
    ],
)
def test_story_arc_scales_to_the_scene_count(scene_count: int, phases: list[str]) -> None:
    assert arc_phases(scene_count) == phases


@pytest.mark.parametrize(
    "prompt",
    [
        "\x00\u202e🐉" * 333,
        "x" * 1000,
        "   ",
        "{hero} {0} %s \\n <@123> @everyone ```code``` 龍の物語 مرحبا",
    ],
)
async def test_story_survives_odd_prompts(prompt: str) -> None:
    draft = await LocalTextProvider().write_story(StoryRequest(model="m", prompt=prompt, scene_count=10))
    assert len(draft.scenes) == 10
    for text in [draft.title, draft.bible, *draft.scenes]:
        assert text.strip()
        assert len(text) < 700
        assert not any(unicodedata.category(ch) == "Cc" or ch == "\u202e" for ch in text)


def test_output_does_not_depend_on_the_process_hash_seed() -> None:
    script = (
        "import asyncio, hashlib\n"
        "from bot.providers.base import StoryRequest, ImageRequest\n"
        "from bot.providers.local.adapter import LocalTextProvider, LocalImageProvider\n"
        f"d = asyncio.run(LocalTextProvider().write_story(StoryRequest(model='m', prompt={PROMPT!r}, scene_count=5)))\n"
        "i = asyncio.run(LocalImageProvider().generate_image(ImageRequest(model='m', prompt='p', seed='s')))\n"
        "print(hashlib.sha256(repr(d).encode()).hexdigest(), hashlib.sha256(i.data).hexdigest())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


# --- images -------------------------------------------------------------------------------------


async def test_image_is_byte_identical_for_the_same_request_and_differs_by_seed() -> None:
    painter = LocalImageProvider()
    request = ImageRequest(model="local-sketch", prompt="bible. scene", scene_text="Mira sets off.", seed="story:0")
    first, again = await painter.generate_image(request), await painter.generate_image(request)
    other = await painter.generate_image(request.model_copy(update={"seed": "story:1"}))
    assert first.mime_type == "image/png"
    assert first.data == again.data
    assert other.data != first.data


@pytest.mark.parametrize("aspect", ["16:9", "1:1", "9:16"])
async def test_image_has_the_requested_size(aspect: str) -> None:
    result = await LocalImageProvider().generate_image(ImageRequest(model="m", prompt="p", aspect_ratio=aspect))
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.format == "PNG"
        assert image.size == ASPECT_SIZES[aspect]
    assert result.warnings == []


async def test_unsupported_aspect_falls_back_to_16_9_with_a_warning() -> None:
    result = await LocalImageProvider().generate_image(ImageRequest(model="m", prompt="p", aspect_ratio="4:3"))
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.size == (1024, 576)
    assert result.warnings and "4:3" in result.warnings[0]


async def test_undecodable_reference_is_a_bad_request() -> None:
    request = ImageRequest(model="m", prompt="p", references=[ReferenceImage(data=b"not an image")])
    with pytest.raises(ProviderError) as caught:
        await LocalImageProvider().generate_image(request)
    assert caught.value.kind is ErrorKind.BAD_REQUEST


async def test_reference_changes_the_picture_and_tints_the_palette_not_the_hero() -> None:
    request = ImageRequest(model="m", prompt="p", seed="s")
    plain = await LocalImageProvider().generate_image(request)
    referenced = request.model_copy(update={"references": [ReferenceImage(data=png_bytes((200, 40, 40)))]})
    tinted_result = await LocalImageProvider().generate_image(referenced)
    assert tinted_result.data != plain.data

    average, vivid = reference_colors(ReferenceImage(data=png_bytes((200, 40, 40))), "m")
    assert all(abs(a - b) <= 2 for a, b in zip(average, (200, 40, 40), strict=True))
    plan = plan_scene("Mira is a girl in a green coat and a blue scarf. Palette: sage, sky blue and cream.", "")
    leaned = tinted(plan, (average, vivid))
    assert leaned.palette != plan.palette
    assert all(channel_near(a, b) for a, b in zip(leaned.palette[0], plan.palette[0], strict=True))
    assert leaned.hero == plan.hero  # scene 1's picture never repaints the hero


def channel_near(a: int, b: int) -> bool:
    return abs(a - b) <= 0.2 * 255


def test_caption_wraps_within_the_band_and_folds_unknown_glyphs() -> None:
    font = load_font(24)
    lines = wrap_caption("word " * 200 + "x" * 500, font, 400)
    assert 1 <= len(lines) <= 4
    assert all(font.getlength(line) <= 400 for line in lines)
    assert lines[-1].endswith("…")
    assert caption_text("Ünïcödé 🐉 café\x07") == "Unicode cafe"


# --- video --------------------------------------------------------------------------------------


async def render_clip(tmp_path: Path, aspect: str, duration_s: int) -> tuple[Path, LocalVideoProvider]:
    image = await LocalImageProvider().generate_image(ImageRequest(model="m", prompt="p", aspect_ratio=aspect))
    provider = LocalVideoProvider(tmp_path / "staging")
    request = VideoRequest(
        model="local-kenburns", prompt="p", image=ReferenceImage(data=image.data), duration_s=duration_s
    )
    remote_id = await provider.submit_video(request)
    assert re.fullmatch(r"[0-9a-f]{32}", remote_id)
    poll = await provider.poll_video(remote_id)
    assert poll.state is VideoState.DONE
    assert poll.url is None
    dest = tmp_path / "clip.mp4"
    await provider.download_video(poll, remote_id, dest)
    staged = provider.staged_path(remote_id)
    assert staged.exists()  # kept, like a provider's hosted copy, so a crash before commit can download again
    assert provider.sweep(older_than_s=3600, now=staged.stat().st_mtime + 10) == 0
    assert provider.sweep(older_than_s=3600, now=staged.stat().st_mtime + 3601) == 1 and not staged.exists()
    assert (await provider.poll_video(remote_id)).state is VideoState.FAILED
    return dest, provider


@pytest.mark.parametrize(
    ("aspect", "asked_s", "size", "seconds"),
    [("16:9", 1, (960, 540), 3), ("9:16", 15, (540, 960), 5)],
)
async def test_clip_is_browser_ready_h264(
    tmp_path: Path, aspect: str, asked_s: int, size: tuple[int, int], seconds: int
) -> None:
    dest, provider = await render_clip(tmp_path, aspect, asked_s)
    with av.open(str(dest)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == size
        assert stream.average_rate == 24
        frames = list(container.decode(stream))
    assert abs(len(frames) - 24 * seconds) <= 1
    assert frames[0].to_image().tobytes() != frames[-1].to_image().tobytes()  # the camera moved
    data = dest.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: playable while downloading
    assert list(provider.staging_dir.iterdir()) == []


async def test_lost_render_polls_failed_and_cannot_be_downloaded(tmp_path: Path) -> None:
    provider = LocalVideoProvider(tmp_path)
    lost = "0" * 32
    poll = await provider.poll_video(lost)
    assert poll.state is VideoState.FAILED
    assert poll.error == "the local render was lost; submit again"
    with pytest.raises(ProviderError) as caught:
        await provider.download_video(poll, lost, tmp_path / "x.mp4")
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    with pytest.raises(ProviderError):
        await provider.poll_video("../../etc/passwd")


async def test_undecodable_scene_image_is_a_bad_request(tmp_path: Path) -> None:
    provider = LocalVideoProvider(tmp_path / "staging")
    request = VideoRequest(model="m", prompt="p", image=ReferenceImage(data=b"\x89PNG broken"))
    with pytest.raises(ProviderError) as caught:
        await provider.submit_video(request)
    assert caught.value.kind is ErrorKind.BAD_REQUEST


async def test_failed_encode_is_transient_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(source: Image.Image, dest: Path, duration_s: int, rng: object) -> None:
        dest.write_bytes(b"half a clip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_video, "encode_ken_burns", disk_full)
    provider = LocalVideoProvider(tmp_path / "staging")
    request = VideoRequest(model="m", prompt="p", image=ReferenceImage(data=png_bytes((1, 2, 3))))
    with pytest.raises(ProviderError) as caught:
        await provider.submit_video(request)
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert list(provider.staging_dir.iterdir()) == []
