"""Thread lifecycle of the fake Discord: auto-archiving on the fake's clock, archived and locked threads.

Sources (discord/discord-api-docs):
- developers/topics/threads.mdx, "Active & Archived Threads": threads archive after a period of inactivity
  ("Activity" is "sending a message, unarchiving a thread, or changing the auto-archive time"); users cannot
  edit messages in archived threads; "Sending a message will automatically unarchive the thread, unless the
  thread has been locked by a moderator"; locked threads "can only be unarchived by a user with the
  MANAGE_THREADS permission".
- threads.mdx, "Locked Threads": without MANAGE_THREADS users cannot create or update messages in locked
  threads, and may delete messages there only while the thread is active (un-archived).
- developers/resources/channel.mdx, "Modify Channel" / "JSON Params (Thread)": "When setting archived to
  false, when locked is also false, only the SEND_MESSAGES permission is required. Otherwise, requires the
  MANAGE_THREADS permission. Fires a Thread Update Gateway event. Requires the thread to have archived set to
  false or be set to false in the request." threads.mdx "Editing & Deleting Threads" also lets the thread's
  creator rename or archive it; the two pages disagree, so the fake takes the stricter channel.mdx rule.
- Error codes (developers/topics/opcodes-and-status-codes.mdx, "JSON Error Codes"): 50083 "Tried to perform
  an operation on an archived thread, such as editing a message", and 160005 "Thread is locked". The docs
  give neither status nor message text: 50083 is answered as 400 "Thread is archived", what Discord sends
  (the text is quoted in discord/discord-api-docs issue #6928, closed as working as intended; the 400 in user
  logs such as victornpb/undiscord issue #399); 160005 as 403 "Thread is locked", like the other refusals
  made for want of a permission (here MANAGE_THREADS).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from tests.fakes.discord_permissions import missing_permissions
from tests.fakes.discord_state import (
    JSON,
    PERM_MANAGE_THREADS,
    PERM_SEND_MESSAGES,
    ApiError,
    FakeChannel,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

# channel.mdx, "Start Thread from Message" / "JSON Params (Thread)": auto_archive_duration "can be set to: 60,
# 1440, 4320, 10080" (minutes).
AUTO_ARCHIVE_DURATIONS = (60, 1440, 4320, 10080)
WATCH_INTERVAL_S = 0.05  # how often the fake looks at its clock for threads that have gone idle
THREAD_FIELDS = ("name", "archived", "auto_archive_duration", "locked", "invitable", "rate_limit_per_user")


def thread_archived() -> ApiError:
    return ApiError(400, 50083, "Thread is archived")


def thread_locked() -> ApiError:
    return ApiError(403, 160005, "Thread is locked")


def invalid_form(field: str, code: str, message: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", {field: {"_errors": [{"code": code, "message": message}]}})


def check_auto_archive_duration(value: object) -> int:
    if value not in AUTO_ARCHIVE_DURATIONS:
        raise invalid_form(
            "auto_archive_duration", "BASE_TYPE_CHOICES", f"Value must be one of {AUTO_ARCHIVE_DURATIONS}."
        )
    return int(value)  # type: ignore[call-overload]


def check_name(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 100:
        raise invalid_form("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
    return value


class ThreadLifecycle:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self._watcher: asyncio.Task[None] | None = None

    # state changes (each announces the thread with THREAD_UPDATE) ----------------------------------------
    def settle(self) -> None:
        """Archive, for good, every thread whose inactivity period has run out on the clock."""
        for thread in self.fake.threads():
            if thread.archived and not thread.archived_flag:
                thread.archive_changed_at = thread.idle_archive_at
                thread.archived_flag = True
                self.announce(thread)

    def archive(self, thread: FakeChannel) -> None:
        self.settle()
        if not thread.archived_flag:
            self._set_archived(thread, True)
            self.announce(thread)

    def unarchive(self, thread: FakeChannel) -> None:
        self._set_archived(thread, False)
        self.announce(thread)

    def lock(self, thread: FakeChannel, *, archived: bool = True) -> None:
        self.settle()
        thread.locked = True
        if thread.archived_flag != archived:
            self._set_archived(thread, archived)
        self.announce(thread)

    def announce(self, thread: FakeChannel) -> None:
        self.fake.gateway.dispatch_soon("THREAD_UPDATE", thread.payload(self.fake.guild_id))
        self.fake.notifier.notify()

    def _set_archived(self, thread: FakeChannel, archived: bool) -> None:
        now = self.fake.clock.now()
        thread.archived_flag = archived
        thread.archive_changed_at = now
        if not archived:
            thread.last_activity_at = now  # unarchiving counts as activity

    # rules for the channel routes ------------------------------------------------------------------------
    def check_send(self, thread: FakeChannel, permissions: int) -> None:
        """A send into a locked thread is refused without MANAGE_THREADS (an archived, unlocked one is then
        unarchived by the send itself: see ``unarchive``)."""
        if thread.locked and not permissions & PERM_MANAGE_THREADS:
            raise thread_locked()

    def before_edit(self, thread: FakeChannel, permissions: int) -> None:
        if thread.archived:
            raise thread_archived()
        if thread.locked and not permissions & PERM_MANAGE_THREADS:
            raise thread_locked()

    def before_delete(self, thread: FakeChannel, permissions: int) -> None:
        if thread.locked and thread.archived and not permissions & PERM_MANAGE_THREADS:
            raise thread_archived()

    def modify(self, thread: FakeChannel, payload: JSON, permissions: int) -> None:
        """PATCH /channels/{thread.id}: check the request against the documented rules, then apply it."""
        archived, locked = payload.get("archived"), payload.get("locked")
        if thread.archived and archived is not False:
            raise thread_archived()
        fields = {key for key in THREAD_FIELDS if key in payload}
        only_unarchive = (
            archived is False and not thread.locked and not locked and fields <= {"archived", "locked"}
        )  # fmt: skip
        needed = PERM_SEND_MESSAGES if only_unarchive else PERM_MANAGE_THREADS
        if permissions & needed != needed:
            raise missing_permissions()
        if "name" in payload:
            thread.name = check_name(payload["name"])
        if "auto_archive_duration" in payload:
            thread.auto_archive_duration = check_auto_archive_duration(payload["auto_archive_duration"])
            thread.last_activity_at = self.fake.clock.now()  # changing the auto-archive time is activity
        if locked is not None:
            thread.locked = bool(locked)
        if archived is not None and bool(archived) != thread.archived:
            self._set_archived(thread, bool(archived))
        self.announce(thread)

    def touch(self, thread: FakeChannel) -> None:
        thread.last_activity_at = self.fake.clock.now()

    # the clock watcher -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def _watch(self) -> None:
        """The clock only moves when a test advances it: look now and then, so a thread that went idle is
        archived (and THREAD_UPDATE sent) even when no request arrives."""
        while True:
            self.settle()
            await asyncio.sleep(WATCH_INTERVAL_S)
