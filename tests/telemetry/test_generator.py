"""Generator health figures (pure): loop-lag percentiles, CPU share and the saturation rule."""

from __future__ import annotations

import time

import pytest

from workload.telemetry.generator import (
    DEFAULT_SATURATED_CPU_PERCENT,
    DEFAULT_SATURATED_LAG_MS,
    GeneratorHealth,
    saturation_reasons,
)


def test_lag_percentiles_and_max_come_from_the_recorded_wake_ups() -> None:
    health = GeneratorHealth()
    for _ in range(990):
        health.record_lag(0.5)
    for _ in range(10):
        health.record_lag(40.0)
    health.record_lag(-3.0)  # a stale loop clock woke it early: counted as no lag
    section = health.summary()
    assert section["loop_lag_samples"] == 1001
    # HDR keeps 3 significant digits: a value reads back as the top of its bucket.
    assert section["loop_lag_p50_ms"] == 0.5 and section["loop_lag_max_ms"] == pytest.approx(40.0, rel=1e-3)
    assert 0.5 <= section["loop_lag_p99_ms"] < 1  # 1% of samples is not more than 1%
    assert section["cpu_percent"] is None and section["saturated"] is False


def test_a_lagging_loop_is_saturated_and_says_why() -> None:
    health = GeneratorHealth()
    for lag in (1.0, 30.0):
        health.record_lag(lag)
    section = health.summary()
    assert section["loop_lag_p99_ms"] == pytest.approx(30.0, rel=1e-3) and section["saturated"] is True
    assert section["saturated_because"] == [
        f"event-loop lag p99 {section['loop_lag_p99_ms']:g} ms >= {DEFAULT_SATURATED_LAG_MS:g} ms"]


def test_saturation_rule_thresholds() -> None:
    assert saturation_reasons(None, None) == []
    assert saturation_reasons(DEFAULT_SATURATED_LAG_MS - 0.1, DEFAULT_SATURATED_CPU_PERCENT - 0.1) == []
    assert saturation_reasons(1.0, 95.0) == [f"CPU 95% of one core >= {DEFAULT_SATURATED_CPU_PERCENT:g}%"]
    assert len(saturation_reasons(DEFAULT_SATURATED_LAG_MS, DEFAULT_SATURATED_CPU_PERCENT)) == 2


def _cpu_over(work: float, busy: bool) -> float:
    health = GeneratorHealth()
    health.start()
    end = time.monotonic() + work
    while busy and time.monotonic() < end:
        pass
    if not busy:
        time.sleep(work)
    health.stop()
    value = health.cpu_percent()
    assert value is not None
    return value


def test_cpu_share_tells_a_busy_process_from_an_idle_one() -> None:
    # os.times counts in clock ticks (10 ms): over 0.5 s one stray tick of the idle process is 2%.
    busy, idle = _cpu_over(0.5, busy=True), _cpu_over(0.5, busy=False)
    assert busy > 40 and idle < 15 and busy > 4 * idle, (busy, idle)


def test_cpu_is_frozen_when_the_run_stops() -> None:
    health = GeneratorHealth()
    health.start()
    time.sleep(0.05)
    health.stop()
    frozen = health.cpu_percent()
    end = time.monotonic() + 0.1
    while time.monotonic() < end:  # busy after the stop: not the run's
        pass
    assert health.cpu_percent() == frozen and not health.running
