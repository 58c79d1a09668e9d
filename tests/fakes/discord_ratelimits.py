"""Rate-limit headers and 429 answers of the fake Discord.

Source: discord/discord-api-docs developers/topics/rate-limits.mdx. Every response carries
``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` (epoch seconds), ``-Reset-After`` (seconds, with decimals)
and ``-Bucket`` ("Header Format"); limits are per route and per top-level resource (channel, guild, or
webhook id + token), and the bucket string does not include that resource. A 429 adds
``X-RateLimit-Scope`` (user / global / shared), ``X-RateLimit-Global`` for the global limit, ``Retry-After``,
and the body ``{"message","retry_after","global","code"}`` ("Exceeding A Rate Limit"; the body's ``code`` is
optional in the docs but required by discord/discord-api-spec specs/openapi.json, components.schemas
RatelimitedResponse = Error + retry_after + global, where Error requires ``code`` and ``message``).

The docs warn that limits are not fixed ("should not be hard coded"); the fake reports a deliberately
generous window of ``DEFAULT_LIMIT`` requests per ``DEFAULT_WINDOW_S`` so that discord.py, which pre-emptively
waits when ``Remaining`` reaches 0, stays fast in tests. Windows run on the wall clock, not on the fake's
clock: discord.py sleeps ``Reset-After`` real seconds. Limits are only enforced (429) when ``enforce`` is set,
or when a test injects a 429.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from aiohttp import web

from tests.fakes.discord_state import json_response

DEFAULT_LIMIT = 50
DEFAULT_WINDOW_S = 1.0
# Top-level resources (rate-limits.mdx: "channels (channel_id), guilds (guild_id), and webhooks (webhook_id or
# webhook_id + webhook_token)"), as named in the fake's routes; an interaction callback counts per interaction.
MAJOR_PARAMETERS = ("cid", "gid", "app", "token", "iid")
SCOPES = ("user", "global", "shared")
# rate-limits.mdx, the example 429 bodies: a resource ("shared") limit has its own message.
MESSAGES = {"shared": "The resource is being rate limited."}
USER_MESSAGE = "You are being rate limited."


@dataclass
class Window:
    started: float  # time.monotonic()
    count: int = 0


@dataclass
class RateLimitState:
    """What one request saw of its bucket."""

    bucket: str
    limit: int
    remaining: int
    reset_after: float

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": f"{time.time() + self.reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{self.reset_after:.3f}",
            "X-RateLimit-Bucket": self.bucket,
        }


def bucket_hash(method: str, route: str) -> str:
    """A stable opaque bucket id per route, like Discord's (which never names the resource)."""
    return hashlib.sha256(f"{method} {route}".encode()).hexdigest()[:16]


def too_many_requests(
    retry_after: float, *, scope: str = "user", code: int = 0, state: RateLimitState | None = None
) -> web.Response:
    """A 429 as Discord sends it. ``Via`` is kept: discord.py retries a 429 only when it has one (it takes a
    429 without it for a Cloudflare ban)."""
    if scope not in SCOPES:
        raise ValueError(f"rate-limit scope must be one of {SCOPES}, not {scope!r}")
    is_global = scope == "global"
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(max(1, math.ceil(retry_after))),  # whole seconds in the docs' examples
        "X-RateLimit-Scope": scope,
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"  # the docs' global example has no per-route headers
    elif state is not None:
        headers.update(state.headers())
        if scope == "user":  # the bot's own bucket is spent (the docs' user example); a shared one need not be
            headers["X-RateLimit-Remaining"] = "0"
    body = {
        "message": MESSAGES.get(scope, USER_MESSAGE),
        "retry_after": retry_after,
        "global": is_global,
        "code": code,
    }
    return json_response(body, status=429, headers=headers)


class RateLimits:
    """Per bucket and top-level resource request counts over fixed windows."""

    def __init__(self, limit: int = DEFAULT_LIMIT, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self.enforce = False  # answer requests past the limit with a 429 (scope "user")
        self._windows: dict[tuple[str, str], Window] = {}

    def hit(self, request: web.Request, route: str) -> RateLimitState:
        bucket = bucket_hash(request.method, route)
        major = "/".join(request.match_info.get(name, "") for name in MAJOR_PARAMETERS)
        now = time.monotonic()
        window = self._windows.get((bucket, major))
        if window is None or now - window.started >= self.window_s:
            window = self._windows[(bucket, major)] = Window(now)
        window.count += 1
        reset_after = max(window.started + self.window_s - now, 0.001)
        return RateLimitState(bucket, self.limit, self.limit - window.count, reset_after)

    def refusal(self, state: RateLimitState) -> web.Response | None:
        if self.enforce and state.exceeded:
            return too_many_requests(state.reset_after, state=state)
        return None
