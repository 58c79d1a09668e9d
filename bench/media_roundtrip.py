"""A media round trip through object storage (MEDIA_URL) against the same through local disk (MEDIA_DIR alone).

One round trip is what a picture or a clip goes through between the worker that makes it and the one that
publishes it: **write** (``MediaStore.write_bytes`` for a picture; for a clip, ``MediaStore.commit`` of a temp
file already on disk, as the video handler does after a download), then **read back** from a fresh
``MediaStore`` (``local_file`` of the row's reference, then every byte read and checked against the stored
sha256). Sizes: a ~1 MB PNG (random pixels, which barely compress) and a 20 MiB MP4.

s3:    MEDIA_URL pointing at moto's S3 server on 127.0.0.1 (tests/support/s3.py, its own process, started once
       for the bench): write = the local atomic write + the upload (one PUT, or a multipart upload of 5 MiB
       parts); read = a fresh store with an empty MEDIA_DIR (another host) downloading into its cache.
local: the baseline, MEDIA_DIR alone: write = the local atomic write; read = a fresh store on the same MEDIA_DIR
       (the same host), whose ``local_file`` is the path itself.
Each mode runs in a fresh process: one uncounted round trip of each size, then ROUNDS of each; three processes
of each mode, interleaved. Reported: the median of all round trips of each mode and size, the s3/local ratio,
and each process's peak RSS. Loopback and an in-memory server make this the cost of our path (hashing, fsync,
SigV4, HTTP, the cache's rename), not of a network: a real store adds its latency and bandwidth on top.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import emit, machine, peak_rss_mib, ratio, run_mode

MiB = 1024 * 1024
RUNS = 3
ROUNDS = 5
QUICK_RUNS, QUICK_ROUNDS = 1, 2
CLIP_BYTES = 20 * MiB
PICTURE_SIDE = 600  # random RGB pixels: a PNG of about 1.04 MB
MODES = ("local", "s3")
PREFIX = "bench"


def _picture() -> bytes:
    from PIL import Image

    rng = random.Random(PICTURE_SIDE)
    pixels = bytes(rng.getrandbits(8) for _ in range(PICTURE_SIDE * PICTURE_SIDE * 3))
    buffer = io.BytesIO()
    Image.frombytes("RGB", (PICTURE_SIDE, PICTURE_SIDE), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_clip(path: Path) -> None:
    from tests.fakes.providers_core import padded_mp4_chunks, tiny_mp4

    with path.open("wb") as handle:
        for chunk in padded_mp4_chunks(tiny_mp4(), CLIP_BYTES):
            handle.write(chunk)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


# --- the measured process ------------------------------------------------------------------------


async def _measure(mode: str, bucket: str | None, rounds: int) -> dict[str, Any]:
    from bot.media.store import MediaStore, StoredFile
    from bot.settings import load_settings
    from tests.support.s3 import KEY_ID_VARIABLE, SECRET_VARIABLE, URL_VARIABLE

    picture = _picture()
    with tempfile.TemporaryDirectory(prefix="storybot-bench-") as tmp:
        folder = Path(tmp)

        def store(root: Path) -> MediaStore:
            if mode == "local":
                return MediaStore.from_settings(load_settings(media_dir=root))
            settings = load_settings(
                media_dir=root,
                media_url=f"s3://{bucket}/{PREFIX}",
                media_endpoint_url=os.environ[URL_VARIABLE],
                media_access_key_id=os.environ[KEY_ID_VARIABLE],
                media_secret_access_key=os.environ[SECRET_VARIABLE],
            )
            return MediaStore.from_settings(settings)

        async def round_trip(kind: str, n: int) -> tuple[float, float]:
            writer_root = folder / f"writer-{n}"
            writer, story_id = store(writer_root), uuid.uuid4().hex
            stored: StoredFile
            if kind == "picture":
                started = time.perf_counter()
                stored = await writer.write_bytes(story_id, picture, "png")
            else:
                final = writer.path_for(story_id, "mp4")
                temp = writer.temp_path(final)
                await asyncio.to_thread(_write_clip, temp)  # the download the handler made: not counted
                started = time.perf_counter()
                stored = await writer.commit(temp, final)
            wrote = time.perf_counter() - started
            # A fresh store: another host (an empty MEDIA_DIR) with object storage, this host without it.
            reader = store(folder / f"reader-{n}" if mode == "s3" else writer_root)
            started = time.perf_counter()
            path = await reader.local_file(stored.ref)
            if path is None or await asyncio.to_thread(_sha256, path) != stored.sha256:
                raise SystemExit(f"{kind} {stored.ref} did not come back whole")
            read = time.perf_counter() - started
            return wrote, read

        samples: dict[str, dict[str, list[float]]] = {}
        sizes = {"picture": len(picture), "clip": CLIP_BYTES}
        for kind in ("picture", "clip"):
            await round_trip(kind, -1)  # uncounted: connections, thread pools, lazy imports
            write_s, read_s = [], []
            for n in range(rounds):
                wrote, read = await round_trip(kind, n)
                write_s.append(wrote)
                read_s.append(read)
            samples[kind] = {"write_s": write_s, "read_s": read_s}
    return {"samples": samples, "sizes": sizes, "peak_rss_mib": peak_rss_mib()}


def _child(mode: str, bucket: str | None, rounds: int) -> None:
    emit(asyncio.run(_measure(mode, bucket, rounds)))


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(argv)
    if args.mode:
        _child(args.mode, args.bucket, args.rounds)
        return
    from tests.support.s3 import KEY_ID_VARIABLE, SECRET_VARIABLE, URL_VARIABLE, empty_bucket, launch

    runs, rounds = (QUICK_RUNS, QUICK_ROUNDS) if args.quick else (args.runs, ROUNDS)
    started = time.perf_counter()
    server = launch()
    took = time.perf_counter() - started
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        # The children inherit the server's address and key from the environment, never from argv.
        os.environ.update({
            URL_VARIABLE: server.url, KEY_ID_VARIABLE: server.access_key_id, SECRET_VARIABLE: server.secret_access_key
        })  # fmt: skip
        with empty_bucket() as bucket:
            for _ in range(runs):  # interleaved, so drift on a shared machine hits both modes alike
                for mode in MODES:
                    extra = ("--bucket", bucket.name, "--rounds", str(rounds))
                    results[mode].append(run_mode("bench.media_roundtrip", mode, *extra))
    finally:
        server.stop()
        for name in (URL_VARIABLE, KEY_ID_VARIABLE, SECRET_VARIABLE):
            os.environ.pop(name, None)

    def med(mode: str, kind: str, key: str) -> float:
        return statistics.median(value for run in results[mode] for value in run["samples"][kind][key])

    sizes = results["local"][0]["sizes"]
    print(f"media round trip: write, then read back from a fresh MediaStore ({machine()})")
    print(f"  medians of {runs * rounds} round trips per mode and size ({runs} processes x {rounds}); s3 = moto's S3 "
          f"server on 127.0.0.1 in its own process (started in {took:.1f} s), local = MEDIA_DIR alone")  # fmt: skip
    print(f"  {'':<22}{'write':>10}{'read back':>12}{'round trip':>12}{'MiB/s':>8}")
    for kind, label in (
        ("picture", f"picture {sizes['picture'] / 1e6:.2f} MB"),
        ("clip", f"clip {CLIP_BYTES // MiB} MiB"),
    ):
        totals = {}
        for mode in MODES:
            write, read = med(mode, kind, "write_s"), med(mode, kind, "read_s")
            totals[mode] = statistics.median(
                w + r for run in results[mode] for w, r in zip(run["samples"][kind]["write_s"],
                                                               run["samples"][kind]["read_s"], strict=True)
            )  # fmt: skip
            rate = sizes[kind] / MiB / totals[mode]
            print(f"  {label + ', ' + mode:<22}{write * 1000:8.1f} ms{read * 1000:9.1f} ms{totals[mode] * 1000:9.1f} ms"
                  f"{rate:8.0f}")  # fmt: skip
        print(f"  {label}: s3 / local round trip  {ratio(totals['s3'], totals['local'])}")
    for mode in MODES:
        peak = statistics.median(run["peak_rss_mib"] for run in results[mode])
        print(f"  process peak RSS, {mode:<5} {peak:7.1f} MiB")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench media_roundtrip")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} round trips of each size, one process")
    parser.add_argument("--runs", type=int, default=RUNS, help="processes per mode, interleaved")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    main(sys.argv[1:])
