"""--arrival: a scenario's load replaced by an arrival rate (used by `workload capacity --model open`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workload.errors import ScenarioError
from workload.scenario.arrival_override import with_arrival
from workload.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]


def test_a_closed_scenario_runs_at_the_given_rate_without_its_wait() -> None:
    loaded = load_scenario(ROOT / "scenarios" / "capacity.yaml")
    changed = with_arrival(loaded, '{"rate": 80, "duration": "4s", "max_in_flight": 300}')
    arrival = changed.model.load.arrival
    assert arrival is not None and (arrival.rate, arrival.max_in_flight) == (80, 300)
    assert changed.model.load.duration == "4s" and "wait" not in changed.document
    assert changed.document["load"] == {"arrival": {"rate": 80, "max_in_flight": 300}, "duration": "4s"}
    assert loaded.model.load.arrival is None  # the original is untouched
    assert with_arrival(loaded, "") is loaded


def test_an_open_scenario_keeps_its_own_arrival_settings() -> None:
    loaded = load_scenario(ROOT / "scenarios" / "open.yaml")
    arrival = with_arrival(loaded, '{"rate": 7}').model.load.arrival
    assert arrival is not None and arrival.rate == 7
    assert (arrival.max_in_flight, arrival.identities) == (100, 20)  # open.yaml's


@pytest.mark.parametrize(("text", "message"), [
    ("[1]", "--arrival: ==> At key: (top level)\n    error: expected a JSON object, found list"),
    ("{rate: 1}", "--arrival: ==> At key: (top level)\n    error: not valid JSON: "),
    ('{"rate": -1}', "capacity.yaml: ==> At key: load.arrival.rate\n    error: must be greater than 0.0, got -1"),
])
def test_a_bad_override_is_a_located_error(text: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        with_arrival(load_scenario(ROOT / "scenarios" / "capacity.yaml"), text)
    assert message in str(caught.value)
