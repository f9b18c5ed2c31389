"""Generator health: is the load generator itself, not the target, the bottleneck?

A Python load generator is one gevent loop on one core.  When that loop is late (CPU-bound,
or starved by other processes) every request is sent late and every latency includes the
generator's own delay, so the figures describe the generator, not the target.  Like jHiccup,
a greenlet (`workload.engine.hiccup`) sleeps a short, fixed interval over and over; how much
later than asked it wakes up is the **loop lag**, recorded here in an HDR histogram (lossless
percentiles, mergeable across processes).  The process's CPU time (user + system, `os.times`)
is read about once a second.

In a distributed run every worker measures itself and sends `report()` to the master, which
writes `merged_section` of them: the loop lag of all workers in one histogram, and the CPU of
the busiest worker (each process has one core to use), so one saturated worker flags the run.

**Saturated** (run.json `generator.saturated`), the rule: the generator was the bottleneck when

* its loop lag p99 reached `DEFAULT_SATURATED_LAG_MS` (the loop could not keep even a 10 ms
  sleep within 25 ms for 1% of the time: latencies of that size are the generator's), or
* its CPU use over the run reached `DEFAULT_SATURATED_CPU_PERCENT` of one core (a gevent
  generator cannot use more than one core; at 90% it has no headroom left for the schedule).

This module is locust-free and gevent-free: the engine feeds it, the recorder reads it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]  # the package ships no types

from workload.telemetry import peer
from workload.telemetry.latency import decode_checked, scan

DEFAULT_HICCUP_INTERVAL_MS = 10.0
DEFAULT_SATURATED_LAG_MS = 25.0
DEFAULT_SATURATED_CPU_PERCENT = 90.0
CPU_SAMPLE_INTERVAL_S = 1.0
# Lag is recorded in microseconds, up to a minute, with 3 significant digits.
LAG_UNIT_PER_MS = 1000
MAX_LAG_US = 60_000_000
SIGNIFICANT_DIGITS = 3


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _new_histogram() -> HdrHistogram:
    return HdrHistogram(1, MAX_LAG_US, SIGNIFICANT_DIGITS)


@dataclass
class GeneratorHealth:
    """Loop lag and CPU of one generator process over one run."""

    interval_ms: float = DEFAULT_HICCUP_INTERVAL_MS
    lag: HdrHistogram = field(default_factory=_new_histogram)
    cpu_samples: list[float] = field(default_factory=list)  # % of one core, per ~second
    running: bool = False
    _wall0: float = 0.0
    _cpu0: float = 0.0
    _span: tuple[float, float] | None = None  # (wall s, cpu s) once stopped
    _last: tuple[float, float] = (0.0, 0.0)  # the latest CPU sample's (wall, cpu)

    def start(self) -> None:
        self.running = True
        self._wall0, self._cpu0 = time.monotonic(), _cpu_seconds()
        self._last = (self._wall0, self._cpu0)

    def stop(self) -> None:
        """The load stopped: freeze the CPU figure (what comes after is no load).  Idempotent."""
        if self.running:
            self.running = False
            self._span = (time.monotonic() - self._wall0, _cpu_seconds() - self._cpu0)

    def record_lag(self, lag_ms: float) -> None:
        """One wake-up `lag_ms` later than asked (negative: the loop clock was stale, so 0)."""
        self.lag.record_value(min(max(1, round(lag_ms * LAG_UNIT_PER_MS)), MAX_LAG_US))

    def sample_cpu(self) -> None:
        """Adds one CPU sample, if a second has passed since the last one."""
        now, cpu = time.monotonic(), _cpu_seconds()
        wall0, cpu0 = self._last
        if now - wall0 >= CPU_SAMPLE_INTERVAL_S:
            self.cpu_samples.append(round(100.0 * (cpu - cpu0) / (now - wall0), 1))
            self._last = (now, cpu)

    def cpu_percent(self) -> float | None:
        if self._span is None and not self.running:
            return None  # never started: no run to measure
        wall, cpu = self._span if self._span is not None else (
            time.monotonic() - self._wall0, _cpu_seconds() - self._cpu0)
        return round(100.0 * cpu / wall, 1) if wall > 0 else None

    def summary(self) -> dict[str, Any]:
        """run.json's `generator` section."""
        return health_section(self.lag, self.cpu_percent(), self.cpu_samples, self.interval_ms)

    def report(self) -> dict[str, Any]:
        """What a worker sends its master: the summary, and the lag histogram to merge."""
        return {**self.summary(), "lag_histogram": self.lag.encode().decode("ascii")}


