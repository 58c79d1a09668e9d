"""Commands as a hostile or hurried member sends them, end to end against the fake Discord: thirty
/story new at once, and prompts full of markdown, masked links and mentions (issue #11, item 10)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from storage import testing as storage_testing
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_state import FakeMessage
from tests.support.discord_harness import OWNER, STORY_TIMEOUT_S, make_settings, running

HOSTILE_PROMPT = "**Bold** fox [click me](https://evil.example/x) @everyone <@201> <@&110> ||spoiler|| `code`"
# What must never show unescaped: a masked link, bold, a spoiler, inline code, a mass mention, a user mention.
RAW = [
    re.compile(r"(?<!\\)\[click me\]\(https://evil"),
    re.compile(r"(?<!\\)\*\*Bold(?<!\\)\*\*"),
    re.compile(r"(?<!\\)\|\|spoiler"),
    re.compile(r"(?<!\\)`code"),
    re.compile(r"@everyone"),
    re.compile(r"<@201>"),
]


async def test_thirty_commands_at_once_are_refused_privately_past_the_limit(
    fake: FakeDiscord,
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, fake, max_running_stories=2)
    async with running(settings, storyboard_interval_s=0.5) as bot:
        handles = await asyncio.gather(
            *(fake.slash(OWNER, "story", "new", options={"prompt": f"a fox, take {i}", "scenes": 1}) for i in range(30))
        )
        acks = await asyncio.gather(*(handle.ack(STORY_TIMEOUT_S) for handle in handles))
        started = [ack for ack in acks if ack.type == 5]
        refused = [ack for ack in acks if ack.type == 4]
        assert len(started) == 2 and len(refused) == 28, [(a.type, a.data) for a in acks]
        assert all(ack.ephemeral and "you already have 2 stories being made" in ack.data["content"] for ack in refused)
        assert all(not ack.ephemeral for ack in started)
        assert len(await storage_testing.list_all(bot.runtime.db)) == 2
        public = [m for m in fake.channel_messages() if not m.ephemeral]
        assert not any("Cannot" in m.content or "could not" in m.content for m in public)


def visible_texts(message: FakeMessage) -> list[str]:
    texts = [message.content]
    for embed in message.embeds:
        texts += [embed.get("title", ""), embed.get("description", "")]
        texts += [f"{f['name']} {f['value']}" for f in embed.get("fields", [])]
    return texts


async def test_markdown_links_and_mentions_from_a_prompt_are_shown_escaped(
    fake: FakeDiscord,
    tmp_path: Path,
) -> None:
    async with running(make_settings(tmp_path, fake), storyboard_interval_s=0.2) as bot:
        handle = await fake.slash(OWNER, "story", "new", options={"prompt": HOSTILE_PROMPT, "scenes": 2})
        assert (await handle.ack()).type == 5
        await fake.wait_until(lambda: handle.original and handle.original.embeds, STORY_TIMEOUT_S, "the storyboard")
        board = handle.original
        assert board is not None
        await fake.wait_until(
            lambda: any("is finished" in m.content for m in fake.channel_messages(board.id)), STORY_TIMEOUT_S, "end"
        )
        listed = await (await fake.slash(OWNER, "story", "list")).ack()
        [story] = await storage_testing.list_all(bot.runtime.db)
        shown = [fake.message(board.id), *fake.channel_messages(board.id)]
        texts = [text for message in shown for text in visible_texts(message)] + [str(listed.data)]
        assert any("click me" in text for text in texts), "the prompt is shown somewhere"
        leaks = [(pattern.pattern, text) for text in texts for pattern in RAW if pattern.search(text)]
        assert leaks == []
        assert story.prompt == " ".join(HOSTILE_PROMPT.split())  # stored as typed; only its display is escaped
