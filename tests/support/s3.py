"""A throwaway S3-compatible server for the tests (moto's standalone server), and the ``s3_bucket`` fixture.

Mirrors tests/support/postgres.py: the xdist controller (or a plain run, ``-p no:xdist``) starts one server in
``pytest_configure``, before xdist spawns its workers in ``pytest_sessionstart``, on 127.0.0.1 and a free port,
and exports its URL as STORYBOT_TEST_S3_ENDPOINT (with an access key in STORYBOT_TEST_S3_ACCESS_KEY_ID and
STORYBOT_TEST_S3_SECRET_ACCESS_KEY); workers inherit them. It is stopped in ``pytest_unconfigure``, else at exit,
else by a watchdog that notices the test run has died (even if killed).

The server checks credentials as S3 does: before the run starts it gets an IAM user with an access key allowed
everything, then IAM authentication is switched on (moto's ``/moto-api/reset-auth``), so a wrong key or secret
is refused with 403 like AWS.

- STORYBOT_TEST_S3_ENDPOINT already set (with the two key variables): that server is used and nothing is started.
- moto is not installed: ``s3_bucket`` skips, unless STORYBOT_REQUIRE_SERVERS=1 (CI), which fails the run.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.postgres import REQUIRE_VARIABLE, free_port

URL_VARIABLE = "STORYBOT_TEST_S3_ENDPOINT"
KEY_ID_VARIABLE = "STORYBOT_TEST_S3_ACCESS_KEY_ID"
SECRET_VARIABLE = "STORYBOT_TEST_S3_SECRET_ACCESS_KEY"
SKIP_VARIABLE = "STORYBOT_TEST_S3_SKIP"  # why there is no server, for the workers' skips
NOT_INSTALLED = "moto's S3 server is not installed (pip install 'moto[server]', in the dev extra)"
REGION = "us-east-1"
START_ATTEMPTS = 3
READY_WITHIN_S = 30.0
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

# Sits on a pipe from the test run; at EOF (the run is over, however it ended) stops the server if it still runs.
WATCHDOG = 'read -r _; kill "$1" 2>/dev/null; exit 0'


@dataclass
class Server:
    """One running moto server, and how to stop it. ``stop`` may be called any number of times."""

    process: subprocess.Popen[bytes]
    port: int
    watchdog: subprocess.Popen[bytes] | None = None
    access_key_id: str = ""
    secret_access_key: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def guard(self) -> None:
        """The watchdog: a shell in its own session (so a Ctrl-C to the terminal passes it by) reading a pipe
        only this process holds; when the run ends, however, it kills the server if ``stop`` did not."""
        self.watchdog = subprocess.Popen(
            ["sh", "-c", WATCHDOG, "watchdog", str(self.process.pid)],
            cwd="/",
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.watchdog is not None:
            watchdog, self.watchdog = self.watchdog, None
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                watchdog.communicate(timeout=10)  # closes its pipe; it finds nothing left to do and exits


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
            return True
    except (OSError, urllib.error.URLError):
        return False


def _start_once() -> Server:
    port = free_port()
    with tempfile.TemporaryFile() as log:  # what it says (a request log line each), read only if it fails to start
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={name: value for name, value in os.environ.items() if not name.startswith("AWS_")},
        )
        server = Server(process, port)
        server.guard()
        deadline = time.monotonic() + READY_WITHIN_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                server.stop()
                log.seek(0)
                said = log.read().decode(errors="replace")
                raise RuntimeError(f"moto's server exited with code {process.returncode}:\n{said[-2000:]}")
            if _answers(server.url):
                return server
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"moto's server did not answer within {READY_WITHIN_S:g} s")


def _client(service: str, url: str, key_id: str, secret: str) -> Any:
    with warnings.catch_warnings():  # botocore's imports may warn; the suite turns warnings into errors
        warnings.simplefilter("ignore")
        import boto3

        return boto3.client(
            service, endpoint_url=url, region_name=REGION, aws_access_key_id=key_id, aws_secret_access_key=secret
        )


def _require_credentials(server: Server) -> None:
    """Make an IAM user allowed everything with an access key, then switch IAM authentication on."""
    iam = _client("iam", server.url, "bootstrap-key", "bootstrap-secret")  # accepted while auth is off
    iam.create_user(UserName="storybot-tests")
    iam.put_user_policy(UserName="storybot-tests", PolicyName="everything", PolicyDocument=json.dumps(ALLOW_ALL))
    key = iam.create_access_key(UserName="storybot-tests")["AccessKey"]
    server.access_key_id, server.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]
    request = urllib.request.Request(
        f"{server.url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def launch() -> Server:
    """A fresh server on a free port, answering and checking credentials; on failure nothing is left running."""
    attempt = 1
    while True:
        try:
            server = _start_once()
            break
        except RuntimeError:  # most likely the port was taken between free_port() and the bind
            if attempt == START_ATTEMPTS:
                raise
            attempt += 1
    try:
        _require_credentials(server)
    except Exception as error:
        server.stop()
        raise RuntimeError(f"could not set up credentials on moto's server: {error}") from error
    return server


_server: Server | None = None
_exported: list[str] = []  # what this module put in os.environ, to take out again


def _stop() -> None:
    global _server
    if _server is not None:
        server, _server = _server, None
        server.stop()
    for name in _exported:
        os.environ.pop(name, None)
    _exported.clear()


def _export(name: str, value: str) -> None:
    os.environ[name] = value
    _exported.append(name)


def _moto_installed() -> bool:
    """moto and the web framework of its server (the ``server`` extra), found without importing them."""
    return all(importlib.util.find_spec(name) is not None for name in ("moto", "flask", "boto3"))


_owner = pytest.StashKey[bool]()  # on the config that started the server (or found none): it cleans up
_started = pytest.StashKey[float]()  # how long the start took, for the report header


def pytest_configure(config: pytest.Config) -> None:
    global _server
    if hasattr(config, "workerinput") or os.environ.get(URL_VARIABLE) or _server is not None:
        return  # an xdist worker (it inherits the URL), a server of the developer's, or an outer run's
    if any(getattr(config.option, name, False) for name in ("help", "version", "collectonly")):
        return
    config.stash[_owner] = True
    required = os.environ.get(REQUIRE_VARIABLE) == "1"
    if not _moto_installed():
        if required:
            raise pytest.UsageError(f"{NOT_INSTALLED}, and {REQUIRE_VARIABLE}=1 requires it")
        _export(SKIP_VARIABLE, NOT_INSTALLED)
        return
    began = time.monotonic()
    try:
        _server = launch()
    except RuntimeError as error:
        if required:
            raise pytest.UsageError(f"could not start moto's S3 server: {error}") from error
        _export(SKIP_VARIABLE, f"could not start moto's S3 server: {error}")
        return
    atexit.register(_stop)
    _export(URL_VARIABLE, _server.url)
    _export(KEY_ID_VARIABLE, _server.access_key_id)
    _export(SECRET_VARIABLE, _server.secret_access_key)
    config.stash[_started] = time.monotonic() - began


def pytest_report_header(config: pytest.Config) -> str | None:
    if (took := config.stash.get(_started, None)) is None or _server is None:
        return None
    return f"s3 (moto): {_server.url} (started in {took:.2f}s)"


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_owner, False):
        _stop()


@dataclass(frozen=True)
class Bucket:
    """An empty bucket of the test server, the credentials that reach it, and a boto3 client to look inside."""

    endpoint: str
    name: str
    access_key_id: str
    secret_access_key: str
    client: Any  # boto3's S3 client: the tests' independent view of the bucket

    @property
    def url(self) -> str:
        return f"s3://{self.name}"

    def keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def pending_uploads(self) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted (their parts are hidden costs)."""
        return [upload["Key"] for upload in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", [])]

    def settings(self, prefix: str = "") -> dict[str, Any]:
        """The load_settings() overrides that point MEDIA_URL at this bucket (under ``prefix``)."""
        return {
            "media_url": f"s3://{self.name}/{prefix}".rstrip("/"),
            "media_endpoint_url": self.endpoint,
            "media_access_key_id": self.access_key_id,
            "media_secret_access_key": self.secret_access_key,
        }


@contextlib.contextmanager
def empty_bucket() -> Iterator[Bucket]:
    """A new, empty bucket of the test server; emptied and deleted on exit. Skips when there is no server."""
    endpoint = os.environ.get(URL_VARIABLE)
    if not endpoint:
        pytest.skip(os.environ.get(SKIP_VARIABLE) or NOT_INSTALLED)
    key_id, secret = os.environ.get(KEY_ID_VARIABLE, ""), os.environ.get(SECRET_VARIABLE, "")
    client = _client("s3", endpoint, key_id, secret)
    name = f"storybot-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    try:
        yield Bucket(endpoint, name, key_id, secret, client)
    finally:
        for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=name, Key=item["Key"])
        client.delete_bucket(Bucket=name)


@pytest.fixture
def s3_bucket() -> Iterator[Bucket]:
    """An empty bucket of the test S3 server for this test alone (see ``Bucket``)."""
    with empty_bucket() as bucket:
        yield bucket
