"""Latency histograms: the one-pass summary gives exactly hdrh's own percentiles and mean."""

from __future__ import annotations

import random

import pytest

from workload.telemetry.latency import PERCENTILES, Latency, merged, scan


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


def _bomb(inflated_bytes: int) -> str:
    """A text shaped like an encoded histogram of ours whose payload inflates to `inflated_bytes`."""
    import base64
    import struct
    import zlib

    header = struct.pack(">IIIIQQd", 0x1C849303, inflated_bytes, 0, 3, 1, 3600 * 10**6, 1.0)
    payload = zlib.compress(header + b"\0" * inflated_bytes, 9)
    return base64.b64encode(struct.pack(">II", 0x1C849302, len(payload)) + payload).decode()


def test_decoding_a_peers_text_allocates_no_more_than_one_histogram_of_ours():
    import tracemalloc

    from hdrh.histogram import HdrHistogram

    bomb = _bomb(200_000_000)  # 260 KB of text, 200 MB inflated
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="its payload is larger than any of ours"):
            Latency.decode(bomb)
        assert tracemalloc.get_traced_memory()[1] < 20_000_000
    finally:
        tracemalloc.stop()
    huge = HdrHistogram(1, 2**62, 5)  # ~70 MB of counts once decoded
    huge.record_value(5)
    with pytest.raises(ValueError, match="other settings .lowest 1, highest 4611686018427387904, 5 digits"):
        Latency.decode(huge.encode().decode())


@pytest.mark.parametrize("text", ["", "!!", None, 5, "A" * 3_000_000, "eHh4eHh4eHh4eHh4eHh4eHh4"])
def test_text_that_is_not_a_histogram_is_refused(text):
    with pytest.raises(ValueError, match="not a histogram"):
        Latency.decode(text)


def test_a_damaged_histogram_is_left_out_of_a_merge_not_the_merge_out_of_the_run():
    good = filled([0.01] * 10).encode()
    assert merged([good, "damaged", good]).count == 20
