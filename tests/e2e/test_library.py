"""/story list, /story show and /story delete: the real StoryBot against the fake Discord."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.app import StoryBot
from bot.domain import Story, StoryStatus
from cogs._library import short_date
from storage import assets as asset_rows
from storage import jobs as job_rows
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import GUILD_ID, PERM_MANAGE_MESSAGES, TEXT_CHANNEL_ID, FakeMessage
from tests.support.discord_harness import (
    CLIP_LIMIT,
    OWNER,
    decode_clip,
    make_settings,
    png_bytes,
    running,
    wait_for_story,
)

STRANGER, MODERATOR = 202, 203
OTHER_GUILD = 999
DAY = 86_400.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_member(OWNER, "owner")
        server.add_member(STRANGER, "stranger")
        server.add_member(MODERATOR, "moderator", PERM_MANAGE_MESSAGES)
        yield server


async def new_story(fake: FakeDiscord, user_id: int, prompt: str, **options: Any) -> tuple[Any, FakeMessage]:
    handle = await fake.slash(user_id, "story", "new", options={"prompt": prompt, "scenes": 1, **options})
    board = await wait_for_story(fake, handle, scenes=1, video=bool(options.get("video")))
    return handle, board


async def insert_rows(bot: StoryBot, *rows: Story) -> None:
    async with bot.runtime.db.transaction() as conn:
        for story in rows:
            await story_rows.insert(conn, story)


def old_story(title: str, created_at: float, *, guild_id: int = GUILD_ID) -> Story:
    return Story(
        guild_id=guild_id, channel_id=TEXT_CHANNEL_ID, owner_id=OWNER, prompt=title.lower(), title=title,
        text_model="local-template", image_model="local-sketch", scene_count=1, status=StoryStatus.COMPLETE,
        created_at=created_at, updated_at=created_at,
    )  # fmt: skip


async def answer(fake: FakeDiscord, user_id: int, command: str, **options: Any) -> dict[str, Any]:
    """The bot's immediate answer to ``/story <command>``: it must be a private message (type 4)."""
    handle = await fake.slash(user_id, "story", command, options=options)
    ack = await handle.ack()
    assert (ack.type, ack.status, ack.ephemeral) == (4, 200, True), ack
    assert handle.original is not None and handle.original.ephemeral
    return ack.data


async def choices(fake: FakeDiscord, user_id: int, command: str, typed: str) -> list[dict[str, Any]]:
    found = await fake.autocomplete(user_id, "story", command, options={"story": typed}, focused="story")
    assert len(found) <= 25 and all(1 <= len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in found)
    return found


async def confirmation(fake: FakeDiscord, typed: str) -> FakeMessage:
    handle = await fake.slash(OWNER, "story", "delete", options={"story": typed})
    ack = await handle.ack()
    assert (ack.type, ack.ephemeral) == (4, True) and handle.original is not None
    return handle.original


def field_names(data: dict[str, Any]) -> list[str]:
    [embed] = data["embeds"]
    return [field["name"] for field in embed["fields"]]


