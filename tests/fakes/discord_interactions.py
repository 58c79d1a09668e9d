"""INTERACTION_CREATE payloads (discord-wire.md section 3) and the handles tests hold on to."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.fakes.discord_state import JSON, CallbackRecord, FakeAttachment, FakeChannel, FakeInteraction, FakeMessage

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_CHANNEL = 7
OPTION_NUMBER = 10
OPTION_ATTACHMENT = 11

INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4


@dataclass(frozen=True)
class Typed:
    """An option value with an explicit Discord option type, e.g. ``Typed(OPTION_NUMBER, 2)``."""

    type: int
    value: Any


def option_payload(name: str, value: Any, resolved: dict[str, JSON]) -> JSON:
    if isinstance(value, Typed):
        return {"type": value.type, "name": name, "value": value.value}
    if isinstance(value, FakeAttachment):
        resolved.setdefault("attachments", {})[str(value.id)] = value.payload()
        return {"type": OPTION_ATTACHMENT, "name": name, "value": str(value.id)}
    if isinstance(value, FakeChannel):
        partial = {"id": str(value.id), "name": value.name, "type": value.type, "permissions": "0"}
        if value.is_thread:  # Discord resolves a thread with its parent, owner, counts and metadata
            thread = value.payload(0)
            partial.update({k: v for k, v in thread.items() if k not in ("guild_id", "position")})
        resolved.setdefault("channels", {})[str(value.id)] = partial
        return {"type": OPTION_CHANNEL, "name": name, "value": str(value.id)}
    if isinstance(value, bool):  # before int: bool is an int subclass
        return {"type": OPTION_BOOLEAN, "name": name, "value": value}
    if isinstance(value, int):
        return {"type": OPTION_INTEGER, "name": name, "value": value}
    if isinstance(value, float):
        return {"type": OPTION_NUMBER, "name": name, "value": value}
    if isinstance(value, str):
        return {"type": OPTION_STRING, "name": name, "value": value}
    raise TypeError(f"option {name!r}: cannot infer a Discord option type for {value!r}; wrap it in Typed(...)")


def command_data(
    command: JSON | None,
    name: str,
    *,
    group: str | None,
    subcommand: str | None,
    options: Mapping[str, Any],
    focused: str | None = None,
) -> JSON:
    resolved: dict[str, JSON] = {}
    leaf: list[JSON] = []
    for option_name, value in options.items():
        if option_name == focused:
            # Autocomplete sends the partial text typed so far, always as a string.
            typed = value.type if isinstance(value, Typed) else OPTION_STRING
            raw = value.value if isinstance(value, Typed) else value
            leaf.append({"type": typed, "name": option_name, "value": str(raw), "focused": True})
        else:
            leaf.append(option_payload(option_name, value, resolved))
    if focused is not None and focused not in options:
        leaf.append({"type": OPTION_STRING, "name": focused, "value": "", "focused": True})
    chain = leaf
    if subcommand is not None:
        chain = [{"type": OPTION_SUB_COMMAND, "name": subcommand, "options": chain}]
    if group is not None:
        if subcommand is None:
            raise ValueError("a sub-command group needs a subcommand")
        chain = [{"type": OPTION_SUB_COMMAND_GROUP, "name": group, "options": chain}]
    data: JSON = {"id": str(command["id"]) if command else "0", "name": name, "type": 1, "options": chain}
    if command and command.get("guild_id"):
        data["guild_id"] = str(command["guild_id"])
    if resolved:
        data["resolved"] = resolved
    return data


def new_token() -> str:
    return "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)


def find_component(message: FakeMessage, custom_id: str) -> JSON | None:
    stack = list(message.components)
    while stack:
        component = stack.pop(0)
        if component.get("custom_id") == custom_id:
            return component
        stack.extend(component.get("components", []))
        if isinstance(component.get("accessory"), dict):
            stack.append(component["accessory"])
    return None


class InteractionHandle:
    """What a test holds after sending an interaction: wait for the ack, then read the messages it made."""

    def __init__(self, fake: FakeDiscord, interaction: FakeInteraction) -> None:
        self.fake = fake
        self.interaction = interaction

    @property
    def id(self) -> int:
        return self.interaction.id

    @property
    def token(self) -> str:
        return self.interaction.token

    @property
    def payload(self) -> JSON:
        return self.interaction.payload

    @property
    def callback(self) -> CallbackRecord | None:
        """The accepted callback, if any."""
        return self.interaction.callback

    @property
    def attempts(self) -> list[CallbackRecord]:
        """Every callback the bot posted, accepted or refused."""
        return list(self.interaction.attempts)

    async def ack(self, timeout_s: float = 5.0) -> CallbackRecord:
        """Wait for the bot's first callback (accepted or refused; check ``.status``)."""
        attempts = self.interaction.attempts
        return await self.fake.wait_until(lambda: attempts[0] if attempts else None, timeout_s, f"ack of {self.id}")

    @property
    def original(self) -> FakeMessage | None:
        """The @original message: the response, the (edited) loading message, or the clicked message."""
        if self.interaction.original_id is None:
            return None
        return self.fake.messages_by_id.get(self.interaction.original_id)

    @property
    def followups(self) -> list[FakeMessage]:
        """Messages created by followups. The followup that replaced a loading message is ``original``."""
        return [self.fake.messages_by_id[m] for m in self.interaction.followup_ids]

    @property
    def messages(self) -> list[FakeMessage]:
        original = self.original
        return ([original] if original is not None else []) + self.followups
