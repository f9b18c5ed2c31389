"""Open-model figures: lossless latency histograms, merged across processes, and run.json's section."""

from __future__ import annotations

import time

import pytest

from workload.telemetry.latency import Latency, merged
from workload.telemetry.openmodel import ArrivalMeter, Seconds, merge_series, section


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


def _at(seconds: Seconds, second: float) -> None:
    """Makes `seconds`' clock read `second` (its t0 moved back by that much)."""
    seconds.t0 = time.monotonic() - second


def test_seconds_count_each_second_and_give_its_exact_response_percentiles():
    seconds = Seconds()
    _at(seconds, 0.2)
    for _ in range(3):
        seconds.count("scheduled")
        seconds.count("started")
    for value in [0.010] * 99 + [0.500]:  # 100 ends in second 0: p99 is the 99th smallest
        seconds.ended(value, failed=False)
    _at(seconds, 2.5)
    seconds.count("dropped")
    seconds.ended(2.0, failed=True)
    first, third = seconds.series()
    assert first == {"t": 0, "scheduled": 3, "started": 3, "dropped": 0, "late": 0, "completed": 100, "failed": 0,
                     "response_p50_ms": 10.0, "response_p99_ms": 10.0, "response_max_ms": 500.0}
    assert third["t"] == 2 and third["dropped"] == 1 and third["failed"] == 1 and third["response_p99_ms"] == 2000.0


def test_series_merge_sums_counts_and_bounds_percentiles_and_ignores_a_peers_garbage():
    a = [{"t": 0, "scheduled": 5, "started": 5, "dropped": 0, "late": 1, "completed": 4, "failed": 0,
          "response_p50_ms": 2.0, "response_p99_ms": 9.0, "response_max_ms": 9.5}]
    b = [{"t": 0, "scheduled": 4, "started": 3, "dropped": 1, "late": 0, "completed": 3, "failed": 1,
          "response_p50_ms": 3.0, "response_p99_ms": 7.0, "response_max_ms": float("nan")},
         {"t": -1, "scheduled": 10**9}, {"t": "1"}, "junk", {"t": 1, "scheduled": True, "started": -3, "late": 2}]
    merged_rows = merge_series([a, b, None, "junk"])
    assert merged_rows == [
        {"t": 0, "scheduled": 9, "started": 8, "dropped": 1, "late": 1, "completed": 7, "failed": 1,
         "response_p50_ms": 3.0, "response_p99_ms": 9.0, "response_max_ms": 9.5},
        {"t": 1, "scheduled": 0, "started": 0, "dropped": 0, "late": 2, "completed": 0, "failed": 0,
         "response_p50_ms": None, "response_p99_ms": None, "response_max_ms": None}]


def test_a_live_report_leaves_the_series_out_and_the_seconds_undisturbed():
    meter = ArrivalMeter()
    meter.begin(time.monotonic())
    meter.scheduled(0.001)
    meter.started(late=False)
    meter.finished(0.004, 0.003, failed=False)
    assert "series" not in (meter.report(time.monotonic(), series=False) or {})
    meter.started(late=True)
    meter.finished(0.008, 0.003, failed=False)
    (row,) = (meter.report(time.monotonic()) or {})["series"]
    assert row["completed"] == 2 and row["late"] == 1 and row["response_p99_ms"] == 8.0


def test_progress_counts_without_histograms():
    meter = ArrivalMeter()
    assert meter.progress(time.monotonic()) is None  # no open-model run here
    meter.begin(time.monotonic() - 2.0)
    meter.scheduled(0.001)
    meter.started(late=False)
    figures = meter.progress(time.monotonic())
    assert figures is not None and figures["scheduled"] == 1 and figures["in_flight"] == 1
    assert 2.0 <= figures["span_s"] < 3.0 and "histograms" not in figures


def test_live_figures_are_the_sections_without_histograms_and_rows():
    from workload.telemetry.openmodel import live_section

    meter = ArrivalMeter()
    meter.begin(time.monotonic() - 1.0)
    for value in (0.004, 0.006, 0.120):
        meter.scheduled(0.001)
        meter.started(late=False)
        meter.finished(value, value / 2, failed=False)
    now = time.monotonic()
    live = live_section(meter, {"rate": 3.0}, 1.0, now)
    full = section([meter.report(now)], {"rate": 3.0}, 1.0)
    assert live is not None and full is not None
    assert "histograms" not in live and "series" not in live
    assert live["response_time_ms"] == full["response_time_ms"] and live["completed"] == full["completed"] == 3
    assert live_section(ArrivalMeter(), {}, 1.0, now) is None
