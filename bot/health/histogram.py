"""Latency histograms over fixed log-spaced bins, so percentiles of any window come from 5-minute aggregates.

Bin 0 holds calls under 1 ms; bin ``i >= 1`` holds ``[GROWTH**(i-1), GROWTH**i)`` ms, up to ``MAX_BIN``
(about 2 hours) which takes everything slower. With ``GROWTH = 2**(1/8)`` a bin is 9 % wide, and a
percentile read back as the bin's geometric middle is within 4.5 % of the exact value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

GROWTH = 2 ** (1 / 8)
MAX_BIN = 186  # GROWTH**186 ms is a little over 2 hours
_LOG_GROWTH = math.log(GROWTH)

Histogram = dict[int, int]  # bin -> count


def bin_of(latency_ms: float) -> int:
    if latency_ms < 1.0:
        return 0
    return min(int(math.log(latency_ms) / _LOG_GROWTH) + 1, MAX_BIN)


def bin_value(index: int) -> float:
    """The representative latency of a bin: its geometric middle (0.5 ms for bin 0)."""
    if index <= 0:
        return 0.5
    return GROWTH ** (index - 0.5)


def add(histogram: Histogram, latency_ms: float, count: int = 1) -> None:
    index = bin_of(latency_ms)
    histogram[index] = histogram.get(index, 0) + count


def merge(into: Histogram, other: Mapping[int, int]) -> Histogram:
    for index, count in other.items():
        into[index] = into.get(index, 0) + count
    return into


def of(latencies: Iterable[float]) -> Histogram:
    histogram: Histogram = {}
    for latency in latencies:
        add(histogram, latency)
    return histogram


def percentile(histogram: Mapping[int, int], fraction: float) -> float | None:
    """The latency below which ``fraction`` of the calls fall (nearest rank), or None for no calls."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(math.ceil(fraction * total), 1)
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bin_value(index)
    return bin_value(max(histogram))
