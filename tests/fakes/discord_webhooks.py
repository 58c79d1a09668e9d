"""Interaction callbacks and interaction-token webhook routes of the fake Discord.

Emulated rules: a callback must arrive within ``ack_deadline_s`` (else 404/10062) and only once
(else 400/40060); the token works for webhooks for ``token_ttl_s`` (else 401/50027); the first
followup after a type-5 defer edits the loading message instead of creating a new one.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.discord_limits import validate_choices, validate_message
from tests.fakes.discord_rest import FILES_KEY, PAYLOAD_KEY, MessageStore
from tests.fakes.discord_state import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    JSON,
    ApiError,
    CallbackRecord,
    FakeInteraction,
    FakeMessage,
    RecordedError,
    RecordedFile,
    json_response,
)

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord

# Which callback types each interaction type accepts (2 command, 3 component, 4 autocomplete, 5 modal).
ALLOWED_CALLBACKS = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}
MESSAGE_TYPE_DEFAULT = 0
MESSAGE_TYPE_CHAT_INPUT_COMMAND = 20


class InteractionRoutes:
    def __init__(self, fake: FakeDiscord, store: MessageStore) -> None:
        self.fake = fake
        self.store = store

    def add_routes(self, app: web.Application) -> None:
        api = "/api/v10"
        app.router.add_post(f"{api}/interactions/{{iid}}/{{token}}/callback", self.interaction_callback)
        app.router.add_post(f"{api}/webhooks/{{app}}/{{token}}", self.webhook_execute)
        message_path = f"{api}/webhooks/{{app}}/{{token}}/messages/{{mid}}"
        app.router.add_get(message_path, self.webhook_get_message)
        app.router.add_patch(message_path, self.webhook_edit_message)
        app.router.add_delete(message_path, self.webhook_delete_message)

    async def interaction_callback(self, request: web.Request) -> web.Response:
        interaction = self.fake.interactions.get(int(request.match_info["iid"]))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        payload, files = request[PAYLOAD_KEY], request[FILES_KEY]
        kind = int(payload.get("type") or 0)
        elapsed = time.perf_counter() - interaction.dispatched_perf
        record = CallbackRecord(interaction.id, kind, dict(payload.get("data") or {}), elapsed, files=files)
        try:
            if interaction.callback is not None:
                raise ApiError(400, 40060, "Interaction has already been acknowledged.")
            if self.fake.clock.now() - interaction.dispatched_at > self.fake.ack_deadline_s:
                raise ApiError(404, 10062, "Unknown interaction")
            if kind not in ALLOWED_CALLBACKS.get(interaction.type, set()):
                errors = {"type": {"_errors": [{"code": "INTERACTION_RESPONSE_TYPE_INVALID", "message": str(kind)}]}}
                raise ApiError(400, 50035, "Invalid Form Body", errors)
            interaction.callback = record  # claimed now, so a concurrent second callback gets 40060
            try:
                return await self._acknowledge(interaction, kind, record.data, files)
            except ApiError:
                interaction.callback = None  # an invalid body does not use up the interaction
                raise
        except ApiError as error:
            record.status = error.status
            record.error = RecordedError(
                "interaction_callback", request.path, error.status, error.code, error.message, error.errors
            )
            raise
        finally:
            # Recorded once processed, so a test that sees the callback also sees its effects.
            interaction.attempts.append(record)
            self.fake.callbacks.append(record)

    async def _acknowledge(
        self, interaction: FakeInteraction, kind: int, data: JSON, files: list[RecordedFile]
    ) -> web.Response:
        fake = self.fake
        message_type = MESSAGE_TYPE_CHAT_INPUT_COMMAND if interaction.type == 2 else MESSAGE_TYPE_DEFAULT
        ephemeral = int(data.get("flags") or 0) & FLAG_EPHEMERAL
        message: FakeMessage | None = None
        event = "MESSAGE_CREATE"
        if kind == 4:
            validate_message(data, files, size_limit=interaction.attachment_size_limit, creating=True)
            message = self.store.create(
                interaction.channel_id,
                data,
                files,
                author=fake.bot_user,
                message_type=message_type,
                flags=ephemeral,
                interaction=interaction,
            )
        elif kind == 5:
            message = self.store.create(
                interaction.channel_id,
                {},
                [],
                author=fake.bot_user,
                message_type=message_type,
                flags=FLAG_LOADING | ephemeral,
                interaction=interaction,
            )
            interaction.loading = True
        elif kind in (6, 7):
            message = fake.messages_by_id[interaction.message_id] if interaction.message_id else None
            if kind == 7 and message is not None:
                validate_message(data, files, size_limit=interaction.attachment_size_limit, creating=False)
                self.store.edit(message, data, files)
                event = "MESSAGE_UPDATE"
        elif kind == 8:
            validate_choices(data.get("choices"))
        if message is not None:
            interaction.original_id = message.id
            if kind != 6:
                await fake.dispatch_message_event(event, message)
        return json_response(self._callback_body(interaction, kind, message))

    def _callback_body(self, interaction: FakeInteraction, kind: int, message: FakeMessage | None) -> JSON:
        summary: JSON = {
            "id": str(interaction.id),
            "type": interaction.type,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(message and message.ephemeral),
        }
        resource: JSON = {"type": kind}
        if message is not None and kind in (4, 5, 7):
            summary["response_message_id"] = str(message.id)
        if message is not None and kind in (4, 7):
            resource["message"] = message.payload()
        return {"interaction": summary, "resource": resource}

    def _token_interaction(self, request: web.Request) -> FakeInteraction:
        if int(request.match_info["app"]) != self.fake.app_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        interaction = self.fake.interaction_by_token(request.match_info["token"])
        if interaction is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        if self.fake.token_expired(interaction):
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if interaction.callback is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        return interaction

    def _token_message(self, request: web.Request, interaction: FakeInteraction) -> FakeMessage:
        raw_id = request.match_info["mid"]
        message_id = interaction.original_id if raw_id == "@original" else int(raw_id)
        message = self.fake.messages_by_id.get(message_id) if message_id else None
        if message is None or message.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        if message.interaction_id != interaction.id and message.id != interaction.original_id:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def webhook_execute(self, request: web.Request) -> web.Response:
        interaction = self._token_interaction(request)
        payload, files = request[PAYLOAD_KEY], request[FILES_KEY]
        validate_message(payload, files, size_limit=interaction.attachment_size_limit, creating=True)
        if interaction.loading and interaction.original_id is not None:
            # Discord's compatibility rule: the first followup after a defer replaces the loading message,
            # keeping the defer's visibility (a public defer makes an "ephemeral" followup public).
            message = self.fake.messages_by_id[interaction.original_id]
            self.store.edit(message, payload, files)
            message.flags &= ~FLAG_LOADING
            interaction.loading = False
            await self.fake.dispatch_message_event("MESSAGE_UPDATE", message)
        else:
            flags = int(payload.get("flags") or 0) & FLAG_EPHEMERAL
            message = self.store.create(
                interaction.channel_id, payload, files, author=self.fake.bot_user, flags=flags, interaction=interaction
            )
            interaction.followup_ids.append(message.id)
            await self.fake.dispatch_message_event("MESSAGE_CREATE", message)
        if request.query.get("wait", "").lower() in ("1", "true"):
            return json_response(message.payload())
        return web.Response(status=204)

    async def webhook_get_message(self, request: web.Request) -> web.Response:
        interaction = self._token_interaction(request)
        return json_response(self._token_message(request, interaction).payload())

    async def webhook_edit_message(self, request: web.Request) -> web.Response:
        interaction = self._token_interaction(request)
        message = self._token_message(request, interaction)
        payload, files = request[PAYLOAD_KEY], request[FILES_KEY]
        validate_message(payload, files, size_limit=interaction.attachment_size_limit, creating=False)
        self.store.edit(message, payload, files)
        if message.loading:
            message.flags &= ~FLAG_LOADING
            interaction.loading = False
        await self.fake.dispatch_message_event("MESSAGE_UPDATE", message)
        return json_response(message.payload())

    async def webhook_delete_message(self, request: web.Request) -> web.Response:
        interaction = self._token_interaction(request)
        message = self._token_message(request, interaction)
        message.deleted = True
        await self.fake.dispatch_message_event("MESSAGE_DELETE", message)
        return web.Response(status=204)
