"""Issue #6, bad input from Discord: hostile or broken commands, options, attachments and forged buttons.

One real StoryBot (against the fake Discord, local models) serves the whole table. Every row sends one
input and must get a private answer that says what to fix, while nothing changes: every row of every
story table, the media folder and every public message are the same before and after. The one input
that is accepted (a prompt full of mentions) must be posted without pinging anyone.

What discord.py does with values Discord itself would never send, as the fake can forge them:
- app_commands.Range is not checked by discord.py at run time (only Discord's client enforces it), so an
  out-of-range ``scenes``, ``page`` or daily limit reaches our own checks and gets their message.
- A channel option that is not a text channel fails in discord.py's transformer (TransformerError); the
  tree's error handler answers it privately.
- A pressed custom_id that matches none of storybot's buttons is answered by the fallback in cogs/buttons.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from bot.app import StoryBot
from bot.domain import Scene, Story, new_id
from bot.settings import Settings
from storage import scenes as scene_rows
from storage import stories as story_rows
from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_interactions import InteractionHandle
from tests.fakes.discord_state import GUILD_ID, MIB, PERM_MANAGE_GUILD, CallbackRecord, FakeChannel
from tests.support.database import select
from tests.support.discord_harness import (
    OWNER,
    make_settings,
    png_bytes,
    running,
    wait_for_story,
    wait_until_idle,
)
from tests.support.environment import isolate

# One bot serves the whole module (module-scoped, on SQLite): bad input is refused before the engine matters.
pytestmark = pytest.mark.sqlite_only
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")  # the one bot of this module lives in this loop

STRANGER, ADMIN = 301, 302
ACK_S = 10.0  # generous on a loaded machine; the fake's own 3 s deadline is what the bot must meet
STORY_TABLES = ("stories", "scenes", "media_assets", "jobs", "deliveries", "guild_config", "usage")
SQLISH = "' OR 1=1 --"
TEN_KB = "a story " * 1280
MENTIONS = "@everyone @here <@201> <@&110> <@!301> a parade for the whole server"


@dataclass
class World:
    """The running bot and what the rows aim at: a finished story of OWNER's here, one in another server,
    a scene whose story was deleted."""

    fake: FakeDiscord
    bot: StoryBot
    settings: Settings
    story: Story
    scene: Scene
    picture_id: int  # the message of the scene's picture, with a real Redraw button
    elsewhere: Story
    far_scene: Scene
    gone_scene_id: str


def image_bytes(fmt: str, size: tuple[int, int] = (8, 8), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, fmt)
    return buffer.getvalue()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp("bad-input")
    with pytest.MonkeyPatch.context() as env:  # module scope: the autouse isolation fixture runs per test only
        isolate(env, tmp)
        async with FakeDiscord() as fake:
            fake.add_member(OWNER, "owner")
            fake.add_member(STRANGER, "stranger")
            fake.add_member(ADMIN, "admin", PERM_MANAGE_GUILD)
            settings = make_settings(tmp, fake, health_http_port=0)
            async with running(settings, storyboard_interval_s=0.2) as bot:
                handle = await fake.slash(OWNER, "story", "new", options={"prompt": "a lighthouse cat", "scenes": 1})
                await wait_for_story(fake, handle, scenes=1, video=False)
                await wait_until_idle(bot)  # the last delivery's commit must not land inside a row's snapshot
                [story] = await storage_testing.list_all(bot.runtime.db)
                [scene] = await scene_rows.list_for_story(bot.runtime.db, story.id)
                assert scene.image_message_id is not None
                elsewhere, far_scene, gone_scene_id = await seed_foreign_rows(bot)
                yield World(fake, bot, settings, story, scene, scene.image_message_id, elsewhere, far_scene,
                            gone_scene_id)  # fmt: skip


async def seed_foreign_rows(bot: StoryBot) -> tuple[Story, Scene, str]:
    """A story (with a scene) of OWNER's in another server, and a scene whose story was deleted."""
    db, now = bot.runtime.db, bot.runtime.clock.now()
    elsewhere = Story(guild_id=1234, owner_id=OWNER, prompt="far away", title="Far Away", text_model="local-template",
                      image_model="local-sketch", scene_count=1, created_at=now, updated_at=now)  # fmt: skip
    gone = elsewhere.model_copy(update={"id": new_id(), "guild_id": GUILD_ID})
    far_scene = Scene(story_id=elsewhere.id, index=0, text="t", updated_at=now)
    gone_scene = Scene(story_id=gone.id, index=0, text="t", updated_at=now)
    async with db.transaction() as conn:
        for story, scene in ((elsewhere, far_scene), (gone, gone_scene)):
            await story_rows.insert(conn, story)
            await scene_rows.insert_many(conn, [scene])
        await story_rows.delete(conn, gone.id)
    return elsewhere, far_scene, gone_scene.id


