"""S3-compatible object storage for media (``MEDIA_URL=s3://bucket/prefix``: AWS S3, Cloudflare R2, MinIO...).

Objects live at ``<prefix>/<story id>/<uuid>.<ext>``, the same names the files have under MEDIA_DIR, and are
named in rows by ``s3://bucket/<key>`` (never with a key or secret in it). bot.media.store decides when to
put and fetch them; this module only talks to the store.

The client is **obstore** (Python bindings of the Apache Arrow ``object_store`` crate, the S3 client of
arrow-rs, DataFusion and delta-rs, kept by Development Seed), chosen over aiobotocore because:

- it is natively async: requests run on obstore's own Rust (tokio) threads and the event loop only awaits
  their results, so no thread pool of ours is tied up and nothing blocks the loop;
- it streams both ways: a writer fed part by part (a multipart upload of PART_BYTES parts, PARTS_IN_FLIGHT of
  them at once) and a GET read as a stream of chunks, so a clip is never whole in memory;
- its writer is atomic and cleans up after itself: an object fits in one PUT or a multipart upload that only
  CompleteMultipartUpload makes visible, and leaving its ``async with`` by an exception aborts the upload, so
  a failed write leaves nothing at the final key and (the store permitting the abort) no parts behind it;
- it is one self-contained, typed wheel (typing-extensions its only dependency) with SigV4, retries and
  timeouts built in. aiobotocore brings botocore's service models (import time, memory), pins botocore
  to a narrow range that boto3 (moto, the tests' S3 server) must then match, and leaves multipart
  uploads and their abort for us to write.

A failure becomes a MediaStoreError in plain words naming the settings to check; the store's own reply (which
may quote the access key id) goes only to the log, and the log masks registered secrets (bot.settings).
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from bot.errors import MediaStoreError
from bot.settings import redact

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

    from bot.settings import Settings

log = logging.getLogger(__name__)

SCHEME = "s3://"
PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (but the last); R2 wants equal parts, which the writer makes
PARTS_IN_FLIGHT = 1  # an upload holds about two parts in memory (the one filling, the one sending), whatever its size
READ_BYTES = 1024 * 1024  # what one read of a local file, or one chunk of a download, holds
RETRIES = 3  # obstore's own, per request, for 5xx, 429 and connection errors, within RETRY_WINDOW
RETRY_WINDOW = timedelta(seconds=30)
CONNECT_TIMEOUT = "5s"
REQUEST_TIMEOUT = "300s"  # one request from start to end: a part, or a whole download (200 MiB at 1 MiB/s)
_STATUS = re.compile(r"status code: (\d{3})")


def is_object_ref(ref: str | None) -> bool:
    """Whether a row's media reference names an object (``s3://...``) rather than a local path."""
    return bool(ref) and str(ref).startswith(SCHEME)


