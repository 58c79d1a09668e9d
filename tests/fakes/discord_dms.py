"""Direct messages of the fake Discord.

``POST /users/@me/channels`` with ``{"recipient_id"}`` is Create DM (discord/discord-api-docs
developers/resources/user.mdx, "Create DM"): it returns a DM channel object (type 1, channel.mdx "Example DM
Channel"), the existing one when there is one; 200 per discord/discord-api-spec specs/openapi.json
(``/users/@me/channels`` post create_dm). Sending there to a user who does not accept the bot's DMs is
403 code 50007 "Cannot send messages to this user" (opcodes-and-status-codes.mdx, "JSON Error Codes").
DM messages carry no ``guild_id``; guild permissions and overwrites do not apply in DMs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.discord_rest import PAYLOAD_KEY, RestApi
from tests.fakes.discord_state import CHANNEL_DM, ApiError, FakeChannel, json_response

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord


class DirectMessages:
    def __init__(self, fake: FakeDiscord, rest: RestApi) -> None:
        self.fake = fake
        self.rest = rest
        self.blocked: set[int] = set()  # users whose DMs refuse the bot
        self.by_user: dict[int, int] = {}  # recipient id -> DM channel id

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v10/users/@me/channels", self.create_dm)

    async def create_dm(self, request: web.Request) -> web.Response:
        self.rest.require_bot_auth(request)
        try:
            recipient_id = int(request[PAYLOAD_KEY]["recipient_id"])
        except (KeyError, TypeError, ValueError):
            errors = {"recipient_id": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "Required"}]}}
            raise ApiError(400, 50035, "Invalid Form Body", errors) from None
        member = self.fake.members.get(recipient_id)
        if member is None:
            raise ApiError(404, 10013, "Unknown User")
        channel_id = self.by_user.get(recipient_id)
        if channel_id is None:
            channel = FakeChannel(self.fake.ids.next(), "", type=CHANNEL_DM, recipients=[member.user])
            self.fake.channels[channel.id] = channel
            self.by_user[recipient_id] = channel.id
        else:
            channel = self.fake.channels[channel_id]
        return json_response(channel.payload(self.fake.guild_id))

    def check_send(self, channel: FakeChannel) -> None:
        if any(user.id in self.blocked for user in channel.recipients):
            raise ApiError(403, 50007, "Cannot send messages to this user")

    def channel_of(self, user_id: int) -> int | None:
        return self.by_user.get(user_id)
