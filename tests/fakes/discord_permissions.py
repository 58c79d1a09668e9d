"""Channel permissions of the fake Discord, computed and enforced the way Discord documents them.

Computation: discord/discord-api-docs developers/topics/permissions.mdx, "Permission Overwrites" (the
``compute_base_permissions`` / ``compute_overwrites`` pseudocode): the guild owner has everything; otherwise
@everyone's permissions OR the member's roles; ADMINISTRATOR means everything and skips overwrites; then the
@everyone overwrite (deny, then allow), the member's role overwrites (all denies, then all allows), and the
member's own overwrite. Threads use their parent channel's overwrites ("Inherited Permissions (Threads)").

Refusals: 403 code 50001 "Missing Access" without VIEW_CHANNEL (permissions.mdx "Implicit Permissions":
without it every other permission on the channel is ignored), else 403 code 50013 "Missing Permissions"
(developers/topics/opcodes-and-status-codes.mdx, "JSON Error Codes").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fakes.discord_state import (
    ALL_PERMISSIONS,
    DM_PERMISSIONS,
    GUILD_OWNER_ID,
    PERM_ADMINISTRATOR,
    PERM_SEND_MESSAGES,
    PERM_SEND_MESSAGES_IN_THREADS,
    PERM_VIEW_CHANNEL,
    ApiError,
    FakeChannel,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord


def missing_access() -> ApiError:
    return ApiError(403, 50001, "Missing Access")


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")


def send_permission(channel: FakeChannel) -> int:
    """The bit that lets one post in ``channel``: threads.mdx "Permissions" warns that SEND_MESSAGES has no
    effect in threads; there it is SEND_MESSAGES_IN_THREADS."""
    return PERM_SEND_MESSAGES_IN_THREADS if channel.is_thread else PERM_SEND_MESSAGES


class PermissionCalculator:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def base(self, user_id: int) -> int:
        """compute_base_permissions: the guild-level permissions of a member (0 for a non-member)."""
        fake = self.fake
        if user_id == GUILD_OWNER_ID:
            return ALL_PERMISSIONS
        member = fake.members.get(user_id)
        if member is None:
            return 0
        permissions = fake.roles[fake.guild_id].permissions
        for role_id in member.role_ids:
            role = fake.roles.get(role_id)
            if role is not None:
                permissions |= role.permissions
        if permissions & PERM_ADMINISTRATOR:
            return ALL_PERMISSIONS
        return permissions

    def in_channel(self, channel: FakeChannel, user_id: int) -> int:
        """compute_overwrites on the channel (on the parent, for a thread)."""
        if channel.is_dm:
            return DM_PERMISSIONS
        if channel.is_thread and channel.parent_id is not None:
            parent = self.fake.channels.get(channel.parent_id)
            if parent is not None:
                channel = parent
        base = self.base(user_id)
        if base & PERM_ADMINISTRATOR:
            return ALL_PERMISSIONS
        permissions = base
        everyone = channel.overwrites.get(self.fake.guild_id)
        if everyone is not None:
            permissions &= ~everyone.deny
            permissions |= everyone.allow
        member = self.fake.members.get(user_id)
        allow = deny = 0
        for role_id in member.role_ids if member else []:
            overwrite = channel.overwrites.get(role_id)
            if overwrite is not None:
                allow |= overwrite.allow
                deny |= overwrite.deny
        permissions &= ~deny
        permissions |= allow
        own = channel.overwrites.get(user_id)
        if own is not None:
            permissions &= ~own.deny
            permissions |= own.allow
        return permissions

    def require(self, channel: FakeChannel, needed: int = 0, user_id: int | None = None) -> int:
        """Refuse unless ``user_id`` (the bot by default) sees ``channel`` and has every bit of ``needed``;
        returns its permissions there."""
        permissions = self.in_channel(channel, self.fake.bot_user.id if user_id is None else user_id)
        if not permissions & PERM_VIEW_CHANNEL:
            raise missing_access()
        if permissions & needed != needed:
            raise missing_permissions()
        return permissions
