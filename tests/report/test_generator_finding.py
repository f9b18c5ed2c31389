"""The report's finding when the load generator, not the target, was the bottleneck."""

from __future__ import annotations

from tests.factories import make_run
from workload.report.summary import build_summary
from workload.telemetry.generator import GeneratorHealth

HEALTHY = {"loop_lag_samples": 3000, "loop_lag_p99_ms": 1.2, "loop_lag_max_ms": 9.0, "cpu_percent": 35.0,
           "saturated": False, "saturated_because": []}


def test_a_saturated_generator_is_a_finding_and_flags_the_latencies() -> None:
    health = GeneratorHealth()
    for lag in [0.5] * 90 + [60.0] * 10:
        health.record_lag(lag)
    summary = build_summary([make_run(generator=health.summary()),
                             make_run(generator=HEALTHY, policy__name="close")])
    saturated, healthy = summary["policies"]
    assert saturated["latency_flagged"] is True and healthy["latency_flagged"] is False
    found = [f for f in summary["findings"] if "bottleneck" in f]
    p99 = saturated["generator"]["loop_lag_p99_ms"]
    assert found == [f"shared: the load generator, not the target, was the bottleneck (event-loop lag p99 "
                     f"{p99:g} ms >= 25 ms): its latency figures include the generator's own delay (flagged)"]


def test_runs_without_generator_figures_get_no_finding() -> None:
    summary = build_summary([make_run()])
    assert summary["policies"][0]["generator"] is None
    assert summary["policies"][0]["latency_flagged"] is False
    assert not [f for f in summary["findings"] if "bottleneck" in f]


def test_several_saturated_runs_make_one_finding_with_the_range_of_their_figures() -> None:
    def busy(cpu: float) -> dict[str, object]:
        return {**HEALTHY, "cpu_percent": cpu, "saturated": True,
                "saturated_because": [f"CPU {cpu:g}% of one core >= 90%"]}

    summary = build_summary([make_run(generator=busy(98.2)), make_run(generator=busy(99.4), policy__name="close"),
                             make_run(generator=HEALTHY, policy__name="fresh")])
    found = [f for f in summary["findings"] if "bottleneck" in f]
    assert found == ["shared, close: the load generator, not the target, was the bottleneck (CPU 98–99% of "
                     "one core): their latency figures include the generator's own delay (flagged)"]
