"""A throwaway PostgreSQL server for the tests, and the ``postgres_url`` fixture: an empty schema of it per test.

The xdist controller (or a plain run, ``-p no:xdist``) starts one cluster in ``pytest_configure``, before xdist
spawns its workers in ``pytest_sessionstart``, and exports its URL as STORYBOT_TEST_POSTGRES_URL; workers inherit
it. The cluster lives in a temporary folder (data, socket, log) and is stopped (``pg_ctl -m immediate``) and removed
in ``pytest_unconfigure``, else at exit, else by a watchdog that notices the test run has died (even if killed).

- STORYBOT_TEST_POSTGRES_URL already set: that server is used and nothing is started.
- No PostgreSQL binaries: ``postgres_url`` skips, unless STORYBOT_REQUIRE_SERVERS=1 (CI), which fails the run.
- As root, initdb and postgres refuse to run; they run as the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

URL_VARIABLE = "STORYBOT_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "STORYBOT_REQUIRE_SERVERS"
SKIP_VARIABLE = "STORYBOT_TEST_POSTGRES_SKIP"  # why there is no server, for the workers' skips
NOT_INSTALLED = "PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin)"
SERVER_USER = "postgres"
START_ATTEMPTS = 3

# Durability is worthless for a throwaway cluster; connections: several per test, times the xdist workers.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
}

# Sits on a pipe from the test run; at EOF (the run is over, however it ended) stops the cluster if it still runs.
# Arguments: the temporary folder, the data folder, then the pg_ctl command (with -D) to append "stop" to.
WATCHDOG = 'folder=$1 data=$2; shift 2; read -r _; [ -d "$data" ] && "$@" -m immediate -w stop; rm -rf "$folder"'


def find_binaries() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: that of ``initdb`` on PATH, else the newest Debian one."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name), reverse=True)
    for folder in [*candidates, *versions]:
        if all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """One running cluster, and how to stop it. ``stop`` may be called any number of times."""

    bin: Path
    folder: Path
    as_user: list[str]  # the runuser prefix when root, else empty
    port: int = 0
    watchdog: subprocess.Popen[bytes] | None = None
    settings: dict[str, str] = field(default_factory=dict)  # over SETTINGS (the benchmarks turn fsync back on)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        """``argv`` as the server's user, in the temporary folder (the user may not enter the current one)."""
        return subprocess.run(
            [*self.as_user, *map(str, argv)], cwd=self.folder, capture_output=True, text=True, check=False
        )

    def pg_ctl(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin / "pg_ctl", "-D", self.data, *argv)

    def init(self) -> None:
        done = self.run(
            self.bin / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
            "--locale=C",
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            ours = {"port": str(self.port), "unix_socket_directories": str(self.folder)}
            settings = {**SETTINGS, **self.settings, **ours}
            options = " ".join(f"-c {shlex.quote(f'{name}={value}')}" for name, value in settings.items())
            logged = self.log.stat().st_size if self.log.exists() else 0
            done = self.pg_ctl("-w", "-t", "60", "-l", self.log, "-o", options, "start")
            if done.returncode == 0:
                return
            log = self.log.read_text(errors="replace")[logged:] if self.log.exists() else ""
            if "already in use" not in log or attempt == START_ATTEMPTS:
                raise RuntimeError(f"pg_ctl start failed ({done.returncode}):\n{done.stdout}{done.stderr}{log}")
        raise AssertionError("unreachable")

    def guard(self) -> None:
        """The watchdog: a shell in its own session (so a Ctrl-C to the terminal passes it by) reading a pipe
        only this process holds; when the run ends, however, it stops what ``stop`` did not and removes it."""
        stop = [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data)]
        self.watchdog = subprocess.Popen(
            ["sh", "-c", WATCHDOG, "watchdog", str(self.folder), str(self.data), *stop],
            cwd="/",
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.data.exists():
            self.pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.watchdog is not None:
            watchdog, self.watchdog = self.watchdog, None
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                watchdog.communicate(timeout=10)  # closes its pipe; it finds nothing left to do and exits


def launch(bin: Path, settings: Mapping[str, str] | None = None) -> Cluster:
    """A fresh cluster in a new temporary folder, started; on failure nothing is left behind. ``settings``
    override the server settings of SETTINGS (the tests' run without any)."""
    root = os.geteuid() == 0
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="storybot-pg-"))
    cluster = Cluster(bin, folder, as_user, settings=dict(settings or {}))
    try:
        if root:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise RuntimeError("running as root, and there is no runuser to run PostgreSQL as another user")
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as"
                ) from None
            os.chown(folder, user.pw_uid, user.pw_gid)
            as_user.extend([runuser, "-u", SERVER_USER, "--"])
        cluster.guard()
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


_cluster: Cluster | None = None
_exported: list[str] = []  # what this module put in os.environ, to take out again


def _stop() -> None:
    global _cluster
    if _cluster is not None:
        cluster, _cluster = _cluster, None
        cluster.stop()
    for name in _exported:
        os.environ.pop(name, None)
    _exported.clear()


def _export(name: str, value: str) -> None:
    os.environ[name] = value
    _exported.append(name)


_owner = pytest.StashKey[bool]()  # on the config that started the cluster (or found none): it cleans up
_started = pytest.StashKey[float]()  # how long the start took, for the report header


def pytest_configure(config: pytest.Config) -> None:
    global _cluster
    if hasattr(config, "workerinput") or os.environ.get(URL_VARIABLE) or _cluster is not None:
        return  # an xdist worker (it inherits the URL), a server of the developer's, or an outer run's
    if any(getattr(config.option, name, False) for name in ("help", "version", "collectonly")):
        return
    config.stash[_owner] = True
    required = os.environ.get(REQUIRE_VARIABLE) == "1"
    bin = find_binaries()
    if bin is None:
        if required:
            raise pytest.UsageError(f"{NOT_INSTALLED}, and {REQUIRE_VARIABLE}=1 requires it")
        _export(SKIP_VARIABLE, NOT_INSTALLED)
        return
    began = time.monotonic()
    try:
        _cluster = launch(bin)
    except RuntimeError as error:
        if required:
            raise pytest.UsageError(f"could not start PostgreSQL from {bin}: {error}") from error
        _export(SKIP_VARIABLE, f"could not start PostgreSQL from {bin}: {error}")
        return
    atexit.register(_stop)
    _export(URL_VARIABLE, _cluster.url)
    config.stash[_started] = time.monotonic() - began


def pytest_report_header(config: pytest.Config) -> str | None:
    if (took := config.stash.get(_started, None)) is None or _cluster is None:
        return None
    return f"postgresql: {_cluster.url} ({_cluster.bin}, started in {took:.2f}s)"


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_owner, False):
        _stop()


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections put ``schema`` first on the search_path (libpq's ``options`` parameter)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextlib.contextmanager
def empty_schema() -> Iterator[str]:
    """A new, empty schema of the test server, as a URL that puts it on the search_path; dropped on exit.
    Skips the test when there is no server. One connection to create it, one to drop it."""
    import psycopg
    from psycopg import sql

    base = os.environ.get(URL_VARIABLE)
    if not base:
        pytest.skip(os.environ.get(SKIP_VARIABLE) or NOT_INSTALLED)
    name = f"t_{uuid.uuid4().hex}"  # lower case letters and digits: the same quoted or not
    with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_search_path(base, name)
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of the test PostgreSQL server whose search_path is a new, empty schema, dropped after the test.
    A test that needs a second one calls ``empty_schema()``."""
    with empty_schema() as url:
        yield url
