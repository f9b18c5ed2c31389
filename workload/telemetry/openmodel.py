"""Open-model meter: what an arrival-rate run offered, what it achieved, and its two latencies.

Per generator process, `ArrivalMeter` counts the schedule (scheduled, started, dropped because
`max_in_flight` iterations were running, late starts and their lag, iterations completed,
failed or still running when the run's grace time ended) and keeps three lossless histograms
(`workload.telemetry.latency`): the response time from each iteration's *intended* start, its
service time from the actual send, and the scheduler's lag.  `report` is what a worker sends
to the master; `section` combines one or more reports into run.json's `arrival` section.
Locust-free: the engine (`workload.engine.arrival`) feeds it.
"""

from __future__ import annotations

from typing import Any

from workload.telemetry.latency import Latency, merged

COUNTS = ("scheduled", "started", "dropped", "late", "completed", "failed", "unfinished", "missed",
          "identities", "peak_in_flight")
_SUMMED = COUNTS[:-1]  # peak_in_flight: the largest of the processes', not their sum


class ArrivalMeter:
    """One process's open-model figures for the current run."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        self.response = Latency()
        self.service = Latency()
        self.lag = Latency()
        self.active = False  # an open-model run has started in this process
        self.in_flight = 0
        self.t0: float | None = None  # monotonic: this process's schedule began
        self.span_s: float | None = None  # how long it ran (set when the run stops)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]  # the same fresh state as a new meter

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def scheduled(self, lag_s: float) -> None:
        self.counts["scheduled"] += 1
        self.lag.record(lag_s)

    def started(self, late: bool) -> None:
        self.counts["started"] += 1
        self.counts["late"] += late
        self.in_flight += 1
        self.counts["peak_in_flight"] = max(self.counts["peak_in_flight"], self.in_flight)

    def finished(self, response_s: float, service_s: float, failed: bool, unfinished: bool = False) -> None:
        """One iteration's latencies; failed and unfinished ones count at their elapsed time."""
        self.in_flight -= 1
        self.counts["unfinished" if unfinished else "completed"] += 1
        self.counts["failed"] += failed
        self.response.record(response_s)
        self.service.record(service_s)

    def report(self, now: float | None = None) -> dict[str, Any] | None:
        """This process's figures as plain data (None when no open-model run happened here);
        `span_s` is how long its schedule has run (until `now` while it still runs)."""
        if not self.active:
            return None
        span = self.span_s
        if span is None and self.t0 is not None and now is not None:
            span = max(now - self.t0, 0.0)
        return {**self.counts, "in_flight": self.in_flight, "span_s": span, "histograms": {
            "response": self.response.encode(), "service": self.service.encode(), "lag": self.lag.encode()}}


METER = ArrivalMeter()  # this process's: one open-model run at a time


def section(reports: list[dict[str, Any]], plan: dict[str, Any], duration_s: float) -> dict[str, Any] | None:
    """run.json's `arrival` section from the processes' reports and the planned load (`plan`:
    rate/stages/poisson/max_in_flight/identities/late_tolerance_ms/offered...)."""
    reports = [r for r in reports if isinstance(r, dict)]
    if not reports:
        return None
    counts = {k: sum(int(r.get(k, 0) or 0) for r in reports) for k in _SUMMED}
    counts["peak_in_flight"] = max(int(r.get("peak_in_flight", 0) or 0) for r in reports)
    hists = {name: merged([r["histograms"][name] for r in reports if name in (r.get("histograms") or {})])
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
        "histograms": {name: h.encode() for name, h in hists.items()},
    }


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
