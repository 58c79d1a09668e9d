"""The e2e fixtures: the fake Discord, with the story owner as a member. The bot that runs against it, and the
waits on what it posts, are plain helpers in tests/support/discord_harness.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.discord import FakeDiscord
from tests.support.discord_harness import OWNER


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """The fake Discord; a module that needs more members or a clock overrides this fixture."""
    async with FakeDiscord() as server:
        server.add_member(OWNER, "owner")
        yield server