async def test_list_pages_autocomplete_and_show(fake: FakeDiscord, tmp_path: Path) -> None:
    fake.attachment_size_limit = CLIP_LIMIT
    async with running(make_settings(tmp_path, fake), upload_limit_bytes=CLIP_LIMIT, storyboard_interval_s=0.2) as bot:
        _, fox_board = await new_story(fake, OWNER, "a fox who learns to fly", video=True)
        _, snail_board = await new_story(fake, OWNER, "a snail races the tide")
        await new_story(fake, STRANGER, "a crab dances")
        db = bot.runtime.db
        fox, snail, crab = sorted(await storage_testing.list_all(db), key=lambda s: s.created_at)
        assert fox.title and snail.title and crab.title and crab.owner_id == STRANGER  # written by local-template
        older = [old_story(f"Old Tale {n}", fox.created_at - n * DAY) for n in range(1, 11)]
        elsewhere = old_story("Tale From Elsewhere", fox.created_at, guild_id=OTHER_GUILD)
        await insert_rows(bot, *older, elsewhere)

        first = await answer(fake, OWNER, "list")
        assert field_names(first)[:3] == [f"1. {snail.title}", f"2. {fox.title}", "3. Old Tale 1"]
        assert len(field_names(first)) == 10 and first["embeds"][0]["footer"]["text"].startswith("Page 1 of 2 · 12 ")
        snail_line = first["embeds"][0]["fields"][0]["value"]
        assert f"https://discord.com/channels/{GUILD_ID}/{fake.channel_id}/{snail_board.id}" in snail_line
        assert "complete" in snail_line and f"<t:{int(snail.created_at)}:R>" in snail_line
        second = await answer(fake, OWNER, "list", page=2)
        assert field_names(second) == ["11. Old Tale 9", "12. Old Tale 10"]
        assert second["embeds"][0]["footer"]["text"].startswith("Page 2 of 2")
        beyond = await answer(fake, OWNER, "list", page=3)
        assert "There is no page 3: your 12 stories here fit on 2 pages" in beyond["content"]
        assert field_names(await answer(fake, STRANGER, "list")) == [f"1. {crab.title}"]
        assert "no stories in this server yet" in (await answer(fake, MODERATOR, "list"))["content"]

        everything = await choices(fake, OWNER, "show", "")
        assert [c["value"] for c in everything[:2]] == [snail.id, fox.id] and len(everything) == 12
        assert crab.id not in {c["value"] for c in everything} and elsewhere.id not in {c["value"] for c in everything}
        [only_fox] = await choices(fake, OWNER, "delete", "FOX")
        day = short_date(fox.created_at, fox.created_at)
        assert only_fox == {"name": f"{fox.title} · {day} · complete", "value": fox.id}  # found by its prompt
        assert (
            await choices(fake, OWNER, "show", "crab") == [] and await choices(fake, OWNER, "show", "elsewhere") == []
        )
        assert [c["value"] for c in await choices(fake, STRANGER, "show", "")] == [crab.id]

        handle = await fake.slash(OWNER, "story", "show", options={"story": fox.id})
        ack = await handle.ack()
        assert (ack.type, ack.ephemeral) == (5, True)
        await fake.wait_until(lambda: len(handle.messages) == 2 and not handle.messages[0].loading, what="replay")
        board, scene_message = handle.messages
        assert board.embeds[0]["title"] == f"📖 {fox.title}" and str(fox_board.id) in board.content
        # The header edits the deferred message itself (PATCH @original); no followup relies on the deprecated
        # "first followup edits the deferred message" behaviour.
        token = handle.token
        headers = [r for r in fake.requests_to("webhook_edit_message") if token in r.path and "@original" in r.path]
        assert headers and "Replay of" in str(headers[0].payload)
        assert not any("Replay of" in str(r.payload) for r in fake.requests_to("webhook_execute") if token in r.path)
        assert scene_message.content.startswith("**Scene 1**\n")
        image, clip = scene_message.attachments
        assert image.filename == "scene-01-image.png" and Image.open(io.BytesIO(image.data)).size[0] > 0
        assert clip.filename == "scene-01-video.mp4" and clip.size <= CLIP_LIMIT and decode_clip(clip.data) > 10
        [scene] = await scene_rows.list_for_story(db, fox.id)
        assert Path(scene.video_path or "").stat().st_size > CLIP_LIMIT  # so the replay had to re-encode it
        stored = {p.name for p in bot.runtime.media.story_dir(fox.id).iterdir()}
        assert stored == {Path(scene.image_path or "").name, Path(scene.video_path or "").name}  # no re-encode left
        for message in handle.messages:
            assert message.ephemeral and message.allowed_mentions is not None
            assert message.allowed_mentions["parse"] == []

        refused = await answer(fake, STRANGER, "show", story=fox.id)
        assert "belongs to someone else" in refused["content"]
        handle = await fake.slash(MODERATOR, "story", "show", options={"story": snail.id})  # Manage Messages may
        await fake.wait_until(lambda: len(handle.messages) == 2 and not handle.messages[0].loading, what="replay")
        assert handle.messages[0].embeds[0]["title"] == f"📖 {snail.title}"


