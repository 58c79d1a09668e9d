"""Saved stories: a user's stories page by page, finding one with its ownership checked, deleting one.

No Discord here: ``cogs/_library.py`` turns these results, and the UserInputErrors raised with a
message fit to show, into Discord messages. Every lookup is scoped to one server: a story from
another server is answered exactly like an unknown one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bot.domain import Story
from bot.errors import MediaStoreError, UserInputError
from bot.jobs import JobQueue
from bot.media.objects import is_object_ref
from bot.media.store import MediaStore
from storage import assets as asset_rows
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage.db import Conn, Database

log = logging.getLogger(__name__)

PAGE_SIZE = 10
MAX_SUGGESTIONS = 25
MAX_TYPED_CHARS = 200  # longer than any title or id: not worth a query
FULL_ID = re.compile(r"[0-9a-f]{32}")
ID_PREFIX = re.compile(r"[0-9a-f]{6,31}")  # the storyboard's footer shows the first 8 characters

NOT_FOUND = "I can't find that story in this server; pick one from the list as you type, or see `/story list`"
AMBIGUOUS = "several of your stories match that; pick one from the list as you type"


@dataclass(frozen=True)
class StoryPage:
    stories: list[Story]
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class DeletedStory:
    story: Story
    jobs_cancelled: int
    files_removed: int


def page_count(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


class Library:
    def __init__(self, db: Database, queue: JobQueue, media: MediaStore) -> None:
        self.db = db
        self.queue = queue
        self.media = media

    async def page(self, guild_id: int | None, owner_id: int, page: int) -> StoryPage:
        """One page of the owner's stories here, newest first. A page past the end is a UserInputError."""
        total = await story_rows.count_for_owner(self.db, guild_id, owner_id)
        pages = page_count(total)
        if total and not 1 <= page <= pages:
            noun = "story" if total == 1 else "stories"
            raise UserInputError(
                f"there is no page {page}: your {total} {noun} here fit on {pages} page{'s' * (pages > 1)}"
            )
        if not total:
            return StoryPage([], 1, 1, 0)
        found = await story_rows.list_for_owner(
            self.db, guild_id, owner_id, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        return StoryPage(found, page, pages, total)

    async def suggest(self, guild_id: int | None, owner_id: int, typed: str) -> list[Story]:
        """The owner's stories here matching what was typed, for autocomplete (one indexed query)."""
        if guild_id is None or len(typed) > MAX_TYPED_CHARS:
            return []
        return await story_rows.search_for_owner(self.db, guild_id, owner_id, typed, limit=MAX_SUGGESTIONS)

    async def find(self, guild_id: int | None, user_id: int, text: str, *, any_owner: bool = False) -> Story:
        """The story ``text`` names (an id from autocomplete, an id's first characters, or an exact title
        of one's own story), in this server. Someone else's story only with ``any_owner``."""
        story = await self._resolve(guild_id, user_id, text)
        if story is None:
            raise UserInputError(NOT_FOUND)
        if story.owner_id != user_id and not any_owner:
            raise UserInputError("that story belongs to someone else; only its owner can do that")
        return story

    async def _resolve(self, guild_id: int | None, user_id: int, text: str) -> Story | None:
        typed = " ".join(text.split())
        key = typed.lower()
        if guild_id is None or not typed or len(typed) > MAX_TYPED_CHARS:
            return None
        if FULL_ID.fullmatch(key):
            story = await story_rows.get(self.db, key)
            return story if story is not None and story.guild_id == guild_id else None
        candidates = await story_rows.search_for_owner(self.db, guild_id, user_id, typed, limit=MAX_SUGGESTIONS)
        by_id = ID_PREFIX.fullmatch(key) is not None
        matches = [s for s in candidates if (by_id and s.id.startswith(key)) or (s.title or "").lower() == key]
        if len(matches) > 1:
            raise UserInputError(AMBIGUOUS)
        return matches[0] if matches else None

    async def delete(self, guild_id: int | None, user_id: int, story_id: str) -> DeletedStory:
        """Cancel the story's jobs and delete its rows in one transaction, then remove its files.

        Files go only after the commit: a crash in between leaves files no row points to (harmless,
        and ``sweep_orphaned_media`` removes them), never rows pointing at missing files. A job that a
        worker is running at this moment loses its lease: it cannot record anything, and a file it
        writes after this is an orphan of the same kind. Messages already posted on Discord stay.
        """
        async with self.db.transaction() as conn:
            story = await story_rows.get(conn, story_id)
            if story is None or story.guild_id != guild_id:
                raise UserInputError("that story is already gone")
            if story.owner_id != user_id:
                raise UserInputError("that story belongs to someone else; only its owner can delete it")
            files = await _recorded_files(conn, story)
            cancelled = await self.queue.cancel(story_id=story.id, conn=conn)
            await story_rows.delete(conn, story.id)
        removed = await asyncio.to_thread(self._remove_files, story, files)
        try:  # MEDIA_URL: its objects too (copies other hosts cached go at their start: sweep_orphaned_media)
            removed += await self.media.delete_story_objects(story.id)
        except MediaStoreError as exc:
            log.warning("story %s: its files stay in object storage: %s", story.id, exc)
        log.info("story %s deleted by %s: %d job(s) cancelled, %d file(s) removed", story.id, user_id,
                 cancelled, removed)  # fmt: skip
        return DeletedStory(story, cancelled, removed)

    def _remove_files(self, story: Story, files: set[Path]) -> int:
        """The story's folders (media, offline storybook) and any recorded file outside them. Blocking."""
        folders = [self.media.story_dir(story.id)]
        if story.out_dir:
            folders.append(Path(story.out_dir) / story.id)
        removed = 0
        for path in files:
            if not any(path.is_relative_to(folder) for folder in folders) and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        for folder in folders:
            if folder.is_dir():
                removed += sum(1 for entry in folder.rglob("*") if entry.is_file())
                shutil.rmtree(folder, ignore_errors=True)
        return removed


async def _recorded_files(conn: Conn, story: Story) -> set[Path]:
    paths = [story.reference_path]
    for scene in await scene_rows.list_for_story(conn, story.id):
        paths += [scene.image_path, scene.video_path]
    paths += [asset.path for asset in await asset_rows.list_for_story(conn, story.id)]
    return {Path(path) for path in paths if path and not is_object_ref(path)}


async def sweep_orphaned_media(
    db: Database, media: MediaStore, *, older_than_s: float, now: float | None = None
) -> int:
    """Remove story folders under the media store whose story no longer exists; returns how many.

    A job that was running while its story was deleted may write a file afterwards, and a crash
    between a delete's commit and its file removal leaves the files; this finds both. Folders
    younger than ``older_than_s`` are left alone: a story being created writes its reference
    image before its row.
    """
    cutoff = (time.time() if now is None else now) - older_than_s
    candidates = await asyncio.to_thread(_story_folders, media.root, cutoff)
    alive = await story_rows.existing_ids(db, candidates)
    orphans = [name for name in candidates if name not in alive]
    for name in orphans:
        await asyncio.to_thread(shutil.rmtree, media.root / name, True)
    if orphans:
        log.info("removed the media of %d deleted stories", len(orphans))
    return len(orphans)


def _story_folders(root: Path, cutoff: float) -> list[str]:
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        try:
            if FULL_ID.fullmatch(entry.name) and entry.is_dir() and entry.stat().st_mtime < cutoff:
                found.append(entry.name)
        except FileNotFoundError:
            continue
    return found
