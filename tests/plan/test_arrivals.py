"""The open model's schedule: intended start times from a rate or stages of rates (pure, canned input)."""

from __future__ import annotations

import random
import statistics

import pytest

from workload.plan.arrivals import intended_starts, poisson_starts, run_seconds, schedule_of
from workload.scenario.schema import Arrival


def stages(*rows: dict) -> Arrival:
    return Arrival(stages=list(rows))


def test_a_constant_rate_is_evenly_spaced_from_zero():
    starts = list(intended_starts(Arrival(rate=200), "3s"))
    assert len(starts) == 600
    assert starts[:3] == pytest.approx([0.0, 0.005, 0.010])
    assert starts[-1] == pytest.approx(2.995)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) == pytest.approx(max(gaps)) == pytest.approx(0.005)


def test_counts_per_stage_follow_the_area_under_the_rate():
    # ramp 0 -> 10/s over 10 s (50 starts), hold 10/s for 5 s (50), step to 0 (none)
    arrival = stages({"duration": 10, "rate": 10}, {"duration": 5, "rate": 10}, {"duration": 5, "rate": 0, "ramp": 0})
    starts = list(intended_starts(arrival, 0))
    assert len(starts) == 100
    assert sum(1 for t in starts if t < 10) == 50
    assert sum(1 for t in starts if 10 <= t < 15) == 50
    assert run_seconds(arrival, 0) == 20


def test_a_ramp_starts_slowly_and_speeds_up():
    starts = list(intended_starts(stages({"duration": 10, "rate": 10}), 0))
    # rate(t) = t, so the k-th start is where t^2/2 = k
    assert starts[:4] == pytest.approx([0.0, 2 ** 0.5, 2.0, 6 ** 0.5])
    first, last = starts[1] - starts[0], starts[-1] - starts[-2]
    assert first > 10 * last


def test_a_step_then_a_ramp_down():
    arrival = stages({"duration": 10, "rate": 100, "ramp": 0}, {"duration": 10, "rate": 0})
    starts = list(intended_starts(arrival, 0))
    assert sum(1 for t in starts if t < 10) == 1000
    assert sum(1 for t in starts if t >= 10) == 500  # the triangle: 100/s down to 0 over 10 s
    assert max(starts) < 20


def test_a_ramp_then_hold_within_one_stage():
    schedule = schedule_of(stages({"duration": 10, "rate": 20, "ramp": 2}), 0)
    assert schedule.rate_at(1) == pytest.approx(10)
    assert schedule.rate_at(5) == pytest.approx(20)
    assert schedule.total == pytest.approx(20 + 8 * 20)


def test_poisson_gaps_average_one_over_the_rate_and_are_seeded():
    starts = list(intended_starts(Arrival(rate=100, poisson=True, seed=3), 60))
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(starts) == pytest.approx(6000, rel=0.05)
    assert statistics.mean(gaps) == pytest.approx(0.01, rel=0.05)
    assert statistics.stdev(gaps) == pytest.approx(0.01, rel=0.1)  # exponential: sd = mean
    assert starts == list(intended_starts(Arrival(rate=100, poisson=True, seed=3), 60))
    assert starts != list(intended_starts(Arrival(rate=100, poisson=True, seed=4), 60))


def test_poisson_follows_a_ramp():
    schedule = schedule_of(stages({"duration": 100, "rate": 100}), 0)  # 5,000 expected, 1,250 in the first half
    starts = list(poisson_starts(schedule, random.Random(1)))
    assert len(starts) == pytest.approx(5000, rel=0.05)
    assert sum(1 for t in starts if t < 50) == pytest.approx(1250, rel=0.1)


def test_processes_split_one_even_schedule_exactly():
    whole = list(intended_starts(Arrival(rate=200), 3))
    shares = [list(intended_starts(Arrival(rate=200), 3, index, 3)) for index in range(3)]
    assert sorted(t for share in shares for t in share) == pytest.approx(whole)
    assert [len(s) for s in shares] == [200, 200, 200]


def test_processes_split_a_poisson_rate():
    shares = [list(intended_starts(Arrival(rate=100, poisson=True, seed=9), 60, i, 2)) for i in range(2)]
    assert shares[0] != shares[1]
    assert [len(s) for s in shares] == pytest.approx([3000, 3000], rel=0.07)


def test_the_requested_rate_of_an_open_scenario_is_its_peak_arrival_rate_times_requests():
    from workload.plan.reqrate import describe_load, requested_rps
    from workload.scenario.loader import load_text

    text = ("target: demo\nendpoints: [{path: /, weight: 1}]\nflows: [{name: f, weight: 1, steps: [{path: /a}, "
            "{path: /b}, {path: /c}]}]\nload:\n  arrival:\n"
            "    stages: [{duration: 5s, rate: 40}, {duration: 5s, rate: 10}]\n")
    model = load_text(text, "s.yaml").model
    assert requested_rps(model, users=500) == 40 * 2  # 1 or 3 requests per iteration: 2 on average
    assert describe_load(model, 500) == "arrival rate up to 40 iterations/s"
