"""Peer figures: numbers read from another process's report (a worker's telemetry message).

A worker that holds the cluster key is still only a peer: what it sends is data to check, not
figures to trust.  A count or a measurement counts only when it is a real, finite, non-negative
number (never a bool, NaN, infinity or a string); anything else is treated as not reported.
"""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> float | None:
    """`value` as a finite, non-negative float, or None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    return float(value) if ok else None


def count(value: Any) -> int:
    """`value` as a non-negative whole count, or 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
