"""The ``storybot`` command: run | story | work | list | models | status | db.

Errors a user can fix (bad settings, bad input, unusable paths, a newer database) print one line
and exit 2; an interrupted run exits 130 (Ctrl-C) or 143 (SIGTERM) and says how to resume. The bot
itself (`run` with DISCORD_TOKEN) treats SIGTERM as its normal stop and exits 0 (see bot.app.run_bot).

Start-up time: at module level this imports only bot.errors and a few small standard modules (not even
asyncio), so ``--help`` and a usage error answer at once. Each command imports what it needs (settings
and pydantic, the Runtime with the provider SDKs, PyAV and Pillow, discord.py) inside its own function.
``models`` and ``list`` need neither the Runtime nor the providers, and they run without the SIGTERM handler
(which lives in bot.runtime): they end within milliseconds of their imports, and nothing they do needs handing
back.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import (
    RESTORE_HINT,
    ConfigError,
    DatabaseDamaged,
    DatabaseMissing,
    StorageError,
    Terminated,
    UserInputError,
    plain_words,
)

if TYPE_CHECKING:
    from bot.domain import Scene, Story
    from bot.routing.registry import Registry
    from bot.runtime import Runtime
    from bot.services.stories import StoryOptions
    from bot.settings import Settings

DEMO_PROMPT = "a lighthouse keeper befriends a storm"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
RESUME_HINT = "Run `storybot work` (or start the bot again) to finish."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storybot", description="AI-illustrated stories, in Discord or offline.")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="log what the workers do (debug); -vv also logs the libraries below, such as aiosqlite",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the Discord bot (no DISCORD_TOKEN: render a demo story offline)")
    run.add_argument("--out", type=Path, default=Path("./out"), help="where the demo storybook goes")
    run.add_argument(
        "--role", choices=("all", "gateway", "worker"), default="all",
        help="all: everything in one process (default); gateway: the sharded Discord gateway, which answers and "
        "queues but renders nothing; worker: renders and posts over REST, no gateway (any number, any machine)",
    )  # fmt: skip

    story = sub.add_parser("story", help="render one story offline into a storybook folder")
    story.add_argument("prompt", help="what the story is about (1-1000 characters)")
    story.add_argument("--scenes", type=int, default=4, help="number of scenes, 1-10 (default 4)")
    story.add_argument("--video", action="store_true", help="also animate each scene into a short clip")
    story.add_argument("--out", type=Path, default=Path("./out"), help="output folder (default ./out)")
    story.add_argument("--style", help="an art style, e.g. 'watercolour'")
    story.add_argument("--text-model", help="model key that writes the scenes")
    story.add_argument("--image-model", help="model key that draws the scenes")
    story.add_argument("--video-model", help="model key that animates the scenes")
    story.add_argument("--reference", type=Path, help="a reference image for the characters")
    story.add_argument(
        "--no-wait", action="store_true",
        help="queue the story, print its id and return at once; `storybot work` renders it",
    )  # fmt: skip

    sub.add_parser("work", help="run the worker until the queue is empty")
    listing = sub.add_parser("list", help="the stories, newest first, with each scene's picture and clip")
    listing.add_argument("--json", action="store_true", help="a JSON document, for scripts")
    listing.add_argument("--limit", type=int, default=20, help="how many stories (default 20; 0 for all)")
    sub.add_parser("models", help="list the model registry and what is usable")
    sub.add_parser("status", help="show each model's health, the queue and the running processes")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("migrate", help="apply pending migrations")
    db_sub.add_parser("check", help="run SQLite's integrity check: ok (exit 0) or what is wrong (exit 1)")
    backup = db_sub.add_parser("backup", help="write a consistent copy of the database (VACUUM INTO)")
    backup.add_argument("path", type=Path)
    copy = db_sub.add_parser(
        "copy", help="copy the SQLite database at DATABASE_PATH into an empty PostgreSQL database (all or nothing)"
    )
    copy.add_argument(
        "--to", metavar="URL",
        help="postgresql://user:password@host/dbname (default: DATABASE_URL); the password is never shown",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # imported here: start-up time (pydantic, asyncio), which --help and a usage error do without
    import asyncio

    from bot.settings import load_settings

    try:
        settings = load_settings()
        _configure_logging(settings, args.verbose)
        return asyncio.run(_dispatch(args, settings))
    except (ConfigError, UserInputError, StorageError) as exc:
        print(f"storybot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:  # the file went bad while a command was running
        from storage.sqlite import is_damaged  # imported here: start-up time (aiosqlite)

        print(f"storybot: {DatabaseDamaged(str(exc)) if is_damaged(exc) else exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nstorybot: interrupted; nothing is lost. {RESUME_HINT}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated as exc:
        from bot.runtime import EXIT_TERMINATED  # imported here: start-up time (loaded by now: _until_sigterm)

        print(f"\nstorybot: stopped ({exc}); nothing is lost. {RESUME_HINT}", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # a bug or the machine: one plain sentence here, the details with -v
        logging.getLogger("bot.cli").debug("the command failed", exc_info=exc)
        print(f"storybot: {plain_words(exc)} (run with -v for the details)", file=sys.stderr)
        return 1


def _configure_logging(settings: Settings, verbosity: int) -> None:
    """LOG_LEVEL, or debug with ``-v``. aiosqlite logs every statement at debug, which would bury our own
    lines, so it stays at WARNING unless ``-vv`` asks for the libraries too."""
    level = logging.DEBUG if verbosity else getattr(logging, settings.log_level)
    logging.basicConfig(level=level, format="[{asctime}] [{levelname:<7}] {name}: {message}", style="{")
    logging.getLogger("discord.http").setLevel(logging.WARNING)
    if verbosity < 2:
        logging.getLogger("aiosqlite").setLevel(logging.WARNING)


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    commands: dict[str, Callable[[], Awaitable[int]]] = {
        "run": lambda: _run(args, settings),
        "story": lambda: _story(args, settings),
        "work": lambda: _work(settings),
        "list": lambda: _list(args, settings),
        "models": lambda: _models(settings),
        "status": lambda: _status(settings),
        "db": lambda: _db(args, settings),
    }
    if args.command == "run" and settings.discord_token is not None:
        return await commands["run"]()  # the bot stops itself on SIGTERM (run_bot)
    if args.command in ("models", "list"):
        return await commands[args.command]()  # no SIGTERM handler: that would import the Runtime (module docstring)
    return await _until_sigterm(commands[args.command])


async def _until_sigterm(command: Callable[[], Awaitable[int]]) -> int:
    """Run a one-shot command; SIGTERM cancels it as Ctrl-C does (jobs handed back, database closed)."""
    import asyncio  # imported here: start-up time (loaded by main already)

    from bot.runtime import on_sigterm  # imported here: start-up time (the Runtime's imports are heavy)

    task = asyncio.current_task()
    assert task is not None
    with on_sigterm(task.cancel) as stop:
        try:
            return await command()
        except asyncio.CancelledError:
            if not stop.requested:
                raise
            task.uncancel()
    raise Terminated(stop.signal_name)


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.discord_token is None:
        from bot.services.stories import StoryOptions  # imported here: start-up time (Pillow, PyAV)

        if args.role != "all":
            raise UserInputError(f"--role {args.role} serves Discord: set DISCORD_TOKEN")
        print("No DISCORD_TOKEN set: rendering a demo story offline with the local models.")
        options = StoryOptions(prompt=DEMO_PROMPT, scenes=3, video=True, out_dir=args.out)
        return await _render(settings, options)
    check_writable(settings.media_dir, "MEDIA_DIR")  # else every story would fail after it was accepted
    from bot.app import run_bot  # imported here: start-up time (discord.py, only when the bot really runs)

    if "log_level" not in settings.model_fields_set:
        logging.getLogger("bot.app").setLevel(logging.INFO)  # the one "ready" line shows at the default level
    return await run_bot(settings, role=args.role)


async def _story(args: argparse.Namespace, settings: Settings) -> int:
    from bot.services.stories import StoryOptions  # imported here: start-up time (Pillow, PyAV)

    reference = None
    if args.reference is not None:
        if not args.reference.is_file():
            raise UserInputError(f"the reference image {args.reference} does not exist")
        if args.reference.stat().st_size > settings.max_reference_bytes:
            raise UserInputError(f"the reference image {args.reference} is too large (over MAX_REFERENCE_BYTES)")
        reference = args.reference.read_bytes()
    options = StoryOptions(
        prompt=args.prompt,
        scenes=args.scenes,
        video=args.video,
        text_model=args.text_model,
        image_model=args.image_model,
        video_model=args.video_model,
        style=args.style,
        reference=reference,
        out_dir=args.out.resolve(),
    )
    if args.no_wait:
        return await _enqueue(settings, options)
    return await _render(settings, options)


def check_writable(folder: Path, setting: str | None = None) -> None:
    """Fail early, before anything is stored, when a folder the story writes to cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".storybot-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        where = f"{folder} (set {setting} to a writable folder)" if setting else str(folder)
        raise UserInputError(f"cannot write to {where}: {exc.strerror or exc}") from None