def merged_section(reports: list[Any]) -> dict[str, Any] | None:
    """run.json's `generator` for a cluster, from its workers' `report()`s (None without any).
    A report that does not decode (a worker of another version, a damaged message) still
    counts its CPU; its lag is left out, and the section says how many lag reports it has."""
    parts = [r for r in reports if isinstance(r, dict)]
    if not parts:
        return None
    lag, decoded = _new_histogram(), 0
    for part in parts:
        try:
            lag.add(decode_checked(part.get("lag_histogram"), (1, MAX_LAG_US, SIGNIFICANT_DIGITS)))
            decoded += 1
        except ValueError:  # not a lag histogram of ours: its CPU still counts
            continue
    cpus, peaks = _figures(parts, "cpu_percent"), _figures(parts, "cpu_percent_max")
    intervals = _figures(parts, "loop_lag_interval_ms")
    interval = intervals[0] if intervals else DEFAULT_HICCUP_INTERVAL_MS
    section = health_section(lag, max(cpus) if cpus else None, peaks, interval)
    return {**section, "processes": len(parts), "lag_reports": decoded}


def _figures(parts: list[dict[str, Any]], key: str) -> list[float]:
    """The numbers the reports give for `key` that are numbers (a peer may send anything)."""
    return [v for v in (peer.number(p.get(key)) for p in parts) if v is not None]


def _lag_ms(histogram: HdrHistogram, percentile: float) -> float:
    values, _ = scan(histogram, [percentile])  # one pass in C-sized steps, not hdrh's per-count walk
    return round(values[percentile] / LAG_UNIT_PER_MS, 3)


def health_section(lag: HdrHistogram, cpu_percent: float | None, cpu_samples: list[float],
                   interval_ms: float) -> dict[str, Any]:
    """The `generator` section from a lag histogram and the CPU figures (also for merged ones)."""
    samples = lag.get_total_count()
    p99 = _lag_ms(lag, 99) if samples else None
    section: dict[str, Any] = {
        "loop_lag_samples": samples,
        "loop_lag_interval_ms": interval_ms,
        "loop_lag_p50_ms": _lag_ms(lag, 50) if samples else None,
        "loop_lag_p99_ms": p99,
        "loop_lag_max_ms": round(lag.get_max_value() / LAG_UNIT_PER_MS, 3) if samples else None,
        "cpu_percent": cpu_percent,
        "cpu_percent_max": max(cpu_samples) if cpu_samples else None,
        "processes": 1,
    }
    reasons = saturation_reasons(p99, cpu_percent)
    section["saturated"] = bool(reasons)
    section["saturated_because"] = reasons
    return section


def saturation_reasons(lag_p99_ms: float | None, cpu_percent: float | None,
                       lag_limit_ms: float = DEFAULT_SATURATED_LAG_MS,
                       cpu_limit: float = DEFAULT_SATURATED_CPU_PERCENT) -> list[str]:
    """Why the generator was the bottleneck (empty: it was not); the rule in the docstring."""
    reasons = []
    if lag_p99_ms is not None and lag_p99_ms >= lag_limit_ms:
        reasons.append(f"event-loop lag p99 {lag_p99_ms:g} ms >= {lag_limit_ms:g} ms")
    if cpu_percent is not None and cpu_percent >= cpu_limit:
        reasons.append(f"CPU {cpu_percent:g}% of one core >= {cpu_limit:g}%")
    return reasons
