"""Latency histograms: bins, merging, and percentiles on known data."""

from __future__ import annotations

import math
import random

import pytest

from bot.health import histogram
from bot.health.histogram import GROWTH, MAX_BIN, bin_of, bin_value, percentile
from storage.health import histogram_from_json, histogram_to_json

HALF_BIN = math.sqrt(GROWTH) - 1  # a bin's middle is at most this far (relative) from any value in it


def exact(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


def test_bins_cover_every_latency_in_order() -> None:
    assert bin_of(0.0) == bin_of(0.99) == 0
    assert bin_of(1.0) == 1
    assert bin_of(10**9) == MAX_BIN
    values = [0.5, 1, 1.5, 2, 10, 100, 999, 1000, 30_000, 600_000]
    assert [bin_of(v) for v in values] == sorted(bin_of(v) for v in values)
    for value in (1.0, 3.7, 42.0, 850.0, 12_345.0, 299_999.0):
        assert abs(bin_value(bin_of(value)) - value) / value <= HALF_BIN + 1e-9


@pytest.mark.parametrize(
    "values",
    [
        [float(v) for v in range(1, 1001)],  # 1..1000 ms, uniform
        [random.Random(5).lognormvariate(7, 1) for _ in range(5000)],  # a long tail, around 1 s
        [120.0] * 90 + [4000.0] * 9 + [45_000.0],  # mostly fast, a few slow, one very slow
    ],
    ids=["uniform", "lognormal", "bimodal"],
)
def test_percentiles_match_the_exact_ones_within_half_a_bin(values: list[float]) -> None:
    counts = histogram.of(values)
    assert sum(counts.values()) == len(values)
    for fraction in (0.5, 0.95, 0.99):
        got, want = percentile(counts, fraction), exact(values, fraction)
        assert got is not None
        assert abs(got - want) / want <= HALF_BIN + 1e-9, (fraction, got, want)


def test_known_values_land_where_expected() -> None:
    counts = histogram.of([120.0] * 90 + [4000.0] * 9 + [45_000.0])
    assert percentile(counts, 0.5) == pytest.approx(120, rel=HALF_BIN)
    assert percentile(counts, 0.95) == pytest.approx(4000, rel=HALF_BIN)
    assert percentile(counts, 0.99) == pytest.approx(4000, rel=HALF_BIN)
    assert percentile(counts, 1.0) == pytest.approx(45_000, rel=HALF_BIN)


def test_empty_histogram_has_no_percentile() -> None:
    assert percentile({}, 0.5) is None


def test_merging_two_halves_equals_the_whole_and_survives_json() -> None:
    values = [random.Random(1).uniform(1, 5000) for _ in range(400)]
    whole = histogram.of(values)
    merged = histogram.merge(histogram.of(values[:150]), histogram.of(values[150:]))
    assert merged == whole
    assert histogram_from_json(histogram_to_json(whole)) == whole
