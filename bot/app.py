"""StoryBot: the Discord front end. Wires a Runtime to discord.py, loads the cogs, runs the workers.

``run_bot(settings)`` is what ``storybot run`` calls when DISCORD_TOKEN is set. A token Discord
rejects becomes a ConfigError (one line, exit 2), not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterator

import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands
from discord.ext import commands

from bot.clock import Clock
from bot.errors import ConfigError
from bot.health.http import HealthServer, build_health_server
from bot.jobs import WorkerPool
from bot.runtime import Runtime
from bot.settings import Settings
from bot.shutdown import on_sigterm
from cogs import buttons
from cogs.alerts import DiscordAlertNotifier
from cogs.config import ConfigCog
from cogs.publisher import NO_MENTIONS, DiscordPublisher
from cogs.status import StatusCog
from cogs.story import StoryCog

log = logging.getLogger(__name__)

WORKER_STOP_S = 10.0  # in-flight jobs get this long to finish on shutdown; the rest are handed back
API_VERSION_SUFFIX = re.compile(r"/api/v\d+$")


def api_base(url: str) -> str:
    """DISCORD_API_BASE as discord.py's Route.BASE: ``http://host:port`` gets ``/api/v10`` appended."""
    base = url.rstrip("/")
    return base if API_VERSION_SUFFIX.search(base) else f"{base}/api/v10"


@contextlib.contextmanager
def discord_endpoints(settings: Settings) -> Iterator[None]:
    """Point discord.py at DISCORD_API_BASE / DISCORD_GATEWAY_URL (a REST proxy, or a test fake).

    discord.py has no constructor argument for either, so the class attributes are patched
    (discord-wire.md section 1) and restored on exit.
    """
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    if settings.discord_api_base:
        discord.http.Route.BASE = api_base(settings.discord_api_base)
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


def build_runtime(
    settings: Settings, *, publisher: DiscordPublisher | None = None, clock: Clock | None = None
) -> Runtime:
    """A Runtime whose publisher posts to Discord."""
    return Runtime(settings, clock=clock, publisher=publisher or DiscordPublisher())


