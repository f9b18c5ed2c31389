"""Latency histograms: the one-pass summary gives exactly hdrh's own percentiles and mean."""

from __future__ import annotations

import random

import pytest

from workload.telemetry.latency import PERCENTILES, Latency, scan


def filled(values: list[float]) -> Latency:
    latency = Latency()
    for seconds in values:
        latency.record(seconds)
    return latency


@pytest.mark.parametrize("values", [
    [random.Random(1).expovariate(1 / 0.05) for _ in range(5000)],  # milliseconds, a long tail
    [random.Random(2).uniform(0, 900) for _ in range(3000)],  # up to 15 minutes: the wide buckets
    [0.0, 0.000001, 0.0005, 0.0005, 0.0005],  # the first bucket, repeated values
    [3600.0 * 2],  # beyond the maximum: recorded as it
])
def test_scan_matches_hdrh_for_fresh_and_decoded_histograms(values):
    latency = filled(values)
    for hist in (latency.hist, Latency.decode(latency.encode()).hist):
        quantiles = [q for _, q in PERCENTILES] + [0.0, 100.0]
        found, mean = scan(hist, quantiles)
        assert found == {q: hist.get_value_at_percentile(q) for q in quantiles}
        assert mean == pytest.approx(hist.get_mean_value(), rel=1e-12)


def test_summary_of_a_merged_histogram_is_hdrhs():
    a, b = filled([0.010] * 99), filled([2.0])
    summary = a.merge(b).summary()
    assert summary["count"] == 100
    assert summary["p50"] == pytest.approx(10.0, rel=0.001) and summary["p99_9"] == pytest.approx(2000, rel=0.001)
    assert summary["mean"] == pytest.approx((99 * 10 + 2000) / 100, rel=0.001)


def test_empty_summary_has_no_figures():
    assert Latency().summary()["p99"] is None


@pytest.mark.parametrize("seed", [3, 4])
def test_record_counts_exactly_where_hdrh_record_value_does(seed):
    rng = random.Random(seed)
    values = [rng.choice([rng.expovariate(1 / 0.02), rng.uniform(0, 4000), rng.random() / 1e5]) for _ in range(5000)]
    ours, theirs = filled(values), Latency()
    for seconds in values:
        theirs.hist.record_value(min(max(int(seconds * 1_000_000), 1), int(3600 * 1_000_000)))
    assert list(ours.hist.counts) == list(theirs.hist.counts)
    assert (ours.count, ours.hist.min_value, ours.hist.max_value) == (
        theirs.count, theirs.hist.min_value, theirs.hist.max_value)
