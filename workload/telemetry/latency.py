"""Latency histograms: lossless percentiles (HdrHistogram) that merge across generator processes.

Each value is recorded in microseconds with 3 significant digits from 1 µs to `MAX_LATENCY_S`
(a longer value is recorded as that maximum), so p99.9 and the max are as measured, not bucketed
to Locust's two digits.  A histogram travels as text (`encode`: HdrHistogram's compressed,
base64 form) in a worker's report and in run.json, and `merge` adds one to another, exactly.

Summaries are read in one pass over the histogram's non-zero counts (`scan`): the `hdrh`
package's own `get_value_at_percentile`/`get_mean_value` walk every one of its ~23,000 counts in
Python per figure (~115 ms for one summary), and a summary is taken on the gevent loop (the web
UI's live figures every 2 s, run.json at the end), where that time is loop lag for every request.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]  # the package ships no types

MAX_LATENCY_S = 3600.0  # an hour: longer than any timeout a run may set
SIGNIFICANT_DIGITS = 3
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9))
_HIGHEST_US = int(MAX_LATENCY_S * 1_000_000)


class Latency:
    """One latency distribution (e.g. response time from the intended start)."""

    def __init__(self, histogram: HdrHistogram | None = None):
        self.hist = histogram or HdrHistogram(1, _HIGHEST_US, SIGNIFICANT_DIGITS)

    def record(self, seconds: float) -> None:
        """What `hdrh`'s record_value does for one in-range value, in one call instead of six
        (it runs three times per open-model iteration, on the gevent loop)."""
        value = min(max(int(seconds * 1_000_000), 1), _HIGHEST_US)
        h = self.hist
        bucket = (value | h.sub_bucket_mask).bit_length() - h.unit_magnitude - h.sub_bucket_half_count_magnitude - 1
        sub = value >> (bucket + h.unit_magnitude)
        h.counts[((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count] += 1
        h.total_count += 1
        if value < h.min_value:
            h.min_value = value
        if value > h.max_value:
            h.max_value = value

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def merge(self, other: Latency) -> Latency:
        self.hist.add(other.hist)
        return self

    def encode(self) -> str:
        return self.hist.encode().decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Latency:
        return cls(HdrHistogram.decode(text.encode("ascii")))

    def summary(self) -> dict[str, Any]:
        """count, mean, p50/p90/p95/p99/p99.9 and max, in milliseconds (None without values)."""
        if not self.count:
            return {"count": 0, "mean": None, **{name: None for name, _ in PERCENTILES}, "max": None}
        values, mean = scan(self.hist, [q for _, q in PERCENTILES])
        figures = {name: _ms(values[q]) for name, q in PERCENTILES}
        return {"count": self.count, "mean": _ms(mean), **figures, "max": _ms(self.hist.get_max_value())}


def scan(hist: HdrHistogram, percentiles: list[float]) -> tuple[dict[float, int], float]:
    """({percentile: value}, mean) of a histogram: the values `hdrh`'s own get_value_at_percentile
    and get_mean_value give, from one pass over its non-zero counts."""
    size = min(hist.counts_len, hist.encoder.payload.counts_len)  # a decoded histogram may be shorter
    targets = sorted((hist.get_target_count_at_percentile(q), q) for q in set(percentiles))
    values: dict[float, int] = {}
    running = weighted = 0
    for index, count in enumerate(hist.counts[:size]):  # the slice copies in C
        if not count:
            continue
        running += count
        low, width = _bucket(hist, index)
        weighted += count * (low + (width >> 1))  # hdrh's "median equivalent value"
        while targets and running >= targets[0][0]:
            q = targets.pop(0)[1]
            values[q] = low + width - 1 if q else low  # highest (lowest at 0) equivalent value
    values.update((q, 0) for _, q in targets)  # never reached (an empty histogram): as hdrh says
    return values, weighted / max(running, 1)


def _bucket(hist: HdrHistogram, index: int) -> tuple[int, int]:
    """(lowest value, width) of the values counted at `index` (hdrh's get_value_from_index and
    the size of its equivalent value range, without their per-call overhead)."""
    bucket = (index >> hist.sub_bucket_half_count_magnitude) - 1
    sub = (index & (hist.sub_bucket_half_count - 1)) + hist.sub_bucket_half_count
    if bucket < 0:
        sub -= hist.sub_bucket_half_count
        bucket = 0
    shift = bucket + hist.unit_magnitude
    return sub << shift, 1 << shift


def merged(encoded: list[str]) -> Latency:
    """The sum of encoded histograms (a cluster's workers)."""
    total = Latency()
    for text in encoded:
        total.merge(Latency.decode(text))
    return total


def _ms(microseconds: float) -> float:
    return round(microseconds / 1000, 3)
