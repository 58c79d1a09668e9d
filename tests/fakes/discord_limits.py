"""Discord's server-side limits, enforced by the fake with the real error codes and error shapes.

discord.py checks almost none of these on the client side, so a bot that breaks them only finds out
from Discord. Each check raises ``ApiError``; the fake records it in ``fake.errors``.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.discord_state import JSON, ApiError, RecordedFile

MAX_CONTENT = 2000
MAX_ATTACHMENTS = 10
MAX_EMBEDS = 10
MAX_ACTION_ROWS = 5
MAX_ROW_CHILDREN = 5
MAX_COMPONENTS = 40
MAX_CUSTOM_ID = 100
MAX_BUTTON_LABEL = 80
MAX_CHOICES = 25
MAX_CHOICE_TEXT = 100
MAX_OPTIONS = 25
MAX_EMBED_TOTAL = 6000
EMBED_TEXT_LIMITS = {"title": 256, "description": 4096}
COMMAND_NAME = re.compile(r"^[-_'\w\u0900-\u097F\u0E00-\u0E7F]{1,32}$")


class FormErrors:
    """Collects 50035 errors in Discord's nested {"field": {"_errors": [...]}} shape."""

    def __init__(self) -> None:
        self.tree: JSON = {}

    def add(self, path: list[str | int], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def max_length(self, path: list[str | int], limit: int) -> None:
        self.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")

    def raise_if_any(self) -> None:
        if self.tree:
            raise ApiError(400, 50035, "Invalid Form Body", self.tree)


def validate_message(payload: JSON, files: list[RecordedFile], *, size_limit: int, creating: bool) -> None:
    """Check a message create/edit body; ``creating`` adds the empty-message rule."""
    for recorded in files:
        if len(recorded.data) > size_limit:
            raise ApiError(413, 40005, "Request entity too large")
    if len(files) > MAX_ATTACHMENTS or len(payload.get("attachments") or []) > MAX_ATTACHMENTS:
        raise ApiError(400, 30015, f"Maximum number of attachments in a message reached ({MAX_ATTACHMENTS})")
    errors = FormErrors()
    content = payload.get("content") or ""
    if not isinstance(content, str):
        errors.add(["content"], "BASE_TYPE_STRING", "Must be a string.")
    elif len(content) > MAX_CONTENT:
        errors.max_length(["content"], MAX_CONTENT)
    _check_embeds(payload.get("embeds") or [], errors)
    _check_components(payload.get("components") or [], errors, v2=bool(int(payload.get("flags") or 0) & (1 << 15)))
    errors.raise_if_any()
    has_body = any(payload.get(key) for key in ("embeds", "components", "sticker_ids", "poll", "attachments"))
    if creating and not (isinstance(content, str) and content.strip()) and not has_body and not files:
        raise ApiError(400, 50006, "Cannot send an empty message")


def _check_embeds(embeds: list[JSON], errors: FormErrors) -> None:
    if len(embeds) > MAX_EMBEDS:
        errors.max_length(["embeds"], MAX_EMBEDS)
    total = 0
    for index, embed in enumerate(embeds):
        for key, limit in EMBED_TEXT_LIMITS.items():
            text = embed.get(key) or ""
            total += len(text)
            if len(text) > limit:
                errors.max_length(["embeds", index, key], limit)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            errors.max_length(["embeds", index, "fields"], 25)
        for field_index, embed_field in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                text = embed_field.get(key) or ""
                total += len(text)
                if len(text) > limit:
                    errors.max_length(["embeds", index, "fields", field_index, key], limit)
        for key, sub_key, limit in (("footer", "text", 2048), ("author", "name", 256)):
            text = (embed.get(key) or {}).get(sub_key) or ""
            total += len(text)
            if len(text) > limit:
                errors.max_length(["embeds", index, key, sub_key], limit)
    if total > MAX_EMBED_TOTAL:
        errors.add(["embeds"], "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}")


def _check_components(components: list[JSON], errors: FormErrors, *, v2: bool) -> None:
    if not v2 and len(components) > MAX_ACTION_ROWS:
        errors.max_length(["components"], MAX_ACTION_ROWS)
    seen: set[str] = set()
    count = 0
    stack: list[tuple[list[str | int], JSON]] = [(["components", i], c) for i, c in enumerate(components)]
    while stack:
        path, component = stack.pop(0)
        count += 1
        children = component.get("components") or []
        if component.get("type") == 1 and len(children) > MAX_ROW_CHILDREN:
            errors.max_length([*path, "components"], MAX_ROW_CHILDREN)
        stack.extend(([*path, "components", i], child) for i, child in enumerate(children))
        if isinstance(component.get("accessory"), dict):
            stack.append(([*path, "accessory"], component["accessory"]))
        custom_id = component.get("custom_id")
        if custom_id is not None:
            if not 1 <= len(custom_id) <= MAX_CUSTOM_ID:
                errors.max_length([*path, "custom_id"], MAX_CUSTOM_ID)
            elif custom_id in seen:
                errors.add([*path, "custom_id"], "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id is duplicated")
            seen.add(custom_id)
        label = component.get("label")
        if component.get("type") == 2 and label and len(label) > MAX_BUTTON_LABEL:
            errors.max_length([*path, "label"], MAX_BUTTON_LABEL)
    if count > MAX_COMPONENTS:
        errors.add(["components"], "COMPONENT_MAX_TOTAL_COMPONENTS_EXCEEDED", f"Must be {MAX_COMPONENTS} or fewer.")


def validate_choices(choices: Any) -> None:
    """Autocomplete (type 8) callback: at most 25 choices, name 1-100, string value at most 100."""
    errors = FormErrors()
    if not isinstance(choices, list):
        errors.add(["data", "choices"], "BASE_TYPE_REQUIRED", "This field is required")
        errors.raise_if_any()
    if len(choices) > MAX_CHOICES:
        errors.max_length(["data", "choices"], MAX_CHOICES)
    for index, choice in enumerate(choices):
        name = choice.get("name") or ""
        if not 1 <= len(name) <= MAX_CHOICE_TEXT:
            errors.add(
                ["data", "choices", index, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        value = choice.get("value")
        if isinstance(value, str) and len(value) > MAX_CHOICE_TEXT:
            errors.max_length(["data", "choices", index, "value"], MAX_CHOICE_TEXT)
    errors.raise_if_any()


def validate_commands(commands: Any) -> None:
    """Bulk overwrite body: names, 1-100 character descriptions, option counts and ordering."""
    errors = FormErrors()
    if not isinstance(commands, list):
        raise ApiError(400, 50035, "Invalid Form Body", {"_errors": [{"code": "BASE_TYPE_ARRAY", "message": "list"}]})
    for index, command in enumerate(commands):
        chat_input = command.get("type", 1) == 1
        _check_named(command, [index], errors, chat_input=chat_input)
        _check_options(command.get("options") or [], [index, "options"], errors)
    errors.raise_if_any()


def _check_named(item: JSON, path: list[str | int], errors: FormErrors, *, chat_input: bool) -> None:
    name = item.get("name") or ""
    if chat_input and (not COMMAND_NAME.match(name) or name != name.lower()):
        errors.add([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    description = item.get("description")
    if chat_input and not (isinstance(description, str) and 1 <= len(description) <= 100):
        errors.add([*path, "description"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")


def _check_options(options: list[JSON], path: list[str | int], errors: FormErrors) -> None:
    if len(options) > MAX_OPTIONS:
        errors.max_length(path, MAX_OPTIONS)
    seen_optional = False
    for index, option in enumerate(options):
        _check_named(option, [*path, index], errors, chat_input=True)
        if len(option.get("choices") or []) > MAX_CHOICES:
            errors.max_length([*path, index, "choices"], MAX_CHOICES)
        if option.get("type") in (1, 2):
            _check_options(option.get("options") or [], [*path, index, "options"], errors)
            continue
        if option.get("required") and seen_optional:
            errors.add([*path, index, "required"], "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID", "Required first")
        seen_optional = seen_optional or not option.get("required")
