"""StoryBot: the Discord front end. Wires a Runtime to discord.py, loads the cogs, runs the workers.

``setup_hook`` (first run) builds the Discord publisher, hands it to the runtime's worker, and loads the
cogs in ``EXTENSIONS`` as extensions (each module's ``setup(bot)``).

A process has one of three roles (``storybot run --role``):

- ``all`` (the default): everything below in one process;
- ``gateway``: holds the gateway connection, sharded (AutoShardedBot: SHARD_COUNT, else Discord's
  recommendation), answers interactions and queues the work; it renders nothing, and takes a story only
  while some worker process beats in the database;
- ``worker``: logs in over REST only, without a gateway connection: claims jobs, renders, and posts the
  deliveries and storyboard edits. Any number of them, on any machines, against one database.

``run_bot(settings)`` is what ``storybot run`` calls when DISCORD_TOKEN is set. A token Discord
rejects becomes a ConfigError (one line, exit 2), not a traceback. A Discord that cannot be reached
(no network, DNS, refused connections, 5xx) is waited out: one log line per attempt, with backoff,
until it answers or the bot is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl
from discord import app_commands
from discord.ext import commands

from bot.clock import Clock
from bot.errors import ConfigError
from bot.health.http import HealthServer, build_health_server
from bot.jobs import Worker, WorkerSupervisor
from bot.runtime import Runtime, on_sigterm
from bot.settings import Settings
from cogs._alerts import DiscordAlertNotifier
from cogs._publisher import NO_MENTIONS, DiscordPublisher

log = logging.getLogger(__name__)

# Loaded in this order by setup_hook: the error handler first, so it covers the commands loaded after it.
EXTENSIONS = ("cogs.errors", "cogs.buttons", "cogs.story", "cogs.config", "cogs.status")
ALL, GATEWAY, WORKER = "all", "gateway", "worker"
ROLES = (ALL, GATEWAY, WORKER)
WORKER_STOP_S = 10.0  # in-flight jobs get this long to finish on shutdown; the rest are handed back
API_VERSION_SUFFIX = re.compile(r"/api/v\d+$")
LOGIN_FIRST_DELAY_S = 1.0
LOGIN_MAX_DELAY_S = 60.0
# What "Discord cannot be reached" looks like from discord.py: no network, a failed name lookup, a refused
# or broken connection, a timeout (all OSErrors or aiohttp errors), and Discord's 5xx after its own retries.
UNREACHABLE = (OSError, aiohttp.ClientError, discord.DiscordServerError, discord.GatewayNotFound)


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


def build_runtime(settings: Settings, *, clock: Clock | None = None, role: str = ALL) -> Runtime:
    """A Runtime whose queue hands out the deliveries the DiscordPublisher makes, serving in ``role``."""
    if role not in ROLES:
        raise ConfigError(f"--role must be one of {', '.join(ROLES)}")
    return Runtime(settings, clock=clock, publisher_name=DiscordPublisher.name, role=role)


class StoryBot(commands.AutoShardedBot):
    def __init__(
        self,
        runtime: Runtime,
        *,
        publisher_options: dict[str, Any] | None = None,
        worker_options: dict[str, Any] | None = None,
        **bot_options: object,
    ) -> None:
        """``publisher_options`` go to DiscordPublisher (upload_limit_bytes, storyboard_interval_s,
        storyboard_grace_s), ``worker_options`` to ``runtime.worker``; both are built in setup_hook. The role
        is the runtime's (build_runtime)."""
        if runtime.publisher_name != DiscordPublisher.name:
            raise TypeError("StoryBot needs a Runtime that delivers with the DiscordPublisher (see build_runtime)")
        options: dict[str, object] = {
            "command_prefix": commands.when_mentioned,
            "intents": discord.Intents.default(),
            "allowed_mentions": NO_MENTIONS,
            "help_command": None,
            "shard_count": runtime.settings.shard_count,  # None: as many as Discord recommends
        }
        options.update(bot_options)
        # A text-only bot: the "voice will NOT be supported" warnings would only alarm operators.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(**options)  # type: ignore[arg-type]
        self.runtime = runtime
        self.role = runtime.role or ALL
        self._publisher_options = publisher_options or {}
        self._worker_options = worker_options or {}
        # Built by the first setup_hook, when the bot has its event loop and HTTP client.
        self.publisher: DiscordPublisher | None = None
        self.worker: Worker | None = None
        self.supervisor: WorkerSupervisor | None = None
        self.synced: list[app_commands.AppCommand] = []
        self.ready_once = asyncio.Event()
        self.stopping = asyncio.Event()  # set when close() begins: ends the wait between login attempts
        self._stop_workers = asyncio.Event()
        self._worker_task: asyncio.Task[object] | None = None
        self.health_server: HealthServer | None = None

    async def setup_hook(self) -> None:
        # discord.py calls this from login(); a login retried after Discord could not be reached calls it again.
        if self.publisher is None:  # the gateway too: a new story's storyboard is attached there
            self.publisher = DiscordPublisher(self, self.runtime, **self._publisher_options)
        if self.role != GATEWAY and self.worker is None:
            self.worker = self.runtime.worker(publisher=self.publisher, **self._worker_options)
            await self.runtime.beat()  # a gateway learns now, not at the next beat, that a worker runs here
        if self.role != WORKER:
            await self._load_commands()
        if self._worker_task is None and self.health_server is None:
            if self.worker is not None:
                self.supervisor = self.runtime.supervise(self.worker)
                self._worker_task = asyncio.create_task(
                    self.supervisor.run(self._stop_workers), name="storybot-workers"
                )
                self._worker_task.add_done_callback(_log_worker_exit)
            await self._start_health(self.supervisor)
        if self.role == WORKER:  # no gateway, so no on_ready: logged in is ready
            self._announce_ready()

    async def _load_commands(self) -> None:
        for name in EXTENSIONS:
            if name not in self.extensions:
                await self.load_extension(name)
        guild_id = self.runtime.settings.dev_guild_id
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            self.synced = await self.tree.sync(guild=guild)
        else:
            self.synced = await self.tree.sync()

    async def on_ready(self) -> None:
        shards = sorted(self.shards)
        self.runtime.shards = f"{_ranges(shards)} of {self.shard_count}" if shards else None
        self._announce_ready()

    def _announce_ready(self) -> None:
        if self.ready_once.is_set():
            return  # on_ready fires again after a reconnect; say it once
        self.ready_once.set()
        workers = self.worker.concurrency if self.worker is not None else 0
        if self.role == WORKER:
            log.info("storybot worker logged in as %s (REST only, no gateway); %d workers running", self.user,
                     workers)  # fmt: skip
            return
        scope = f"guild {self.runtime.settings.dev_guild_id}" if self.runtime.settings.dev_guild_id else "globally"
        servers = len(self.guilds)
        log.info(
            "storybot ready as %s (id %s), role %s, in %d server%s on shard%s %s; %d commands synced %s; "
            "%d workers running",
            self.user,
            self.user.id if self.user else "?",
            self.role,
            servers,
            "" if servers == 1 else "s",
            "" if self.shard_count == 1 else "s",
            self.runtime.shards,
            len(self.synced),
            scope,
            workers,
        )

    async def close(self) -> None:
        if self.stopping.is_set():
            return  # a worker's run_bot closes on its way out after a SIGTERM's close
        self.stopping.set()
        await self._stop_health()
        await self._stop_worker_pool()
        if self.publisher is not None:  # None when the bot stops before its first login
            await self.publisher.close()
        await super().close()

    async def _start_health(self, supervisor: WorkerSupervisor | None) -> None:
        """The health loop (checks, metrics, alerts to each server's alert channel) and /health, /metrics.

        A worker serves /health and /metrics but runs no loop: the gateway (or an ``all``) probes the models
        and posts the alerts, once for everyone."""
        health = self.runtime.health
        health.alerts.notifiers.append(DiscordAlertNotifier(self))
        if self.role == WORKER:
            health.discord_connected = lambda: self.user is not None and not self.is_closed()
        else:
            health.discord_connected = lambda: self.is_ready() and not self.is_closed()
        health.workers_running = lambda: self.runtime.accepting_stories() if supervisor is None else supervisor.running
        if self.role != WORKER:
            health.start()
        server = build_health_server(self.runtime.settings, health.report, self.runtime.this_process)
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


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _log_worker_exit(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the worker pool stopped", exc_info=task.exception())


async def run_bot(settings: Settings, role: str = ALL) -> int:
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
    with discord_endpoints(settings), plain_reconnect_lines():
        async with build_runtime(settings, role=role) as runtime:
            bot = StoryBot(runtime)
            with on_sigterm(lambda: closing.append(asyncio.ensure_future(bot.close()))) as stop:
                await _serve(bot, token)
                await asyncio.gather(*closing)
    if stop.requested:
        handed_back = bot.worker.stats.handed_back if bot.worker is not None else 0
        log.info("storybot stopped (%s); %d job%s handed back to the queue", stop.signal_name, handed_back,
                 "" if handed_back == 1 else "s")  # fmt: skip
    return 0


async def _serve(bot: StoryBot, token: str) -> None:
    try:
        async with bot:
            if await _log_in(bot, token):
                if bot.role == WORKER:
                    await bot.stopping.wait()  # REST only: serve until close()
                else:
                    await bot.connect()
    except discord.LoginFailure:
        raise ConfigError("Discord rejected DISCORD_TOKEN (login failed); copy the bot token again") from None
    except discord.PrivilegedIntentsRequired:
        raise ConfigError("Discord refused the bot's intents; enable them in the developer portal") from None


async def _log_in(bot: StoryBot, token: str) -> bool:
    """Log in, waiting out a Discord that cannot be reached with backoff; False if the bot was stopped first."""
    delay = LOGIN_FIRST_DELAY_S
    attempt = 0
    while not bot.stopping.is_set():
        attempt += 1
        try:
            await bot.login(token)
            return True
        except UNREACHABLE as exc:
            if bot.stopping.is_set():
                return False
            log.warning("cannot reach Discord (%s; attempt %d); trying again in %.0f s",
                        unreachable_reason(exc), attempt, delay)  # fmt: skip
        except Exception:
            if bot.stopping.is_set():
                return False  # close() pulled the connection from under the attempt
            raise
        await _fresh_http_session(bot)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bot.stopping.wait(), timeout=delay)
        delay = min(delay * 2, LOGIN_MAX_DELAY_S)
    return False


