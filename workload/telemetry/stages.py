"""Stage meter: exact figures for each stage of a load shape, from Locust's cumulative stats.

Locust's "current" RPS and percentiles are averaged over a sliding 10-second window, which
smears short stages into each other.  The meter instead snapshots the cumulative totals
(requests, failures, response-time histogram, TCP connects) at the shape's ticks and takes
differences: a stage is measured from its second tick (the first is spent changing the user
count) to the tick that starts the next stage.  Duck-typed on Locust's `StatsEntry`, so it
does not import locust.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from workload.telemetry.connections import STATS


class _StepLike(Protocol):
    # read-only, so that frozen dataclasses (the engine's `Step`) match
    @property
    def end_s(self) -> float: ...
    @property
    def users(self) -> int: ...
    @property
    def spawn_rate(self) -> float: ...


@dataclass(frozen=True)
class Snapshot:
    """Cumulative totals at one moment."""

    at: float
    requests: int
    failures: int
    response_ms: float
    histogram: dict[int, int]
    connects: int | None  # None where this process sends no requests (a master)


def snapshot(total: Any, connects: int | None, at: float) -> Snapshot:
    return Snapshot(at, total.num_requests, total.num_failures, float(total.total_response_time),
                    dict(total.response_times), connects)


def percentile(histogram: Mapping[int, int], q: float) -> int | None:
    """The `q` quantile (0..1) of a {rounded ms: count} histogram, or None when it is empty."""
    count = sum(histogram.values())
    if count <= 0:
        return None
    rank, seen = q * count, 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def stage_figures(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """What happened between two snapshots: request rate, failures, latency, new connections."""
    span = max(after.at - before.at, 1e-9)
    requests = max(after.requests - before.requests, 0)
    failures = max(after.failures - before.failures, 0)
    histogram = {ms: n - before.histogram.get(ms, 0) for ms, n in after.histogram.items()
                 if n > before.histogram.get(ms, 0)}
    connects = max(after.connects - before.connects, 0) if after.connects is not None and \
        before.connects is not None else None
    return {
        "measured_s": round(span, 3), "requests": requests, "failures": failures,
        "rps": round(requests / span, 2), "failure_ratio": round(failures / requests, 4) if requests else None,
        "avg_ms": round((after.response_ms - before.response_ms) / requests, 2) if requests else None,
        "p50_ms": percentile(histogram, 0.5), "p95_ms": percentile(histogram, 0.95),
        "p99_ms": percentile(histogram, 0.99), "tcp_connects": connects,
        "connects_per_s": round(connects / span, 2) if connects is not None else None,
    }


@dataclass
class _Open:
    index: int
    started_at: float
    users_reached: int
    baseline: Snapshot | None = None


class StageMeter:
    """Feeds on the shape's ticks; `results` holds one dict per finished stage (run.json `stages`)."""

    def __init__(self, steps: Sequence[_StepLike], clock: Callable[[], float] = time.time,
                 connects: Callable[[], int | None] = lambda: STATS.tcp_connects) -> None:
        self.steps = steps
        self.results: list[dict[str, Any]] = []
        self._clock, self._connects = clock, connects
        self._open: _Open | None = None

    def reset(self) -> None:
        self.results.clear()  # in place: the run's recorder holds this very list
        self._open = None

    def observe(self, index: int | None, total: Any, users: int) -> dict[str, Any] | None:
        """One tick in stage `index` (None: the shape has ended); the stage that just ended, if any."""
        now, current = self._clock(), self._open
        if current is not None and current.index == index:
            current.users_reached = max(current.users_reached, users)
            if current.baseline is None:
                current.baseline = snapshot(total, self._connects(), now)
            return None
        closed = self._close(current, total, users, now) if current is not None else None
        self._open = _Open(index, now, users) if index is not None else None
        return closed

    def _close(self, stage: _Open, total: Any, users: int, now: float) -> dict[str, Any]:
        step = self.steps[stage.index]
        result: dict[str, Any] = {
            "stage": stage.index, "users": step.users, "spawn_rate": round(step.spawn_rate, 3),
            "users_reached": max(stage.users_reached, users),
            "started_at": round(stage.started_at, 3), "ended_at": round(now, 3),
            "measured_from": round(stage.baseline.at, 3) if stage.baseline else None,
        }
        if stage.baseline is not None:
            result.update(stage_figures(stage.baseline, snapshot(total, self._connects(), now)))
        self.results.append(result)
        return result
