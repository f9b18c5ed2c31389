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

import base64
import binascii
import logging
import struct
import zlib
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]  # the package ships no types

log = logging.getLogger("workload")

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
        """A histogram of ours from its text (a worker's report, a run.json); ValueError if it is not."""
        return cls(decode_checked(text, (1, _HIGHEST_US, SIGNIFICANT_DIGITS)))

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
    """The sum of encoded histograms (a cluster's workers); one that does not decode is left out
    (logged), so one worker's damaged report cannot cost the run its figures."""
    total = Latency()
    for text in encoded:
        try:
            total.merge(Latency.decode(text))
        except ValueError as exc:
            log.warning("workload: a latency histogram was left out: %s", exc)
    return total


MAX_ENCODED_CHARS = 2_000_000  # ours encode to a few KB (varint counts, zlib); a full one stays far below
_PAYLOAD_HEADER = struct.Struct(">IIIIQQd")  # hdrh's PayloadHeader: cookie, length, offset, digits, low, high, ratio


def decode_checked(text: Any, settings: tuple[int, int, int]) -> HdrHistogram:
    """`HdrHistogram.decode` of text from a peer or a file, refused (ValueError) unless it is
    small and has our `settings` (lowest, highest, significant digits).  hdrh itself inflates
    the payload whole and sizes the counts from the header: a crafted text (a zlib bomb, a
    header asking for 2^63 at 5 digits) would make the master allocate gigabytes."""
    if not isinstance(text, str) or not text or len(text) > MAX_ENCODED_CHARS:
        raise ValueError("not a histogram: not a short enough text")
    try:
        raw = base64.b64decode(text, validate=True)
        inflater = zlib.decompressobj()
        body = inflater.decompress(raw[8:], _PAYLOAD_HEADER.size)  # the header only: no bomb inflates
        _, _, _, digits, low, high, _ = _PAYLOAD_HEADER.unpack(body[:_PAYLOAD_HEADER.size])
    except (binascii.Error, zlib.error, struct.error) as exc:
        raise ValueError(f"not a histogram: {exc}") from exc
    if (low, high, digits) != settings:
        raise ValueError(f"a histogram of other settings (lowest {low}, highest {high}, {digits} digits)")
    counts_bytes = _max_counts_bytes(settings)
    inflater = zlib.decompressobj()
    if len(inflater.decompress(raw[8:], counts_bytes + 1)) > counts_bytes or inflater.unconsumed_tail:
        raise ValueError("not a histogram: its payload is larger than any of ours")
    try:
        return HdrHistogram.decode(text.encode("ascii"))
    except Exception as exc:  # hdrh's own (cookie, length) and ctypes errors: any means not ours
        raise ValueError(f"not a histogram: {exc}") from exc


_COUNTS_BYTES: dict[tuple[int, int, int], int] = {}


def _max_counts_bytes(settings: tuple[int, int, int]) -> int:
    """The largest payload a histogram of `settings` inflates to: its header and every count
    as a 9-byte varint (hdrh's V2 encoding)."""
    if settings not in _COUNTS_BYTES:
        _COUNTS_BYTES[settings] = _PAYLOAD_HEADER.size + 9 * HdrHistogram(*settings).counts_len
    return _COUNTS_BYTES[settings]


def _ms(microseconds: float) -> float:
    return round(microseconds / 1000, 3)