async def _render(settings: Settings, options: StoryOptions) -> int:
    # imported here: start-up time (the Runtime imports the provider SDKs, PyAV and Pillow)
    import asyncio

    from bot.domain import StoryStatus
    from bot.runtime import Runtime
    from storage import stories as story_rows

    assert options.out_dir is not None
    check_writable(settings.media_dir, "MEDIA_DIR")  # else every render fails, after the story was stored
    check_writable(options.out_dir)
    async with Runtime(settings, out_dir=options.out_dir) as rt:
        rt.stories.validate(options)  # fail fast, before the database is touched
        story = await rt.stories.create(options)
        print(f"Story {story.id}: {story.scene_count} scenes, images by {story.image_model}"
              + (f", clips by {story.video_model}" if story.video_mode else ""))  # fmt: skip
        shown: list[str] = []
        watcher = asyncio.create_task(_print_progress(rt, story.id, story.video_mode, shown))
        try:
            await rt.run_until_empty()
        finally:
            watcher.cancel()
        await _print_line(rt, story.id, story.video_mode, shown)
        final = await story_rows.get(rt.db, story.id)
        assert final is not None
        page = options.out_dir / story.id / "index.html"
        if final.status is StoryStatus.COMPLETE:
            print(f"“{final.title}” is ready. Open {page}")
            return 0
        print(f"storybot: the story did not finish ({final.status.value}): {final.error or 'see the page'}",
              file=sys.stderr)  # fmt: skip
        return 1