async def _fresh_http_session(bot: StoryBot) -> None:
    # Each login attempt opens a new aiohttp session on the client's connector; close the failed one (and
    # the connector it owns), and let the next attempt make both anew, so nothing is left unclosed.
    await bot.http.close()
    bot.http.connector = discord.utils.MISSING


def unreachable_reason(exc: BaseException) -> str:
    """Why Discord could not be reached, in a few plain words (no address, no token)."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "its address could not be looked up"
    if isinstance(exc, discord.DiscordServerError):
        return f"Discord answered HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    errno = exc.os_error.errno if isinstance(exc, aiohttp.ClientConnectorError) else getattr(exc, "errno", None)
    if isinstance(errno, int) and errno > 0:
        return os.strerror(errno).lower()
    if isinstance(exc, aiohttp.ClientError | discord.GatewayNotFound):
        return "the connection failed"
    return type(exc).__name__


class _PlainReconnects(logging.Filter):
    """discord.py logs every gateway reconnect with a full traceback (Client.connect); a lost connection is
    expected and retried, so one line with the reason says all an operator needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Attempting a reconnect"):
            reason = unreachable_reason(record.exc_info[1]) if record.exc_info[1] else "unknown"
            retry = record.args[0] if isinstance(record.args, tuple) and record.args else 0.0
            record.msg, record.args = "lost the connection to Discord (%s); trying again in %.0f s", (reason, retry)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


@contextlib.contextmanager
def plain_reconnect_lines() -> Iterator[None]:
    """While the bot runs, discord.py's reconnect attempts are logged as one line each (``_PlainReconnects``)."""
    client_log = logging.getLogger("discord.client")
    quiet = _PlainReconnects()
    client_log.addFilter(quiet)
    try:
        yield
    finally:
        client_log.removeFilter(quiet)
