"""Open-model meter: what an arrival-rate run offered, what it achieved, and its two latencies.

Per generator process, `ArrivalMeter` counts the schedule (scheduled, started, dropped because
`max_in_flight` iterations were running, late starts and their lag, iterations completed,
failed or still running when the run's grace time ended) and keeps three lossless histograms
(`workload.telemetry.latency`): the response time from each iteration's *intended* start, its
service time from the actual send, and the scheduler's lag.  `report` is what a worker sends
to the master; `section` combines one or more reports into run.json's `arrival` section.

`Seconds` keeps the same per second of the schedule (run.json `arrival.series`): starts by the
second they were made in, ends by the second they ended in, with that second's response-time
p50/p99/max from its exact values (kept only while the second is the current one), so a stall
shows where it happened, not only in the whole run's tail.
Locust-free: the engine (`workload.engine.arrival`) feeds it.
"""

from __future__ import annotations

import time
from typing import Any

from workload.telemetry import peer
from workload.telemetry.latency import Latency, merged

COUNTS = ("scheduled", "started", "dropped", "late", "completed", "failed", "unfinished", "missed",
          "identities", "peak_in_flight")
_SUMMED = COUNTS[:-1]  # peak_in_flight: the largest of the processes', not their sum
SECOND_COUNTS = ("scheduled", "started", "dropped", "late", "completed", "failed")
SECOND_FIGURES = ("response_p50_ms", "response_p99_ms", "response_max_ms")


class Seconds:
    """Per second of one process's schedule: its counts, and the response times ended in it."""

    def __init__(self) -> None:
        self.t0: float | None = None  # monotonic: second 0 starts here
        self.rows: dict[int, dict[str, Any]] = {}
        self._current: int | None = None  # the second whose response times are still being collected
        self._values: list[float] = []

    def count(self, key: str) -> None:
        self._row(self._second())[key] += 1

    def ended(self, response_s: float, failed: bool) -> None:
        second = self._second()
        if second != self._current:
            self._close()
            self._current = second
        self._values.append(response_s)
        row = self._row(second)
        row["completed"] += 1
        row["failed"] += failed

    def series(self) -> list[dict[str, Any]]:
        self._close()
        return [self.rows[t] for t in sorted(self.rows)]

    def _second(self) -> int:
        return max(int(time.monotonic() - self.t0), 0) if self.t0 is not None else 0

    def _row(self, second: int) -> dict[str, Any]:
        if second not in self.rows:
            self.rows[second] = {"t": second, **dict.fromkeys(SECOND_COUNTS, 0), **dict.fromkeys(SECOND_FIGURES)}
        return self.rows[second]

    def _close(self) -> None:
        """The current second's percentiles (nearest rank) from its values, added to what it has."""
        if self._current is None or not self._values:
            return
        values = sorted(self._values)
        row = self.rows[self._current]
        figures = {"response_p50_ms": _rank(values, 50), "response_p99_ms": _rank(values, 99),
                   "response_max_ms": values[-1]}
        for key, seconds in figures.items():  # a second closed twice (unfinished ones at the end) keeps its worst
            row[key] = max(row[key] or 0.0, round(seconds * 1000, 3))
        self._values = []