async def _enqueue(settings: Settings, options: StoryOptions) -> int:
    """Store the story and queue its first job, as ``_render`` does, and return without rendering it."""
    from bot.runtime import Runtime  # imported here: start-up time (provider SDKs, PyAV, Pillow)

    assert options.out_dir is not None
    check_writable(settings.media_dir, "MEDIA_DIR")  # as _render: else the render fails after the story was stored
    check_writable(options.out_dir)
    async with Runtime(settings, out_dir=options.out_dir) as rt:
        story = await rt.stories.create(options)
    scenes = f"{story.scene_count} scene{'s' * (story.scene_count > 1)}"
    print(f"Story {story.id} queued ({scenes}): `storybot work` renders it into "
          f"{options.out_dir / story.id}, `storybot list` shows how far it got.")  # fmt: skip
    return 0


async def _print_progress(rt: Runtime, story_id: str, video: bool, shown: list[str]) -> None:
    import asyncio  # imported here: start-up time (loaded by main already)

    while True:
        await _print_line(rt, story_id, video, shown)
        await asyncio.sleep(0.3)


async def _print_line(rt: Runtime, story_id: str, video: bool, shown: list[str]) -> None:
    """Print the story's progress line if it changed since the last one in ``shown``."""
    # imported here: start-up time (pydantic models and aiosqlite; loaded already by _render's Runtime)
    from bot.services.progress import progress_of
    from storage import scenes as scene_rows
    from storage import stories as story_rows

    story = await story_rows.get(rt.db, story_id)
    if story is None:
        return
    line = progress_of(story, await scene_rows.list_for_story(rt.db, story_id)).line(video)
    if not shown or shown[-1] != line:
        shown.append(line)
        print(line, flush=True)