class ObjectStorage:
    """One bucket (and prefix) of an S3-compatible store."""

    def __init__(
        self,
        url: str,
        *,
        access_key_id: str,
        secret_access_key: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("an object storage URL looks like s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = endpoint_url
        config: S3Config = {"region": region, "access_key_id": access_key_id}
        config["secret_access_key"] = secret_access_key
        if endpoint_url:
            config["endpoint"] = endpoint_url
        plain_http = bool(endpoint_url and endpoint_url.startswith("http:"))  # MinIO on a private network, tests
        options: ClientConfig = {"connect_timeout": CONNECT_TIMEOUT, "timeout": REQUEST_TIMEOUT}
        options["allow_http"] = plain_http
        retries: RetryConfig = {"max_retries": RETRIES, "retry_timeout": RETRY_WINDOW}
        self._client = S3Store(self.bucket, config=config, client_options=options, retry_config=retries)

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStorage:
        if not settings.media_url or not settings.media_access_key_id or not settings.media_secret_access_key:
            raise MediaStoreError("MEDIA_URL needs MEDIA_ACCESS_KEY_ID and MEDIA_SECRET_ACCESS_KEY")
        return cls(
            settings.media_url,
            access_key_id=settings.media_access_key_id.get_secret_value(),
            secret_access_key=settings.media_secret_access_key.get_secret_value(),
            endpoint_url=settings.media_endpoint_url,
            region=settings.media_region,
        )

    # -- names -----------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def ref(self, key: str) -> str:
        return f"{SCHEME}{self.bucket}/{key}"

    def key_of(self, ref: str) -> str:
        """The key an ``s3://`` reference names in this bucket; MediaStoreError for another bucket's."""
        bucket, _, key = ref.removeprefix(SCHEME).partition("/")
        if bucket != self.bucket or not key:
            raise MediaStoreError(
                "this file is stored in another bucket than MEDIA_URL names; point MEDIA_URL at the bucket "
                "it was written to"
            )
        return key

    # -- transfers -------------------------------------------------------------------------------

    async def upload(self, source: Path, key: str, mime_type: str) -> None:
        """Put the local file ``source`` at ``key``, streamed in parts; on failure nothing is at ``key``.

        One PUT when it fits in a part, else a multipart upload that only its completion makes visible; an
        exception inside the writer's block (a failed part, a local read error, cancellation) aborts it.
        A local read error is raised as the OSError it is (the caller words it); the store's, as MediaStoreError.
        """
        chunks = 0
        with source.open("rb") as handle:
            try:
                writer = obstore.open_writer_async(
                    self._client,
                    key,
                    buffer_size=PART_BYTES,
                    max_concurrency=PARTS_IN_FLIGHT,
                    attributes={"Content-Type": mime_type},
                )
                async with writer:
                    while chunk := await _read(handle):
                        await writer.write(chunk)
                        chunks += 1
            except _LocalReadError as local:
                raise local.error from None
            except Exception as exc:
                raise self._failure(exc, "store", key) from None
        log.debug("stored %s from %d chunks of at most %d bytes", key, chunks, READ_BYTES)

    async def download(self, key: str, dest: Path) -> bool:
        """Stream the object at ``key`` into the new file ``dest`` (a temp path: the caller renames it into
        place); False when there is no such object. Local write errors are raised as the OSErrors they are."""
        try:
            result = await obstore.get_async(self._client, key)
        except FileNotFoundError as exc:  # obstore's NotFound: no object at the key, or no bucket
            if "NoSuchBucket" in str(exc):
                raise self._failure(exc, "read", key) from None
            return False
        except Exception as exc:
            raise self._failure(exc, "read", key) from None
        chunks = 0
        with dest.open("xb") as handle:
            stream = result.stream(min_chunk_size=READ_BYTES)
            while True:
                try:
                    chunk = await anext(stream)
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    raise self._failure(exc, "read", key) from None
                await asyncio.to_thread(handle.write, chunk)
                chunks += 1
        log.debug("fetched %s in %d chunks of about %d bytes", key, chunks, READ_BYTES)
        return True

    async def delete_under(self, *parts: str) -> int:
        """Delete every object under the key ``parts`` make (a story's folder); returns how many."""
        prefix = self.key(*parts)
        keys: list[str] = []
        try:
            async for batch in obstore.list(self._client, prefix=prefix, chunk_size=1000):
                keys += [meta["path"] for meta in batch]
            if keys:
                await obstore.delete_async(self._client, keys)
        except Exception as exc:
            raise self._failure(exc, "delete", prefix) from None
        return len(keys)

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._client, key)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise self._failure(exc, "delete", key) from None

    # -- errors ----------------------------------------------------------------------------------

    def _failure(self, exc: BaseException, doing: str, key: str) -> MediaStoreError:
        """A MediaStoreError in plain words for ``exc``; its details (redacted) go to the log only."""
        text = str(exc)
        where = urlsplit(self.endpoint_url).netloc if self.endpoint_url else "AWS S3"
        log.warning(
            "object storage (%s, bucket %s): could not %s %s: %s: %s",
            where, self.bucket, doing, key, type(exc).__name__, redact(text),
        )  # fmt: skip
        verb = {"store": "store a file in", "read": "read a file from", "delete": "delete files from"}[doing]
        status = _STATUS.search(text)
        # obstore raises some errors as its own classes, some (from its writer) as plain OSErrors: read both.
        refused = isinstance(exc, PermissionDeniedError | UnauthenticatedError) or any(
            sign in text for sign in ("lacked the necessary privileges", "Unauthenticated", "not authenticated")
        )
        if refused or (status is not None and status[1] in ("401", "403")):
            return MediaStoreError(
                f"could not {verb} the media storage: it refused the credentials; check MEDIA_ACCESS_KEY_ID, "
                "MEDIA_SECRET_ACCESS_KEY and their permissions on the bucket of MEDIA_URL"
            )
        if "NoSuchBucket" in text:
            return MediaStoreError(f"could not {verb} the media storage: the bucket of MEDIA_URL does not exist")
        if any(sign in text for sign in ("error sending request", "kind: Connect", "dns error", "TimedOut")):
            how = "it did not answer in time" if "TimedOut" in text else "it could not be reached"
            return MediaStoreError(
                f"could not {verb} the media storage: {how}; check MEDIA_ENDPOINT_URL and the network"
            )
        answer = f"it answered HTTP {status[1]}" if status else "the request failed"
        return MediaStoreError(f"could not {verb} the media storage: {answer}")


class _LocalReadError(Exception):
    """A read of the local file failed: told apart from the store's errors, some of which are OSErrors too."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


async def _read(handle: BinaryIO) -> bytes:
    try:
        return await asyncio.to_thread(handle.read, READ_BYTES)
    except OSError as exc:
        raise _LocalReadError(exc) from exc
