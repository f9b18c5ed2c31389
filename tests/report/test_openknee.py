"""Open-model knee analysis on canned step figures (pure)."""

from __future__ import annotations

from workload.report.openknee import (
    ENDED_BOUND,
    ENDED_NO_KNEE,
    ENDED_SLO,
    ENDED_TURN,
    OpenSlo,
    combine,
    find_open_knee,
)

SLO = OpenSlo(response_p99_ms=500, dropped_ratio=0.01, late_ratio=0.05, failure_ratio=0.01)


def step(rate: float, p99: float, achieved: float | None = None, dropped: float = 0.0, late: float = 0.0) -> dict:
    return {"rate": rate, "offered_rate": rate, "achieved_rate": rate if achieved is None else achieved,
            "response_p99_ms": p99, "dropped_ratio": dropped, "late_ratio": late, "failure_ratio": 0.0,
            "service_p99_ms": p99 / 2, "generator_saturated": False, "complete": True, "run_id": f"r{rate:g}"}


def test_the_knee_is_the_last_rate_before_p99_turns_upward() -> None:
    steps = [step(50, 30), step(100, 35), step(150, 50), step(200, 90), step(250, 400)]
    knee = find_open_knee(steps, SLO)
    assert (knee["rate"], knee["ended_by"], knee["base_response_p99_ms"]) == (150, ENDED_TURN, 30)
    assert steps[3]["turned"] == ["response p99 90 ms > 2x the lowest rate's 30 ms"] and not steps[3]["breaches"]


def test_an_slo_breach_or_a_shortfall_ends_the_ladder() -> None:
    steps = [step(50, 30), step(100, 40, dropped=0.2), step(150, 45, achieved=120)]
    knee = find_open_knee(steps, SLO)
    assert (knee["rate"], knee["ended_by"]) == (50, ENDED_SLO)
    assert steps[1]["breaches"] == ["dropped 20.00% > 1.00%"]
    assert steps[2]["turned"] == ["achieved 120/s < 95% of offered 150/s"]


def test_one_noisy_step_is_not_the_knee_and_a_ladder_that_never_turns_is_bound() -> None:
    steps = [step(50, 30), step(100, 70), step(150, 40)]
    assert find_open_knee(steps, SLO)["rate"] == 150
    assert find_open_knee([step(50, 30), step(100, 31)], SLO)["ended_by"] == ENDED_BOUND
    assert find_open_knee([step(50, 900)], SLO)["ended_by"] == ENDED_NO_KNEE


def test_repeats_combine_into_medians_with_their_spread() -> None:
    row = combine([step(100, 30, achieved=99), step(100, 50, achieved=100), step(100, 40, achieved=98)])
    assert row["repeats"] == 3 and row["response_p99_ms"] == 40 and row["achieved_rate"] == 99
    assert row["response_p99_ms_spread"] == [30, 50] and row["achieved_rate_spread"] == [98, 100]
    assert row["run_ids"] == ["r100", "r100", "r100"]
