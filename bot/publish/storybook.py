"""The offline publisher: every story as an HTML storybook with its pictures and clips beside it."""

from __future__ import annotations

import asyncio
import html
import os
import shutil
import uuid
from pathlib import Path

from bot.domain import ImageStatus, Scene, Story, VideoStatus
from bot.media.store import atomic_write_text, sweep_partials
from bot.publish.protocol import Delivery

STALE_PARTIAL_S = 3600.0  # a temp file this old was left by a killed render


class OfflinePublisher:
    """Writes ``<out>/<story-id>/index.html`` with each scene's text, image and clip.

    Every delivery re-renders the page from the database's current state, so it is idempotent and
    always shows the latest. Media are copied next to the page under names made from scene
    numbers only, so the folder opens from disk and can be zipped and shared.
    """

    name = "offline"

    def __init__(self, default_out: Path) -> None:
        self.default_out = default_out
        self._lock = asyncio.Lock()
        self._rendered: dict[str, float] = {}  # story id -> version of the newest snapshot rendered

    def folder(self, story: Story) -> Path:
        return Path(story.out_dir or self.default_out) / story.id

    async def publish(self, delivery: Delivery) -> str | None:
        version = max([delivery.story.updated_at, *(scene.updated_at for scene in delivery.scenes)])
        async with self._lock:  # deliveries run concurrently; a stale snapshot must not overwrite a newer page
            if version < self._rendered.get(delivery.story.id, float("-inf")):
                return str(self.folder(delivery.story) / "index.html")
            page = await asyncio.to_thread(self._render, delivery)
            self._rendered[delivery.story.id] = version
            return page

    def _render(self, delivery: Delivery) -> str:
        folder = self.folder(delivery.story)
        folder.mkdir(parents=True, exist_ok=True)
        sweep_partials(folder, ".*.part", STALE_PARTIAL_S)
        for scene in delivery.scenes:
            _copy_media(scene.image_path, folder / _media_name(scene, "image", scene.image_path))
            _copy_media(scene.video_path, folder / _media_name(scene, "video", scene.video_path))
        page = folder / "index.html"
        atomic_write_text(page, render_storybook(delivery.story, delivery.scenes))
        return str(page)


def _media_name(scene: Scene, kind: str, path: str | None) -> str:
    ext = Path(path).suffix if path else (".png" if kind == "image" else ".mp4")
    return f"scene-{scene.index + 1:02d}-{kind}{ext}"


def _copy_media(source: str | None, dest: Path) -> None:
    if not source or dest.exists() or not Path(source).exists():
        return
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:12]}.part")
    shutil.copyfile(source, temp)
    os.replace(temp, dest)


_CSS = """
body{font-family:Georgia,serif;max-width:900px;margin:2rem auto;padding:0 1rem;background:#faf7f0;color:#222}
h1{font-size:2.2rem;margin-bottom:.2rem} .meta{color:#666;font-size:.9rem}
.bible{font-style:italic;color:#444;border-left:3px solid #c9b88f;padding-left:1rem}
section{margin:2.5rem 0;padding-bottom:1.5rem;border-bottom:1px solid #e4dccb}
img,video{width:100%;border-radius:8px;box-shadow:0 2px 10px #0002;margin:.6rem 0}
.note{color:#8a5a00;font-size:.9rem} .failed{color:#a00}
"""


def render_storybook(story: Story, scenes: list[Scene]) -> str:
    esc = html.escape
    title = esc(story.title or "Untitled story")
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p class='meta'>From the prompt “{esc(story.prompt)}” · {len(scenes)} scenes · {esc(story.status.value)}</p>",
    ]
    if story.bible:
        parts.append(f"<p class='bible'>{esc(story.bible)}</p>")
    for scene in scenes:
        parts.append(f"<section id='scene-{scene.index + 1}'><h2>Scene {scene.index + 1}</h2>")
        parts.append(f"<p>{esc(scene.text)}</p>")
        if scene.image_status is ImageStatus.COMPLETE and scene.image_path:
            alt = esc(scene.text[:120])
            parts.append(f"<img src='{_media_name(scene, 'image', scene.image_path)}' alt='{alt}'>")
            if scene.image_model_used and scene.image_model_used != scene.image_model_requested:
                parts.append(f"<p class='note'>Drawn with {esc(scene.image_model_used)} (fallback).</p>")
        elif scene.image_status is ImageStatus.FAILED:
            parts.append(f"<p class='failed'>The image failed: {esc(scene.image_error or 'unknown error')}</p>")
        else:
            parts.append("<p class='note'>Drawing…</p>")
        if scene.video_status is VideoStatus.COMPLETE and scene.video_path:
            name = _media_name(scene, "video", scene.video_path)
            parts.append(f"<video controls loop muted playsinline src='{name}'></video>")
        elif scene.video_status is VideoStatus.FAILED:
            parts.append(f"<p class='failed'>The clip failed: {esc(scene.video_error or 'unknown error')}</p>")
        elif scene.video_status in (VideoStatus.PENDING, VideoStatus.GENERATING):
            parts.append("<p class='note'>Animating…</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