class StoryBot(commands.Bot):
    def __init__(self, runtime: Runtime, *, worker: WorkerPool | None = None, **bot_options: object) -> None:
        if not isinstance(runtime.publisher, DiscordPublisher):
            raise TypeError("StoryBot needs a Runtime whose publisher is a DiscordPublisher (see build_runtime)")
        options: dict[str, object] = {
            "command_prefix": commands.when_mentioned,
            "intents": discord.Intents.default(),
            "allowed_mentions": NO_MENTIONS,
            "help_command": None,
        }
        options.update(bot_options)
        # A text-only bot: the "voice will NOT be supported" warnings would only alarm operators.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(**options)  # type: ignore[arg-type]
        self.runtime = runtime
        self.publisher: DiscordPublisher = runtime.publisher
        self.publisher.bind(self, runtime)
        self.worker = worker or runtime.worker()
        self.synced: list[app_commands.AppCommand] = []
        self.ready_once = asyncio.Event()
        self._stop_workers = asyncio.Event()
        self._worker_task: asyncio.Task[object] | None = None
        self.health_server: HealthServer | None = None
        self.tree.error(self._on_app_command_error)

    async def setup_hook(self) -> None:
        for cog in (StoryCog(self), ConfigCog(self), StatusCog(self)):
            await self.add_cog(cog)
        buttons.register(self)
        guild_id = self.runtime.settings.dev_guild_id
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            self.synced = await self.tree.sync(guild=guild)
        else:
            self.synced = await self.tree.sync()
        self._worker_task = asyncio.create_task(self.worker.run_forever(self._stop_workers), name="storybot-workers")
        self._worker_task.add_done_callback(_log_worker_exit)
        await self._start_health()

    async def on_ready(self) -> None:
        if self.ready_once.is_set():
            return  # on_ready fires again after a reconnect; say it once
        self.ready_once.set()
        scope = f"guild {self.runtime.settings.dev_guild_id}" if self.runtime.settings.dev_guild_id else "globally"
        servers = len(self.guilds)
        log.info(
            "storybot ready as %s (id %s) in %d server%s; %d commands synced %s; %d workers running",
            self.user,
            self.user.id if self.user else "?",
            servers,
            "" if servers == 1 else "s",
            len(self.synced),
            scope,
            self.worker.concurrency,
        )

    async def close(self) -> None:
        await self._stop_health()
        await self._stop_worker_pool()
        await self.publisher.close()
        await super().close()

    async def _start_health(self) -> None:
        """The health loop (checks, metrics, alerts to each server's alert channel) and /health, /metrics."""
        health = self.runtime.health
        health.alerts.notifiers.append(DiscordAlertNotifier(self))
        health.discord_connected = lambda: self.is_ready() and not self.is_closed()
        health.start()
        server = build_health_server(self.runtime.settings, health.report)
        if server is None:
            return
        try:
            await server.start()
        except OSError as exc:  # the bot still serves Discord; the operator reads why in the log
            log.error("cannot serve /health and /metrics on %s:%d (%s); set HEALTH_HTTP_HOST/HEALTH_HTTP_PORT, "
                      "or HEALTH_HTTP_PORT=0 to turn them off", server.host, self.runtime.settings.health_http_port,
                      exc.strerror or exc)  # fmt: skip
            return
        self.health_server = server

    async def _stop_health(self) -> None:
        server, self.health_server = self.health_server, None
        if server is not None:
            await server.stop()
        await self.runtime.health.stop()

    async def _stop_worker_pool(self) -> None:
        task = self._worker_task
        if task is None or task.done():
            return
        self._stop_workers.set()
        done, _ = await asyncio.wait({task}, timeout=WORKER_STOP_S)
        if not done:
            log.warning("workers did not finish within %.0f s; handing their jobs back to the queue", WORKER_STOP_S)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        name = interaction.command.qualified_name if interaction.command else "?"
        if isinstance(error, app_commands.TransformerError):  # an option value Discord's own lists never offer
            log.info("command %s: option value refused: %s", name, error)
            wanted = "a text channel" if error.type is discord.AppCommandOptionType.channel else "a value"
            text = f"⚠️ Nothing was done: that option needs {wanted} from the list Discord offers; pick one there."
        else:
            log.error("command %s failed", name, exc_info=error)
            text = "⚠️ Something went wrong on our side; please try again in a moment."
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():  # after a public defer a followup would be public anyway
                await interaction.edit_original_response(content=text, embed=None)
            else:
                await interaction.response.send_message(text, ephemeral=True)


def _log_worker_exit(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the worker pool stopped", exc_info=task.exception())


async def run_bot(settings: Settings) -> int:
    """Log in, serve until stopped. Raises ConfigError for a missing or rejected token.

    SIGTERM stops the bot as Ctrl-C does (StoryBot.close): no new jobs are claimed, in-flight jobs get
    WORKER_STOP_S to finish and the rest go back to the queue, pending storyboard edits land, then the
    database is closed and one line says so. A requested stop is a success, so this returns 0: service
    managers count 143 as a failure unless told otherwise.
    """
    if settings.discord_token is None:
        raise ConfigError("DISCORD_TOKEN is not set")
    token = settings.discord_token.get_secret_value().strip()
    closing: list[asyncio.Future[None]] = []
    with discord_endpoints(settings):
        async with build_runtime(settings) as runtime:
            bot = StoryBot(runtime)
            with on_sigterm(lambda: closing.append(asyncio.ensure_future(bot.close()))) as stop:
                await _serve(bot, token)
                await asyncio.gather(*closing)
    if stop.requested:
        handed_back = bot.worker.stats.handed_back
        log.info("storybot stopped (%s); %d job%s handed back to the queue", stop.signal_name, handed_back,
                 "" if handed_back == 1 else "s")  # fmt: skip
    return 0


async def _serve(bot: StoryBot, token: str) -> None:
    try:
        async with bot:
            await bot.start(token)
    except discord.LoginFailure:
        raise ConfigError("Discord rejected DISCORD_TOKEN (login failed); copy the bot token again") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError("Discord refused the bot's intents; enable them in the developer portal") from None
