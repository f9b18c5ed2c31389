"""Open-model figures: lossless latency histograms, merged across processes, and run.json's section."""

from __future__ import annotations

import pytest

from workload.telemetry.latency import Latency, merged
from workload.telemetry.openmodel import ArrivalMeter, section


def test_percentiles_are_exact_to_three_digits_and_survive_encoding():
    latency = Latency()
    for ms in range(1, 1001):
        latency.record(ms / 1000)
    figures = Latency.decode(latency.encode()).summary()
    assert figures["count"] == 1000
    assert figures["p50"] == pytest.approx(500, rel=0.002)
    assert figures["p99"] == pytest.approx(990, rel=0.002)
    assert figures["p99_9"] == pytest.approx(999, rel=0.002)
    assert figures["max"] == pytest.approx(1000, rel=0.002)
    assert figures["mean"] == pytest.approx(500.5, rel=0.002)


def test_merging_is_the_histogram_of_all_values():
    fast, slow = Latency(), Latency()
    for _ in range(99):
        fast.record(0.010)
    slow.record(2.0)
    both = merged([fast.encode(), slow.encode()]).summary()
    assert both["count"] == 100
    assert both["p50"] == pytest.approx(10, rel=0.002)
    assert both["max"] == pytest.approx(2000, rel=0.002)


def test_an_empty_histogram_has_no_figures():
    assert Latency().summary()["p99"] is None


def _meter(started: int, dropped: int, slow: int, span: float) -> dict:
    meter = ArrivalMeter()
    meter.active, meter.span_s = True, span
    for i in range(started + dropped):
        meter.scheduled(0.001)
        if i < started:
            meter.started(late=i < slow)
            meter.finished(2.0 if i < slow else 0.01, 0.005, failed=False)
        else:
            meter.add("dropped")
    report = meter.report()
    assert report is not None
    return report


def test_section_sums_processes_and_rates_per_own_span():
    reports = [_meter(started=90, dropped=10, slow=5, span=1.0), _meter(started=100, dropped=0, slow=0, span=2.0)]
    figures = section(reports, {"rate": 100.0}, duration_s=3.0)
    assert figures is not None
    assert (figures["scheduled"], figures["started"], figures["dropped"], figures["late"]) == (200, 190, 10, 5)
    assert figures["generators"] == 2
    assert figures["offered_rate"] == pytest.approx(100 + 50)
    assert figures["achieved_rate"] == pytest.approx(90 + 50)
    assert figures["dropped_ratio"] == pytest.approx(10 / 200, abs=1e-6)
    assert figures["late_ratio"] == pytest.approx(5 / 190, abs=1e-6)  # rounded to 6 places
    assert figures["response_time_ms"]["count"] == 190
    assert figures["response_time_ms"]["max"] == pytest.approx(2000, rel=0.002)
    assert figures["service_time_ms"]["max"] == pytest.approx(5, rel=0.002)  # the stall is not in the service time
    assert Latency.decode(figures["histograms"]["response"]).count == 190
    assert figures["rate"] == 100.0


def test_no_reports_no_section():
    assert section([], {}, 1.0) is None
    assert ArrivalMeter().report() is None
