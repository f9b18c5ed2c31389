"""Latency histograms: lossless percentiles (HdrHistogram) that merge across generator processes.

Each value is recorded in microseconds with 3 significant digits from 1 µs to `MAX_LATENCY_S`
(a longer value is recorded as that maximum), so p99.9 and the max are as measured, not bucketed
to Locust's two digits.  A histogram travels as text (`encode`: HdrHistogram's compressed,
base64 form) in a worker's report and in run.json, and `merge` adds one to another, exactly.
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
        self.hist.record_value(min(max(int(seconds * 1_000_000), 1), _HIGHEST_US))

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
        figures = {name: _ms(self.hist.get_value_at_percentile(q)) for name, q in PERCENTILES}
        return {"count": self.count, "mean": _ms(self.hist.get_mean_value()), **figures,
                "max": _ms(self.hist.get_max_value())}


def merged(encoded: list[str]) -> Latency:
    """The sum of encoded histograms (a cluster's workers)."""
    total = Latency()
    for text in encoded:
        total.merge(Latency.decode(text))
    return total


def _ms(microseconds: float) -> float:
    return round(microseconds / 1000, 3)