# --- what "nothing changed" means ------------------------------------------------------------------


def snapshot(world: World) -> dict[str, Any]:
    """Every row of the story tables, every media file, every public message and thread."""
    path = world.settings.database_path
    rows = {table: sorted(repr(tuple(row)) for row in select(path, f"SELECT * FROM {table}")) for table in STORY_TABLES}
    media = world.settings.media_dir
    files = sorted((str(p.relative_to(media)), p.stat().st_size) for p in media.rglob("*") if p.is_file())
    fake = world.fake
    messages = [
        (m.id, m.channel_id, m.content, json.dumps([m.embeds, m.components], sort_keys=True),
         [a.filename for a in m.attachments], m.edit_count, m.deleted)
        for channel in fake.messages.values() for m in channel if not m.ephemeral
    ]  # fmt: skip
    threads = [(c.id, c.name) for c in fake.threads()]
    return {"rows": rows, "media": files, "messages": messages, "threads": threads}


# --- the rows ------------------------------------------------------------------------------------

Act = Callable[[World], Awaitable[InteractionHandle]]
Upload = tuple[str, Callable[[], bytes], str | None]  # the bytes are made when the row runs


@dataclass(frozen=True)
class Row:
    id: str
    act: Act
    expected: tuple[str, ...]  # phrases the answer must contain (any case: answers are capitalised)


def new_story(prompt: str = "a cat who sails", reference: Upload | None = None, **options: Any) -> Act:
    async def act(world: World) -> InteractionHandle:
        given = {"prompt": prompt, **options}
        if reference is not None:
            filename, data, content_type = reference
            given["reference"] = world.fake.upload(filename, data(), content_type)
        return await world.fake.slash(OWNER, "story", "new", options=given)

    return act


def story_sub(subcommand: str, user: int, pick: Callable[[World], str]) -> Act:
    async def act(world: World) -> InteractionHandle:
        return await world.fake.slash(user, "story", subcommand, options={"story": pick(world)})

    return act


def listing(page: int) -> Act:
    async def act(world: World) -> InteractionHandle:
        return await world.fake.slash(OWNER, "story", "list", options={"page": page})

    return act


def config(user: int, subcommand: str, **options: Any) -> Act:
    async def act(world: World) -> InteractionHandle:
        given = {k: (v(world) if callable(v) else v) for k, v in options.items()}
        return await world.fake.slash(user, "config", subcommand, options=given)

    return act


def forged_press(user: int, custom_id: Callable[[World], str]) -> Act:
    async def act(world: World) -> InteractionHandle:
        return await world.fake.click_forged(user, custom_id(world))

    return act


def real_press(user: int) -> Act:
    async def act(world: World) -> InteractionHandle:
        return await world.fake.click(user, world.picture_id, f"storybot:redraw:{world.scene.id}")

    return act


def a_thread(world: World) -> FakeChannel:
    return world.fake.threads()[0]


def unknown_channel(world: World) -> FakeChannel:
    return FakeChannel(world.fake.ids.next(), "ghost")


CANNOT_START = "Cannot start the story: "
NOT_FOUND = "I can't find that story in this server"
SOMEONE_ELSES = "That story belongs to someone else; only its owner can"
NOT_STORYBOTS = "This button was not made by storybot; nothing was changed"
NEEDS_MANAGE = "You need the Manage Server permission"
NOTHING_CHANGED = "Nothing changed: "
IMAGE_FORMATS = "attach a PNG, JPEG or WebP picture"


