"""Run stories with known fake keys, through faults whose answers echo those keys back, and check that
no key appears in the logs, the CLI's output, the database files, the storybook, the media, what the
bot sent to the providers (outside the auth header), or anything posted to Discord.

Every secret holds the word CANARY, so a text with a partly masked key still counts as a leak.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from bot.runtime import Runtime
from bot.services.stories import StoryOptions
from bot.settings import load_settings
from tests.fakes.discord import FakeDiscord
from tests.fakes.providers import FakeProviders, Fault
from tests.support.discord_harness import OWNER, make_settings, running
from tests.support.providers import fault_provider_env

CANARY = "LEAKCANARY"
KEYS = {
    "OPENAI_API_KEY": f"sk-proj-{CANARY}openai7f3a9c1e5b2d8f4a",
    "XAI_API_KEY": f"xai-{CANARY}grok9d2e4f6a8b0c1d3e",
    "GEMINI_API_KEY": f"AIza{CANARY}gemini3b5d7f9a1c3e5a7",
}
DISCORD_TOKEN = f"MTAx{CANARY}discord.Gx7Yq2.s3cr3tT0ken"
# Where each provider expects its key; anywhere else in a request it is a leak.
AUTH_HEADERS = {"authorization", "x-goog-api-key"}


def arm_traps(fake: FakeProviders) -> None:
    """Faults whose bodies quote the caller's key back, as some APIs do: auth failures on OpenAI and
    Gemini (the model is benched, the story falls back), a rate limit and a server error on xAI that
    are retried, and a failed clip whose reason (shown to the user) quotes the key."""
    openai_key, xai_key, gemini_key = KEYS["OPENAI_API_KEY"], KEYS["XAI_API_KEY"], KEYS["GEMINI_API_KEY"]
    openai_401 = Fault.http(401, {"error": {
        "message": f"Incorrect API key provided: {openai_key}. You can find your API key at https://platform.openai.com.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key",
    }})  # fmt: skip
    gemini_400 = Fault.http(400, {"error": {
        "code": 400, "message": f"API key not valid: {gemini_key}. Please pass a valid API key.",
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                     "domain": "googleapis.com", "metadata": {"key": gemini_key}}],
    }})  # fmt: skip
    fake.script("openai.chat", [openai_401])
    fake.script("openai.images.generate", [openai_401])
    fake.script("openai.images.edit", [openai_401])
    fake.script("google.generate_content", [gemini_400, gemini_400, gemini_400])
    fake.script("xai.chat", [Fault.http(429, {"code": "rate_limited", "error": f"Too many requests for {xai_key}"},
                                        headers={"retry-after": "0.05"})])  # fmt: skip
    fake.script("xai.images.generate", [Fault.http(500, {"code": "internal", "error": f"internal error ({xai_key})"})])
    fake.script("xai.videos.poll", [Fault.video_failed("internal_error", f"render crashed for key {xai_key}")])


def assert_traps_sprung(fake: FakeProviders) -> None:
    """The keys really went over the wire, and the answers quoting them were really served."""
    assert any(CANARY in r.headers.get("Authorization", "") for r in fake.calls("openai.chat"))
    assert any(CANARY in r.headers.get("x-goog-api-key", "") for r in fake.calls("google.generate_content"))
    assert fake.calls("openai.chat") and fake.calls("xai.chat") and fake.calls("xai.videos.poll")


def leaks_in_requests(fake: FakeProviders) -> list[str]:
    """Anything the bot sent to a provider that holds a key, outside the auth headers."""
    found = []
    for r in fake.requests:
        headers = {k: v for k, v in r.headers.items() if k.lower() not in AUTH_HEADERS}
        sent = [r.path, json.dumps(r.query), json.dumps(r.json), json.dumps(r.form_fields), json.dumps(headers)]
        sent += [data.decode("latin-1") for parts in r.files.values() for data in parts]
        found += [f"{r.route}: {text[:200]}" for text in sent if CANARY in text]
    return found


def leaks_in_files(paths: Iterable[Path]) -> list[str]:
    return [str(p) for p in paths if p.is_file() and CANARY.encode() in p.read_bytes()]


def database_files(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def leaks_in_logs(records: Iterable[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")  # with tracebacks and their causes
    return [text[:300] for text in (formatter.format(r) for r in records) if CANARY in text]


@pytest.fixture
def key_env(providers: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = fault_provider_env(providers, tmp_path, **KEYS)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def test_no_key_in_logs_database_files_or_requests(
    providers: FakeProviders, key_env: dict[str, str], tmp_path: Path, every_log: pytest.LogCaptureFixture
) -> None:
    arm_traps(providers)
    settings = load_settings()
    db = settings.database_path
    async with Runtime(settings, out_dir=tmp_path / "out") as rt:
        story = await rt.stories.create(StoryOptions(prompt="a fox who learns to fly", scenes=2, video=True))
        stats = await rt.run_until_empty(backoff_base_s=0.05, backoff_cap_s=0.2)
        assert stats.dead == 0
        row = await rt.db.fetchone("SELECT status FROM stories WHERE id = ?", (story.id,))
        assert row is not None and row["status"] == "complete"
        failed = await rt.db.fetchone("SELECT video_error FROM scenes WHERE video_status = 'failed'")
        assert failed is not None and "render crashed for key" in failed["video_error"]  # the reason is shown...
        assert leaks_in_files(database_files(db)) == []  # ...without the key, WAL and all, while open
    assert_traps_sprung(providers)
    assert leaks_in_files(database_files(db)) == []
    assert leaks_in_files((tmp_path / "out").rglob("*")) == []
    assert leaks_in_files((tmp_path / "media").rglob("*")) == []
    assert leaks_in_requests(providers) == []
    assert any("benched" in r.getMessage() for r in every_log.records), "the auth failures never happened"
    assert leaks_in_logs(every_log.records) == []


async def test_no_key_in_the_cli_output(providers: FakeProviders, key_env: dict[str, str], tmp_path: Path) -> None:
    arm_traps(providers)
    out = tmp_path / "cli-out"
    outputs = []
    for command in (["story", "a crab who dances", "--scenes", "2", "--video", "--out", str(out)], ["models"]):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "-v", *command, env={**os.environ, **key_env}, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
        text = output.decode(errors="replace")
        assert process.returncode == 0, text
        outputs.append(text)
    assert_traps_sprung(providers)
    assert "benched" in outputs[0] and "is ready" in outputs[0]  # verbose: the failures were logged
    assert [line for text in outputs for line in text.splitlines() if CANARY in line] == []
    assert leaks_in_files(database_files(Path(key_env["DATABASE_PATH"]))) == []
    assert leaks_in_files(out.rglob("*")) == []
    assert leaks_in_requests(providers) == []


@pytest.fixture
async def discord_fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(token=DISCORD_TOKEN) as server:
        server.add_member(OWNER, "owner")
        yield server


def discord_texts(fake: FakeDiscord) -> list[str]:
    """Everything the bot put on Discord: messages (deleted ones too), embeds, components, files, callbacks,
    and every request body it sent."""
    texts = []
    for messages in fake.messages.values():
        for m in messages:
            texts += [m.content, json.dumps(m.embeds), json.dumps(m.components)]
            texts += [f"{a.filename} {a.description or ''}" for a in m.attachments]
            texts += [a.data.decode("latin-1") for a in m.attachments]
    texts += [json.dumps(c.data) for c in fake.callbacks]
    for r in fake.requests:
        texts += [r.path, json.dumps(r.query), json.dumps(r.json)] + [f.data.decode("latin-1") for f in r.files]
    return texts


def final_note_posted(fake: FakeDiscord, thread_id: int) -> bool:
    return any("is finished" in m.content for m in fake.channel_messages(thread_id))


async def test_no_key_in_anything_posted_to_discord(
    discord_fake: FakeDiscord, providers: FakeProviders, tmp_path: Path, every_log: pytest.LogCaptureFixture
) -> None:
    arm_traps(providers)
    keys = {name.lower(): value for name, value in KEYS.items()}
    urls = {"openai_base_url": providers.openai_base_url, "xai_base_url": providers.xai_base_url,
            "google_gemini_base_url": providers.gemini_base_url}  # fmt: skip
    settings = make_settings(tmp_path, discord_fake, **keys, **urls, video_duration_s=3)
    async with running(settings, storyboard_interval_s=0.2) as bot:
        handle = await discord_fake.slash(
            OWNER, "story", "new", options={"prompt": "a fox who learns to fly", "scenes": 2, "video": True}
        )
        await discord_fake.wait_until(lambda: handle.original and handle.original.embeds, 30, "storyboard")
        board = handle.original
        assert board is not None
        await discord_fake.wait_until(lambda: final_note_posted(discord_fake, board.id), 60, "the final note")
        db = bot.runtime.settings.database_path
        assert leaks_in_files(database_files(db)) == []
    assert_traps_sprung(providers)
    posted = [m.content for m in discord_fake.channel_messages(board.id)]
    assert any("clip failed" in text and "render crashed for key" in text for text in posted), posted
    assert [text[:200] for text in discord_texts(discord_fake) if CANARY in text] == []
    assert leaks_in_requests(providers) == []
    assert leaks_in_files(database_files(db)) == []
    assert leaks_in_logs(every_log.records) == []


# Keys with characters a URL or JSON must escape, padded as a hand-written .env leaves them.
ODD_KEYS = {name: f"{value}/+={name[:2]}" for name, value in KEYS.items()}
PADDED = {name: f"  {value}\n" for name, value in ODD_KEYS.items()}


def arm_encoded_echoes(fake: FakeProviders) -> None:
    """Answers that quote the key percent-encoded (as in a URL a proxy logged) and JSON-escaped."""
    openai_key, gemini_key = ODD_KEYS["OPENAI_API_KEY"], ODD_KEYS["GEMINI_API_KEY"]
    fake.script("openai.chat", [Fault.http(401, {"error": {
        "message": f"Incorrect API key provided: {quote(openai_key, safe='')}", "type": "invalid_request_error",
        "param": None, "code": "invalid_api_key",
    }})])  # fmt: skip
    fake.script("google.generate_content", [Fault.http(400, {"error": {
        "code": 400, "message": f"API key not valid: https://proxy.example/?key={quote_plus(gemini_key)}",
        "status": "INVALID_ARGUMENT",
    }})] * 3)  # fmt: skip


async def test_padded_keys_and_encoded_echoes_never_leak_from_the_cli(providers: FakeProviders, tmp_path: Path) -> None:
    arm_encoded_echoes(providers)
    env = {**os.environ, **fault_provider_env(providers, tmp_path, **PADDED)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "-v", "story", "a crab who dances", "--scenes", "1",
        "--out", str(tmp_path / "out"), env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert providers.calls("openai.chat") and providers.calls("google.generate_content")
    # The key went out trimmed: a header with the .env's newline would have been refused.
    sent = [r.headers["Authorization"] for r in providers.calls("openai.chat")]
    assert sent and all(header == f"Bearer {ODD_KEYS['OPENAI_API_KEY']}" for header in sent)
    assert [line for line in text.splitlines() if CANARY in line] == []
    assert "[redacted]" in text  # the echoes were logged (with -v), masked
    assert leaks_in_files(database_files(tmp_path / "storybot.db")) == []


async def test_a_token_echoed_by_discord_or_a_proxy_is_masked_in_the_log(
    discord_fake: FakeDiscord, tmp_path: Path, every_log: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, discord_fake)
    echo = f"Bad gateway: upstream refused 'Authorization: Bot {DISCORD_TOKEN}' ({quote(DISCORD_TOKEN, safe='')})"
    discord_fake.inject("channel_send", status=400, code=50035, message=echo)
    async with running(settings, storyboard_interval_s=0.2):
        handle = await discord_fake.slash(OWNER, "story", "new", options={"prompt": "a fox", "scenes": 1})
        await discord_fake.wait_until(lambda: handle.original and handle.original.embeds, 30, "storyboard")
        board = handle.original
        assert board is not None
        await discord_fake.wait_until(lambda: final_note_posted(discord_fake, board.id), 60, "the final note")
        rows = await running_db_texts(settings.database_path)
    assert any(r.injected for r in discord_fake.requests_to("channel_send")), "the echo was never served"
    assert leaks_in_logs(every_log.records) == []
    assert [text for text in rows if CANARY in text] == []
    assert [text[:200] for text in discord_texts(discord_fake) if CANARY in text] == []


async def running_db_texts(db: Path) -> list[str]:
    return [p.read_bytes().decode("latin-1") for p in database_files(db) if p.is_file()]
