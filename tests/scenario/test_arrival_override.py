"""`--arrival`: a run's open-model load replacing the scenario's (how `workload capacity` steps the rate)."""

from __future__ import annotations

import pytest

from workload.errors import RunError
from workload.scenario.arrival_override import overridden
from workload.scenario.loader import load_text

CLOSED = "target: demo\nendpoints: [{path: /}]\nwait: {constant: 1}\nload: {users: 5, duration: 20s}\n"
OPEN = "target: demo\nendpoints: [{path: /}]\nload: {arrival: {rate: 10}, duration: 5s}\n"


def test_a_rate_turns_a_closed_scenario_open_and_reaches_the_forwarded_document():
    loaded = overridden(load_text(CLOSED, "s.yaml"), '{"rate": 100, "max_in_flight": 200}')
    arrival = loaded.model.load.arrival
    assert arrival is not None and (arrival.rate, arrival.max_in_flight) == (100, 200)
    assert loaded.model.load.duration == "20s"  # the scenario's, unless the option gives one
    assert "wait" not in loaded.document  # iterations do not wait
    assert loaded.document["load"] == {"arrival": {"rate": 100, "max_in_flight": 200}, "duration": "20s"}


def test_a_duration_and_stages_in_the_option():
    assert overridden(load_text(OPEN, "s.yaml"), '{"rate": 7, "duration": "3s"}').model.load.duration == "3s"
    staged = overridden(load_text(OPEN, "s.yaml"), '{"stages": [{"duration": "2s", "rate": 4}]}').model.load
    assert staged.arrival is not None and staged.arrival.stages is not None


def test_closed_drops_the_arrival_and_empty_changes_nothing():
    loaded = load_text(OPEN, "s.yaml")
    assert overridden(loaded, "closed").model.load.arrival is None
    assert overridden(loaded, "") is loaded


@pytest.mark.parametrize(("text", "message"), [
    ('{"rate": 0}', "--arrival: error: must be greater than 0.0, got 0 (at load.arrival.rate)\n"
                    "    fix: use a number greater than 0.0"),
    ("[1]", "--arrival: error: --arrival must be a JSON object, not list\n    fix: pass JSON with the keys of "
            'load.arrival and an optional duration, e.g. {"rate": 100, "max_in_flight": 200, "duration": "10s"}, '
            'or "closed"'),
])
def test_a_bad_option_is_a_located_error(text, message):
    with pytest.raises(RunError) as caught:
        overridden(load_text(OPEN, "s.yaml"), text)
    assert str(caught.value) == message