def story_rows_table() -> list[Row]:
    return [
        Row("empty-prompt", new_story(""), (CANNOT_START, "the prompt is empty", "describe the story")),
        Row("whitespace-prompt", new_story(" \t\n  "), ("the prompt is empty",)),
        Row("zero-width-prompt", new_story("\u200b\u200c\u200d\u2060\ufeff"), ("the prompt is empty",)),
        Row("control-char-prompt", new_story("\x00\x01\x07\x1b\x7f"), ("the prompt is empty",)),
        Row("1001-char-prompt", new_story("x" * 1001), ("1001 characters long; keep it to 1000 or fewer",)),
        Row("6000-char-prompt", new_story("y" * 6000), ("6000 characters long",)),
        Row("scenes-0", new_story(scenes=0), ("scenes must be between 1 and 10 (got 0)",)),
        Row("scenes-11", new_story(scenes=11), ("scenes must be between 1 and 10 (got 11)",)),
        Row("scenes-minus-1", new_story(scenes=-1), ("scenes must be between 1 and 10 (got -1)",)),
        Row("scenes-huge", new_story(scenes=2**53), ("scenes must be between 1 and 10",)),
        Row("unknown-model", new_story(image_model="xyzzy-art"), ("unknown model 'xyzzy-art'", "local-sketch")),
        Row("mention-as-model", new_story(image_model="<@&110>"), ("unknown model '<@&110>'", "local-sketch")),
        Row(
            "video-model-as-image-model",
            new_story(image_model="local-kenburns"),
            ("'local-kenburns' is a video model, not an image model", "local-sketch"),
        ),
        Row(
            "image-model-as-video-model",
            new_story(video=True, video_model="local-sketch"),
            ("'local-sketch' is an image model, not a video model", "local-kenburns"),
        ),
        Row("model-without-key", new_story(image_model="gpt-image-1.5"), ("set OPENAI_API_KEY", "local-sketch")),
        Row("retired-model", new_story(image_model="dall-e-3"), ("retired", "use gpt-image-1.5 instead")),
        Row("video-model-without-video", new_story(video_model="local-kenburns"), ("without video", "turn video on")),
        Row("201-char-style", new_story(style="s" * 201), ("the style is 201 characters long; keep it to 200",)),
        Row(
            "reference-text-file",
            new_story(reference=("notes.txt", lambda: b"hello", "text/plain")),
            ("must be an image (PNG, JPEG or WebP), not text/plain",),
        ),
        Row(
            "reference-fake-png",
            new_story(reference=("fake.png", lambda: b"\x89PNG not really", "image/png")),
            ("the reference is not an image", IMAGE_FORMATS),
        ),
        Row(
            "reference-truncated-png",
            new_story(reference=("half.png", lambda: image_bytes("PNG", (64, 64))[:60], "image/png")),
            ("the reference is not an image",),
        ),
        Row(
            "reference-25-mib",
            new_story(reference=("huge.png", lambda: b"\x89PNG" + bytes(25 * MIB), "image/png")),
            ("the reference image is 25.0 MiB; keep it under 20 MiB",),
        ),
        Row(
            "reference-100-megapixels",
            new_story(reference=("bomb.png", lambda: image_bytes("PNG", (10_000, 10_000), "1"), "image/png")),
            ("10000×10000 pixels", "megapixels"),
        ),
        Row("reference-gif", new_story(reference=("a.gif", lambda: image_bytes("GIF"), "image/gif")), ("a GIF image",)),
        Row("reference-bmp", new_story(reference=("a.bmp", lambda: image_bytes("BMP"), "image/bmp")), ("a BMP image",)),
        Row(
            "reference-gif-posing-as-png",
            new_story(reference=("a.png", lambda: image_bytes("GIF"), "image/png")),
            ("a GIF image", IMAGE_FORMATS),
        ),
        Row(
            "reference-png-posing-as-text",
            new_story(reference=("a.png", png_bytes, "text/plain")),
            ("must be an image", "not text/plain"),
        ),
        Row(
            "reference-without-content-type",
            new_story(reference=("mystery", png_bytes, None)),
            ("must be an image", "not an unknown type"),
        ),
    ]


