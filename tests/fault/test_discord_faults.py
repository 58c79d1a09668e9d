"""Discord misbehaves mid-story: 429s, 5xx on message posts (some after the message was already made,
so only the answer was lost), a lost answer to the thread creation, failed storyboard edits, and the
interaction token expiring. Every delivery is retried and nothing is posted twice.

The real StoryBot (local models, DiscordPublisher) runs against the fake Discord. Posts carry a nonce
with ``enforce_nonce``, so a resend of a post whose answer was lost gets the first message back (the
fake does what Discord does); without that, the lost answers below would double the scene messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain import JobStatus
from tests.fakes.discord import FakeDiscord
from tests.support.discord_harness import OWNER, make_settings, running, storyboard_done
from tests.support.ledger import assert_nothing_lost_or_doubled

pytestmark = pytest.mark.slow

SCENES = 2
TIMEOUT_S = 60.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        server.add_member(OWNER, "owner")
        yield server


def inject_faults(fake: FakeDiscord) -> None:
    """Faults on one route are served in this order, to its next requests."""
    fake.inject("channel_send", 429, retry_after=0.1, times=2)
    # Posted, but the answer is a 503: discord.py gives up at once, so the deliver job fails and is retried.
    fake.inject("channel_send", 503, after=True)
    # Posted, but the answer is a 502: discord.py sends the same request again after a second.
    fake.inject("channel_send", 502, after=True)
    fake.inject("channel_send", 500)  # refused outright; discord.py sends it again
    fake.inject("create_thread_from_message", 502, after=True)  # the thread exists; the retry hears 160004
    fake.inject("channel_edit_message", 429, retry_after=0.1)
    fake.inject("channel_edit_message", 503)


def final_note_posted(fake: FakeDiscord, thread_id: int) -> bool:
    return any("is finished" in m.content for m in fake.channel_messages(thread_id))


async def test_discord_faults_mid_story_retry_deliveries_and_post_nothing_twice(
    fake: FakeDiscord, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, fake, video_duration_s=3)
    inject_faults(fake)
    async with running(settings, storyboard_interval_s=0.2) as bot:
        options = {"prompt": "a lighthouse keeper befriends a storm", "scenes": SCENES, "video": True}
        handle = await fake.slash(OWNER, "story", "new", options=options)
        await fake.wait_until(lambda: handle.original and handle.original.embeds, TIMEOUT_S, "the storyboard")
        board = handle.original
        assert board is not None
        fake.expire_tokens()  # as if 15 minutes had passed, with the story under way
        expired_at = len(fake.requests)
        await fake.wait_until(lambda: final_note_posted(fake, board.id), TIMEOUT_S, "the final note")
        await fake.wait_until(lambda: storyboard_done(fake, board.id, SCENES, True), TIMEOUT_S, "storyboard done")
        await fake.wait_until(lambda: fake.requests and bot.publisher.updater.pending == 0, TIMEOUT_S, "edits")
        assert (await bot.runtime.queue.counts())[JobStatus.QUEUED] == 0
        # The post whose 503 discord.py did not retry failed its deliver job, and the job ran again.
        retried = await bot.runtime.db.fetchone("SELECT max(attempts) FROM jobs WHERE kind = 'deliver'")
        assert retried is not None and retried[0] >= 2

    # Every fault was served.
    assert [f for f in fake.faults if f.times] == []
    sends = [r.status for r in fake.requests_to("channel_send")]
    assert {429, 500, 502, 503} <= set(sends), sends

    # Each scene's picture and clip, and the final note, were posted exactly once, in one thread.
    [thread] = fake.threads()
    assert thread.id == board.id
    assert fake.channel_messages() == [board]
    posted = fake.channel_messages(thread.id)
    files = Counter(a.filename for m in posted for a in m.attachments)
    expected = {f"scene-{n:02d}-{kind}" for n in range(1, SCENES + 1) for kind in ("image.png", "video.mp4")}
    assert files == Counter(expected), files
    assert sum("is finished" in m.content for m in posted) == 1
    assert len(posted) == 2 * SCENES + 1, [m.content for m in posted]
    assert len({m.nonce for m in posted}) == len(posted)
    # A resend whose first try was made anyway got that message back: more sends than messages.
    assert len(sends) > len(posted)

    # The storyboard kept being edited through the channel after the interaction token expired.
    board_edits = [
        r for r in fake.requests[expired_at:] if r.route == "channel_edit_message" and r.path.endswith(f"/{board.id}")
    ]
    assert any(r.status == 200 for r in board_edits), [r.status for r in board_edits]
    assert storyboard_done(fake, board.id, SCENES, True)
    assert len(fake.callbacks) == 1  # only the defer

    # The database agrees: each delivery recorded once, one per item, nothing lost.
    assert_nothing_lost_or_doubled(settings.database_path, stories=1, scenes=SCENES, video=True)