async def _work(settings: Settings) -> int:
    from bot.runtime import Runtime  # imported here: start-up time (provider SDKs, PyAV, Pillow)

    async with Runtime(settings) as rt:
        stats = await rt.run_until_empty()
        await rt.sweep_leftovers()  # what killed runs left while this one worked
        # A Discord story's deliveries wait for the bot: only it can post them (storage.jobs.publisher_filter).
        left = await rt.queue.left_for_others()
        waiting = f"; {left} Discord deliveries left for the bot" if left else ""
        print(f"queue empty: {stats.succeeded} done, {stats.failed} failed, {stats.dead} dead, "
              f"{stats.retried} retried{waiting}")  # fmt: skip
    return 0


async def _models(settings: Settings) -> int:
    """The registry as a Runtime of this process sees it, without building one (start-up time): the
    catalogue, the models file and the keys, plus what the stored health says (retired, key refused).
    A fresh process has no cooldowns or open breakers of its own, so the health verdict is all it adds."""
    # imported here: start-up time (only these, not the Runtime with the provider SDKs, PyAV and Pillow)
    from bot.clock import SystemClock
    from bot.health.book import HealthBook
    from bot.health.rules import Thresholds
    from bot.routing.registry import Registry
    from storage import health as health_rows
    from storage.engines import database_for

    registry = Registry.load(settings)
    registry.validate_routing(settings.routing)
    db = await database_for(settings.database_url_value(), settings.database_path).open()  # as Runtime.open
    try:
        entries = await health_rows.load_health(db)
    finally:
        await db.close()
    book = HealthBook(registry, SystemClock(), Thresholds.from_settings(settings))
    book.load(entries)
    registry.set_health_hook(book.verdict)
    print(format_models(registry))
    return 0


async def _status(settings: Settings) -> int:
    # imported here: start-up time (provider SDKs, PyAV, Pillow)
    from bot.health.table import format_processes, format_status
    from bot.runtime import Runtime

    rt = await Runtime(settings).open(create=False)  # a status of a database made just now would mislead
    try:
        report = await rt.health.report(live=False)
        print(format_status(report))
        print()
        print(format_processes(report, await rt.live_processes()))
        print()
        print(format_queue(await rt.queue.counts()))  # last, as scripts read it
    finally:
        await rt.close()
    return 0


async def _db(args: argparse.Namespace, settings: Settings) -> int:
    from storage.engines import database_for  # imported here: start-up time (aiosqlite, psycopg)

    if args.db_command == "check":
        return await _db_check(settings)
    if args.db_command == "copy":
        return await _db_copy(args, settings)
    db = database_for(settings.database_url_value(), settings.database_path)
    await db.open(migrate=False, create=args.db_command == "migrate")
    try:
        if args.db_command == "migrate":
            applied = await db.migrate()
            done = ", ".join(applied) if applied else "nothing to apply"
            print(f"{db.where}: schema version {await db.user_version()} ({done})")
        else:
            how = await db.backup(args.path)
            print(f"backup written to {args.path}: {how}")
    finally:
        await db.close()
    return 0


CHECKED_BY = {"sqlite": "SQLite's integrity check", "postgresql": "reading every table"}