def library_rows() -> list[Row]:
    def mine(world: World) -> str:
        return world.story.id

    def far(world: World) -> str:
        return world.elsewhere.id

    return [
        Row("show-garbage", story_sub("show", OWNER, lambda _: "no such story!"), (NOT_FOUND, "/story list")),
        Row("show-sql", story_sub("show", OWNER, lambda _: SQLISH), (NOT_FOUND,)),
        Row("show-like-wildcard", story_sub("show", OWNER, lambda _: "%"), (NOT_FOUND,)),
        Row("show-10-kb", story_sub("show", OWNER, lambda _: TEN_KB), (NOT_FOUND,)),
        Row("show-other-server", story_sub("show", OWNER, far), (NOT_FOUND,)),
        Row("show-other-server-prefix", story_sub("show", OWNER, lambda w: w.elsewhere.id[:8]), (NOT_FOUND,)),
        Row("show-someone-elses", story_sub("show", STRANGER, mine), (SOMEONE_ELSES,)),
        Row("delete-garbage", story_sub("delete", OWNER, lambda _: "no such story!"), (NOT_FOUND,)),
        Row("delete-sql", story_sub("delete", OWNER, lambda _: SQLISH), (NOT_FOUND,)),
        Row("delete-10-kb", story_sub("delete", OWNER, lambda _: TEN_KB), (NOT_FOUND,)),
        Row("delete-other-server", story_sub("delete", OWNER, far), (NOT_FOUND,)),
        Row("delete-someone-elses", story_sub("delete", STRANGER, mine), (SOMEONE_ELSES,)),
        Row("list-page-0", listing(0), ("there is no page 0",)),
        Row("list-page-1001", listing(1001), ("there is no page 1001",)),
    ]


def config_rows() -> list[Row]:
    image = {"modality": "image"}
    return [
        Row(
            "config-unknown-model",
            config(ADMIN, "routing", **image, primary="xyzzy"),
            (NOTHING_CHANGED, "unknown model 'xyzzy'"),
        ),
        Row(
            "config-wrong-modality",
            config(ADMIN, "routing", **image, primary="local-kenburns"),
            (NOTHING_CHANGED, "'local-kenburns' is a video model, not an image model"),
        ),
        Row(
            "config-model-without-key",
            config(ADMIN, "routing", **image, primary="gpt-image-1.5"),
            (NOTHING_CHANGED, "set OPENAI_API_KEY"),
        ),
        Row(
            "config-primary-in-fallbacks",
            config(ADMIN, "routing", **image, primary="local-sketch", fallbacks="local-sketch"),
            (NOTHING_CHANGED, "'local-sketch' is already the primary model"),
        ),
        Row(
            "config-5-fallbacks",
            config(ADMIN, "routing", **image, primary="local-sketch", fallbacks="a, b, c, d, e"),
            (NOTHING_CHANGED, "name at most 4 fallbacks (you named 5)"),
        ),
        Row(
            "config-fallbacks-without-primary",
            config(ADMIN, "routing", **image, fallbacks="local-sketch"),
            (NOTHING_CHANGED, "name a primary model for the fallbacks"),
        ),
        Row(
            "config-limit-minus-1",
            config(ADMIN, "limits", images=-1),
            (NOTHING_CHANGED, "between 0 and 10000 (got -1)"),
        ),
        Row("config-limit-10001", config(ADMIN, "limits", videos=10001), ("between 0 and 10000 (got 10001)",)),
        Row("config-limits-empty", config(ADMIN, "limits"), (NOTHING_CHANGED, "give images, videos")),
        Row(
            "config-limit-set-and-cleared", config(ADMIN, "limits", images=5, clear="images"), ("both set and cleared",)
        ),
        Row(
            "config-alerts-in-a-thread",
            config(ADMIN, "alerts", channel=a_thread),
            ("Nothing was done", "a text channel"),
        ),
        Row("config-alerts-unknown-channel", config(ADMIN, "alerts", channel=unknown_channel), ("a text channel",)),
        Row("config-show-not-admin", config(OWNER, "show"), (NEEDS_MANAGE,)),
        Row("config-video-not-admin", config(STRANGER, "video", enabled=False), (NEEDS_MANAGE,)),
        Row("config-limits-not-admin", config(OWNER, "limits", images=0), (NEEDS_MANAGE,)),
        Row("config-routing-not-admin", config(OWNER, "routing", **image, primary="local-sketch"), (NEEDS_MANAGE,)),
    ]