async def test_delete_asks_then_removes_rows_and_files(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, fake), storyboard_interval_s=0.2) as bot:
        reference = fake.upload("hero.png", png_bytes(), "image/png")
        _, fox_board = await new_story(fake, OWNER, "a fox who learns to fly", reference=reference)
        await new_story(fake, OWNER, "a snail races the tide")
        db, media = bot.runtime.db, bot.runtime.media
        fox, snail = sorted(await storage_testing.list_all(db), key=lambda s: s.created_at)
        await insert_rows(bot, old_story("Tale From Elsewhere", fox.created_at, guild_id=OTHER_GUILD))
        recorded = [fox.reference_path, *(a.path for a in await asset_rows.list_for_story(db, fox.id))]
        fox_files = [Path(p) for p in recorded if p]
        assert len(fox_files) == 2 and all(path.is_file() for path in fox_files)
        thread_messages = fake.channel_messages(fox.thread_id)

        assert "belongs to someone else" in (await answer(fake, STRANGER, "delete", story=fox.id))["content"]
        prompt = await confirmation(fake, fox.id)
        assert "Messages already posted in the server stay" in prompt.content
        assert prompt.custom_ids == [f"library:delete:{fox.id}", f"library:keep:{fox.id}"] and prompt.ephemeral
        kept = await fake.click(OWNER, prompt.id, f"library:keep:{fox.id}")
        assert (await kept.ack()).type == 7 and "nothing was deleted" in prompt.content and prompt.components == []
        assert await story_rows.get(db, fox.id) is not None

        prompt = await confirmation(fake, fox.id[:8])  # the short id from the storyboard footer works too
        click = await fake.click(OWNER, prompt.id, f"library:delete:{fox.id}")
        assert (await click.ack()).type == 6
        await fake.wait_until(lambda: "Deleted" in prompt.content, what="deletion")
        assert f"**{fox.title}**" in prompt.content and prompt.components == []

        assert await story_rows.get(db, fox.id) is None
        assert await scene_rows.list_for_story(db, fox.id) == [] and await asset_rows.list_for_story(db, fox.id) == []
        assert (
            await job_rows.list_for_story(db, fox.id) == [] and await storage_testing.keys_for_story(db, fox.id) == []
        )
        assert not media.story_dir(fox.id).exists() and not any(path.exists() for path in fox_files)
        assert any(media.story_dir(snail.id).iterdir())  # the other story keeps its files
        assert fake.message(fox_board.id).deleted is False  # what was posted stays
        assert fake.channel_messages(fox.thread_id) == thread_messages

        assert field_names(await answer(fake, OWNER, "list")) == [f"1. {snail.title}"]
        assert [c["value"] for c in await choices(fake, OWNER, "delete", "")] == [snail.id]


async def test_unknown_garbage_and_foreign_stories_are_refused(fake: FakeDiscord, tmp_path: Path) -> None:
    async with running(make_settings(tmp_path, fake)) as bot:
        now = bot.runtime.clock.now()
        mine, elsewhere = old_story("Mine", now), old_story("Elsewhere", now, guild_id=OTHER_GUILD)
        await insert_rows(bot, mine, elsewhere)
        before = [s.id for s in await storage_testing.list_all(bot.runtime.db)]
        cases = {
            "0" * 32: "can't find that story",
            "not-a-story!!": "can't find that story",
            "x" * 300: "can't find that story",
            elsewhere.id: "can't find that story",
            "Elsewhere": "can't find that story",
        }
        for command in ("show", "delete"):
            for typed, expected in cases.items():
                data = await answer(fake, OWNER, command, story=typed)
                assert expected in data["content"] and not data.get("components"), (command, typed, data)
            data = await answer(fake, STRANGER, command, story=mine.id)
            assert "belongs to someone else" in data["content"] and not data.get("components")
        assert [s.id for s in await storage_testing.list_all(bot.runtime.db)] == before
        assert not [m for m in fake.channel_messages() if not m.ephemeral]