async def _db_check(settings: Settings) -> int:
    from storage.engines import database_for  # imported here: start-up time (aiosqlite, psycopg)

    db = database_for(settings.database_url_value(), settings.database_path)
    try:
        # Unverified: reporting what is wrong is the point here, so a damaged file is opened all the same.
        await db.open(migrate=False, create=False, verify=False)
    except DatabaseDamaged as exc:
        print(f"damaged: {exc.reason}; {RESTORE_HINT}")
        return 1
    try:
        problems = await db.integrity_problems()
    finally:
        await db.close()
    if not problems:
        print(f"{db.where}: ok ({CHECKED_BY[db.engine]} found nothing wrong)")
        return 0
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
    print(f"damaged: {CHECKED_BY[db.engine]} found {len(problems)} problem(s): {shown}; {RESTORE_HINT}")
    return 1


async def _db_copy(args: argparse.Namespace, settings: Settings) -> int:
    """The SQLite database at DATABASE_PATH (migrated first, as every command does) into an empty PostgreSQL
    database (migrated first too), in one transaction: storage/copy.py. The URL's password stays out of every
    line printed or logged: messages name the target by ``where`` (database, host and port)."""
    # imported here: start-up time (aiosqlite, psycopg)
    import time
    from urllib.parse import urlsplit

    from bot.settings import MASK, redact, register_secrets
    from storage.copy import copy_database
    from storage.engines import POSTGRES_SCHEMES, database_for

    url = args.to or settings.database_url_value()
    if not url:
        raise UserInputError("say where to copy to: --to postgresql://user:password@host/dbname (or set DATABASE_URL)")
    if not url.startswith(POSTGRES_SCHEMES):
        raise UserInputError("--to must be a PostgreSQL URL: postgresql://user:password@host/dbname")
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    register_secrets([url, *([password] if password else [])])  # masked in every log line from here on
    source = database_for(None, settings.database_path)
    target = database_for(url, settings.database_path)
    try:
        await source.open(migrate=False, create=False)
        migrated = await source.migrate()
        if migrated:
            print(f"{source.where}: migrated to schema version {await source.user_version()} first "
                  f"({', '.join(migrated)})")  # fmt: skip
        await target.open()
        started = time.monotonic()
        copied = await copy_database(source, target)
        took = time.monotonic() - started
        version = await target.user_version()
    except StorageError as exc:  # a driver's message may quote the URL: masked, and named as the user gave it
        clean = redact(str(exc))
        if password and password in clean:  # a password too short for the redactor (bot.settings.MIN_SECRET_CHARS)
            clean = clean.replace(password, MASK)
        if args.to:
            clean = clean.replace("DATABASE_URL", "the --to URL")
        if clean != str(exc):
            raise StorageError(clean) from None
        raise
    finally:
        await target.close()
        await source.close()
    print(format_copy(copied, f"copied {source.where} into {target.where} (schema version {version}) in {took:.2f} s:"))
    print("Set DATABASE_URL to that database to use it; the SQLite file is left as it was.")
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    """Every story, newest first, with each scene's picture and clip; ``--json`` for scripts (``stories_json``)."""
    # imported here: start-up time (aiosqlite or psycopg, pydantic's models; not the Runtime)
    import json

    from storage import scenes as scene_rows
    from storage import stories as story_rows
    from storage.engines import database_for

    if args.limit < 0:
        raise UserInputError(f"--limit must be 0 (every story) or more (got {args.limit})")
    db = database_for(settings.database_url_value(), settings.database_path)
    try:
        await db.open(create=False)
    except DatabaseMissing:  # nothing has run here yet: no stories, and no database made just to say so
        print("[]" if args.json else "no stories yet")
        return 0
    try:
        stories = await story_rows.newest(db, limit=args.limit or None)
        scenes = await scene_rows.of_stories(db, [story.id for story in stories])
        total = await story_rows.count_all(db) if args.limit and len(stories) == args.limit else len(stories)
    finally:
        await db.close()
    if args.json:
        print(json.dumps(stories_json(stories, scenes), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(format_stories(stories, scenes, total))
    return 0


# -- terminal tables --------------------------------------------------------------------------------


def format_models(registry: Registry) -> str:
    from bot.health.table import format_table  # imported here: start-up time (pydantic models)

    rows = []
    for spec in sorted(registry.specs(), key=lambda s: (s.modality.value, s.provider, s.key)):
        availability = registry.availability(spec.key)
        status = "available" if availability.usable else f"unavailable: {availability.reason}"
        rows.append((spec.key, spec.display_name, spec.provider, spec.modality.value, ", ".join(spec.tags), status))
    table = format_table(("key", "name", "provider", "modality", "capabilities", "status"), rows)
    aliases = registry.aliases
    if aliases:
        table += "\n\naliases: " + ", ".join(f"{old} -> {new}" for old, new in sorted(aliases.items()))
    return table


def stories_json(stories: Sequence[Story], scenes: Mapping[str, Sequence[Scene]]) -> list[dict[str, Any]]:
    """``storybot list --json``: the same keys for every story (null when there is no value), for scripts.
    Times are ISO 8601 in UTC; a scene's ``index`` counts from 1, as the storybook's files do."""
    return [
        {
            "id": story.id,
            "status": story.status.value,
            "title": story.title,
            "prompt": story.prompt,
            "created_at": _iso(story.created_at),
            "updated_at": _iso(story.updated_at),
            "scene_count": story.scene_count,
            "video": story.video_mode,
            "error": story.error,
            "page": _page(story),
            "scenes": [
                {"index": scene.index + 1, "image": scene.image_status.value, "clip": scene.video_status.value}
                for scene in scenes.get(story.id, ())
            ],
        }
        for story in stories
    ]


def format_stories(stories: Sequence[Story], scenes: Mapping[str, Sequence[Scene]], total: int) -> str:
    """``storybot list``: a block per story (id, status, when, title; prompt; each scene's picture and clip)."""
    from datetime import UTC, datetime  # imported here: start-up time

    if not stories:
        return "no stories yet"
    blocks = []
    for story in stories:
        when = datetime.fromtimestamp(story.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        title = f"“{_clip(story.title)}”" if story.title else "(no title yet)"
        lines = [f"{story.id}  {story.status.value:<12}  {when}  {title}", f"  prompt: {_clip(story.prompt)}"]
        if story.error:
            lines.append(f"  error: {_clip(story.error)}")
        written = scenes.get(story.id, ())
        if not written:
            lines.append(f"  {story.scene_count} scene{'s' * (story.scene_count > 1)}, not written yet")
        for scene in written:
            lines.append(
                f"  scene {scene.index + 1:<3} image {scene.image_status.value:<10}  clip {scene.video_status.value}"
            )
        if (page := _page(story)) is not None:
            lines.append(f"  page: {page}")
        blocks.append("\n".join(lines))
    if total > len(stories):
        blocks.append(f"the newest {len(stories)} of {total} stories; --limit 0 shows them all")
    return "\n\n".join(blocks)


def _iso(timestamp: float) -> str:
    from datetime import UTC, datetime  # imported here: start-up time

    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _page(story: Story) -> str | None:
    """Where an offline story's storybook is (or will be); None for a Discord story."""
    return str(Path(story.out_dir) / story.id / "index.html") if story.out_dir else None


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_copy(copied: Mapping[str, int], heading: str) -> str:
    width = max(len(name) for name in [*copied, "total"])
    rows = [f"  {name:<{width}}  {count:>9,}" for name, count in copied.items()]
    return "\n".join([heading, *rows, f"  {'total':<{width}}  {sum(copied.values()):>9,} rows"])


def format_queue(counts: Mapping[str, int]) -> str:
    from bot.health.table import format_table  # imported here: start-up time (pydantic models)

    order = ("queued", "running", "succeeded", "failed", "dead", "cancelled")
    return format_table(("status", "jobs"), [(name, str(counts.get(name, 0))) for name in order])


if __name__ == "__main__":
    raise SystemExit(main())
