"""Reading a provider's "wait this long" hints, whatever form they come in."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

MAX_HINT_S = 3600.0


def retry_after_from_headers(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """``retry-after-ms`` (OpenAI), then ``Retry-After`` in seconds or as an HTTP date."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return _clamp(float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return _clamp(float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return _clamp(parsed.timestamp() - (now if now is not None else time.time()))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_after_from_google_details(details: Iterable[Any] | None) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` (e.g. "7s" or "0.5s") from an error's details list."""
    for detail in details or ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return _clamp(float(match.group(1)))
    return None


def _clamp(seconds: float) -> float | None:
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, MAX_HINT_S)
