"""`load.arrival` (the open model) in a scenario: what validates, and each conflict's exact message."""

from __future__ import annotations

import pytest

from workload.errors import ScenarioError
from workload.scenario.loader import load_text
from workload.scenario.schema import DEFAULT_MAX_IN_FLIGHT

OK = "target: demo\nendpoints: [{path: /}]\n"


def problems(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "s.yaml")
    return str(caught.value)


def test_the_issue_example_validates_with_defaults():
    load = load_text(OK + "load: {arrival: {rate: 200, max_in_flight: 500}, duration: 60s}\n", "s.yaml").model.load
    assert load.arrival is not None
    assert (load.arrival.rate, load.arrival.max_in_flight, load.arrival.poisson) == (200, 500, False)
    assert load.arrival.identity_count == 500  # one identity per iteration in flight by default
    assert load_text(OK + "load: {arrival: {rate: 5}}\n", "s.yaml").model.load.arrival.max_in_flight \
        == DEFAULT_MAX_IN_FLIGHT


def test_stages_of_rates_validate():
    text = OK + "load:\n  arrival:\n    poisson: true\n    seed: 7\n    stages:\n" \
                "      - {duration: 10s, rate: 50}\n      - {duration: 20s, rate: 100, ramp: 0}\n"
    arrival = load_text(text, "s.yaml").model.load.arrival
    assert arrival is not None and arrival.stages is not None and len(arrival.stages) == 2


def test_users_with_arrival_is_an_error_saying_what_to_remove():
    assert problems(OK + "load:\n  users: 5\n  rps: 3\n  arrival: {rate: 10}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:6: ==> At key: load.arrival\n"
        "    error: load.rps, load.users cannot be combined with load.arrival\n"
        "    fix: remove them: load.arrival starts iterations at its rate, without users "
        "(put stages of rates under 'arrival: {stages: ...}')")


def test_rate_and_stages_together_is_an_error():
    assert problems(OK + "load:\n  arrival: {rate: 10, stages: [{duration: 5s, rate: 3}]}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: load.arrival\n"
        "    error: load.arrival needs exactly one of rate, stages\n"
        "    fix: write e.g. 'arrival: {rate: 50}' or 'arrival: {stages: [{duration: 30s, rate: 50}]}'")


def test_duration_with_stages_is_an_error():
    assert problems(OK + "load:\n  duration: 5s\n  arrival:\n    stages: [{duration: 5s, rate: 3}]\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: load.arrival\n"
        "    error: load.duration cannot be combined with load.arrival.stages\n"
        "    fix: remove load.duration: the stages' durations add up to the run's")


def test_wait_with_arrival_is_an_error():
    assert problems(OK + "wait: {constant: 1}\nload:\n  arrival: {rate: 10}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:5: ==> At key: load.arrival\n"
        "    error: load.arrival starts each iteration on its own clock, so 'wait:' would be ignored\n"
        "    fix: remove 'wait:' (or remove load.arrival to run users that wait)")


def test_more_identities_than_iterations_in_flight_is_an_error():
    assert problems(OK + "load:\n  arrival: {rate: 10, max_in_flight: 5, identities: 6}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: load.arrival.identities\n"
        "    error: identities (6) cannot exceed max_in_flight (5)\n"
        "    fix: an iteration holds one identity: lower 'identities' or raise 'max_in_flight'")


@pytest.mark.parametrize(("stage", "what"), [
    ("{duration: 5s, rate: 3, ramp: 6s}", "the ramp (6s) is longer than the stage (5s)"),
    ("{duration: 5s, rate: 3, ramp: soon}", "invalid ramp 'soon'"),
    ("{duration: 5s, rate: 3, ramp: -1}", "the ramp must be 0 or positive"),
])
def test_a_bad_ramp_is_located_at_the_stage(stage, what):
    text = problems(OK + f"load:\n  arrival:\n    stages:\n      - {stage}\n")
    assert "s.yaml:6: ==> At key: load.arrival.stages[0].ramp\n" in text and f"error: {what}\n" in text


def test_open_model_thresholds_belong_to_the_whole_run():
    text = problems("target: demo\nendpoints:\n  - path: /\n    thresholds: {response_p99_ms: 5}\n")
    assert "At key: endpoints[0].thresholds" in text
    assert "error: response_p99_ms: a whole-run threshold, not a per-request one" in text