def _rank(ordered: list[float], percent: int) -> float:
    """The nearest-rank percentile of sorted values: the ceil(n * percent / 100)-th smallest."""
    return ordered[-(-len(ordered) * percent // 100) - 1]


class ArrivalMeter:
    """One process's open-model figures for the current run."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        self.response = Latency()
        self.service = Latency()
        self.lag = Latency()
        self.active = False  # an open-model run has started in this process
        self.in_flight = 0
        self.t0: float | None = None  # monotonic: this process's schedule began (`begin`)
        self.span_s: float | None = None  # how long it ran (set when the run stops)
        self.seconds = Seconds()

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]  # the same fresh state as a new meter

    def begin(self, t0: float) -> None:
        """This process's schedule starts at `t0` (monotonic)."""
        self.active, self.t0, self.seconds.t0 = True, t0, t0

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def dropped(self) -> None:
        self.counts["dropped"] += 1
        self.seconds.count("dropped")

    def scheduled(self, lag_s: float) -> None:
        self.counts["scheduled"] += 1
        self.seconds.count("scheduled")
        self.lag.record(lag_s)

    def started(self, late: bool) -> None:
        self.counts["started"] += 1
        self.seconds.count("started")
        if late:
            self.counts["late"] += 1
            self.seconds.count("late")
        self.in_flight += 1
        self.counts["peak_in_flight"] = max(self.counts["peak_in_flight"], self.in_flight)

    def finished(self, response_s: float, service_s: float, failed: bool, unfinished: bool = False) -> None:
        """One iteration's latencies; failed and unfinished ones count at their elapsed time."""
        self.in_flight -= 1
        self.counts["unfinished" if unfinished else "completed"] += 1
        self.counts["failed"] += failed
        self.response.record(response_s)
        self.service.record(service_s)
        self.seconds.ended(response_s, failed)

    def _span(self, now: float | None) -> float | None:
        """How long this process's schedule ran (until `now` while it still runs; None if unknown)."""
        if self.span_s is not None:
            return self.span_s
        return max(now - self.t0, 0.0) if self.t0 is not None and now is not None else None

    def progress(self, now: float) -> dict[str, Any] | None:
        """The counts a progress line needs, without encoding any histogram (it runs every
        second, on the loop); the same keys as `report`'s."""
        if not self.active:
            return None
        return {"scheduled": self.counts["scheduled"], "in_flight": self.in_flight, "span_s": self._span(now)}

    def report(self, now: float | None = None, series: bool = True) -> dict[str, Any] | None:
        """This process's figures as plain data (None when no open-model run happened here);
        `span_s` is how long its schedule has run (until `now` while it still runs); `series`
        False leaves the per-second rows out (a worker's periodic reports: only its last has them)."""
        if not self.active:
            return None
        span = self._span(now)
        return {**self.counts, "in_flight": self.in_flight, "span_s": span, "histograms": {
            "response": self.response.encode(), "service": self.service.encode(), "lag": self.lag.encode()},
            **({"series": self.seconds.series()} if series else {})}


METER = ArrivalMeter()  # this process's: one open-model run at a time


def live_section(meter: ArrivalMeter, plan: dict[str, Any], duration_s: float, now: float) -> dict[str, Any] | None:
    """This process's `arrival` figures so far (the web UI's, every 2 s, on the loop): from the
    meter's own histograms, not an encoded report decoded again (~20 ms instead of ~8), and
    without the histograms and per-second rows a live view does not show."""
    progress = meter.progress(now)
    if progress is None:
        return None
    report = {**meter.counts, **progress}
    return section([report], plan, duration_s, {"response": meter.response, "service": meter.service,
                                                "lag": meter.lag})


def section(reports: list[dict[str, Any]], plan: dict[str, Any], duration_s: float,
            live: dict[str, Latency] | None = None) -> dict[str, Any] | None:
    """run.json's `arrival` section from the processes' reports and the planned load (`plan`:
    rate/stages/poisson/max_in_flight/identities/late_tolerance_ms/offered...); with `live`
    histograms (one process, figures so far), without `histograms` and `series`."""
    reports = [r for r in reports if isinstance(r, dict)]
    if not reports:
        return None
    counts = {k: sum(int(r.get(k, 0) or 0) for r in reports) for k in _SUMMED}
    counts["peak_in_flight"] = max(int(r.get("peak_in_flight", 0) or 0) for r in reports)
    hists = live or {name: merged([r["histograms"][name] for r in reports if name in (r.get("histograms") or {})])
                     for name in ("response", "service", "lag")}
    lag = hists["lag"].summary()
    return {
        **plan,
        "generators": len(reports),
        "in_flight": sum(int(r.get("in_flight", 0) or 0) for r in reports),
        "offered_rate": _rate(reports, "scheduled", duration_s),
        "achieved_rate": _rate(reports, "started", duration_s),
        **counts,
        "dropped_ratio": _ratio(counts["dropped"], counts["scheduled"]),
        "late_ratio": _ratio(counts["late"], counts["started"]),
        "lag_ms": {"p50": lag["p50"], "p99": lag["p99"], "max": lag["max"]},
        "response_time_ms": hists["response"].summary(),
        "service_time_ms": hists["service"].summary(),
        **({} if live else {"histograms": {name: h.encode() for name, h in hists.items()},
                            "series": merge_series([r.get("series") for r in reports])}),
    }


def merge_series(per_process: list[Any]) -> list[dict[str, Any]]:
    """The processes' per-second rows, second by second (each counts from its own schedule's
    start, within a moment of the others'): counts summed; the response figures the highest
    of the processes' (an upper bound: percentiles do not add)."""
    merged_rows: dict[int, dict[str, Any]] = {}
    for rows in per_process:
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict) or not isinstance(row.get("t"), int) or not 0 <= row["t"] <= MAX_SERIES_S:
                continue  # a peer's malformed row
            into = merged_rows.setdefault(row["t"], {"t": row["t"], **dict.fromkeys(SECOND_COUNTS, 0),
                                                     **dict.fromkeys(SECOND_FIGURES)})
            for key in SECOND_COUNTS:
                into[key] += peer.count(row.get(key))
            for key in SECOND_FIGURES:
                value = peer.number(row.get(key))
                if value is not None:
                    into[key] = max(into[key] or 0.0, value)
    return [merged_rows[t] for t in sorted(merged_rows)]


MAX_SERIES_S = 31 * 24 * 3600  # a month of seconds: any longer row index is not a schedule's


def _rate(reports: list[dict[str, Any]], key: str, duration_s: float) -> float:
    """Per second of each process's own schedule (it starts after the run's first moment, once
    its driver is up), summed over the processes; the run's duration when a span is unknown."""
    total = 0.0
    for report in reports:
        span = report.get("span_s") or duration_s
        total += int(report.get(key, 0) or 0) / max(float(span), 1e-9)
    return round(total, 3)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None