def button_rows() -> list[Row]:
    return [
        Row("button-garbage-scene", forged_press(OWNER, lambda _: "storybot:retry:garbage"), (NOT_STORYBOTS,)),
        Row("button-sql-scene", forged_press(OWNER, lambda _: f"storybot:redraw:{SQLISH}"), (NOT_STORYBOTS,)),
        Row(
            "button-foreign-id",
            forged_press(OWNER, lambda _: "xyzzy:launch:42"),
            ("not one storybot knows", "nothing was changed"),
        ),
        Row(
            "button-missing-scene",
            forged_press(OWNER, lambda _: f"storybot:redraw:{new_id()}"),
            ("this scene no longer exists", "nothing was changed"),
        ),
        Row(
            "button-deleted-story",
            forged_press(OWNER, lambda w: f"storybot:retry:{w.gone_scene_id}"),
            ("this scene no longer exists",),
        ),
        Row(
            "button-other-server",
            forged_press(OWNER, lambda w: f"storybot:redraw:{w.far_scene.id}"),
            ("belongs to a story in another server", "nothing was changed"),
        ),
        Row(
            "button-retry-without-clips",
            forged_press(OWNER, lambda w: f"storybot:retry:{w.scene.id}"),
            ("this story has no clips",),
        ),
        Row(
            "button-stranger-presses-redraw",
            real_press(STRANGER),
            ("Only the story's owner or a member with Manage Messages can redraw this picture",),
        ),
    ]


ROWS = story_rows_table() + library_rows() + config_rows() + button_rows()


def test_the_table_is_big_enough() -> None:
    assert len(ROWS) >= 45 and len({row.id for row in ROWS}) == len(ROWS)


@IN_MODULE_LOOP
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_bad_input_gets_a_clear_private_answer_and_changes_nothing(world: World, row: Row) -> None:
    before = snapshot(world)
    handle = await row.act(world)
    ack = await handle.ack(ACK_S)
    assert (ack.type, ack.status, ack.ephemeral) == (4, 200, True), ack
    text = str(ack.data["content"])
    for phrase in row.expected:  # a service message may be capitalised into a sentence
        assert phrase.lower() in text.lower(), text
    assert text.startswith(("⚠️", "⛔")), text
    assert ack.data.get("allowed_mentions", {"parse": []})["parse"] == [], ack.data
    assert len(handle.attempts) == 1 and handle.followups == []
    assert snapshot(world) == before


@IN_MODULE_LOOP
async def test_a_prompt_full_of_mentions_is_posted_without_pinging_anyone(world: World) -> None:
    before = snapshot(world)
    seen = {m.id for channel in world.fake.messages.values() for m in channel}
    handle = await world.fake.slash(OWNER, "story", "new", options={"prompt": MENTIONS, "scenes": 1})
    ack: CallbackRecord = await handle.ack(ACK_S)
    assert (ack.type, ack.status) == (5, 200)
    await wait_for_story(world.fake, handle, scenes=1, video=False)
    stories = await storage_testing.list_all(world.bot.runtime.db)
    assert len(stories) == len(before["rows"]["stories"]) + 1
    [story] = [s for s in stories if s.storyboard_message_id == handle.original.id]
    assert story.prompt == MENTIONS  # stored as typed; only its posting is defused
    posted = [m for channel in world.fake.messages.values() for m in channel if m.id not in seen and not m.ephemeral]
    assert len(posted) >= 3  # the storyboard, the picture, the closing note
    for message in posted:
        assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == [], message
        assert not message.allowed_mentions.get("users") and not message.allowed_mentions.get("roles")
    assert world.fake.channels[handle.original.id].name == story.title
