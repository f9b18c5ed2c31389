"""Arrival override: a scenario's load replaced by an arrival rate given on the command line.

`workload capacity --model open` runs each step of its rate ladder as its own Locust child with
``--arrival '{"rate": 80, "duration": "5s"}'``: the scenario's requests, policies and identities,
at that rate.  Keys other than `duration` are `load.arrival` keys (docs/scenario-format.md); they
are laid over the scenario's own `load.arrival` (so its `max_in_flight`, `poisson`, `identities`
are kept unless given), with the scenario's `rate`/`stages` dropped when the override names one.
A `wait:` is dropped: an open-model iteration starts on the clock, with no think time to wait.
The result is validated like the file itself, so a bad override is a located error, not a crash.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from workload.errors import Problem, ScenarioError
from workload.scenario.loader import LoadedScenario, load_document
from workload.scenario.source import Source

OPTION = "--arrival"
SCHEDULE_KEYS = ("rate", "stages")


def _fail(what: str) -> ScenarioError:
    fix = 'pass a JSON object, e.g. --arrival \'{"rate": 80, "duration": "5s"}\''
    return ScenarioError([Problem(file=OPTION, line=None, key="", what=what, fix=fix)])


def parse(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _fail(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _fail(f"expected a JSON object, found {type(value).__name__}")
    return value


def merged_load(load: Any, override: dict[str, Any]) -> dict[str, Any]:
    """The document's `load` with the override's arrival (and duration) laid over it."""
    own = dict(load.get("arrival") or {}) if isinstance(load, dict) else {}
    given = {k: v for k, v in override.items() if k != "duration"}
    if any(key in given for key in SCHEDULE_KEYS):
        for key in SCHEDULE_KEYS:
            own.pop(key, None)
    result: dict[str, Any] = {"arrival": {**own, **given}}
    duration = override.get("duration", load.get("duration") if isinstance(load, dict) else None)
    if duration is not None and "stages" not in result["arrival"]:
        result["duration"] = duration
    return result


def with_arrival(loaded: LoadedScenario, text: str | None) -> LoadedScenario:
    """`loaded` with its load replaced per `text` (unchanged when `text` is empty)."""
    if not text:
        return loaded
    document = copy.deepcopy(loaded.document)
    document["load"] = merged_load(document.get("load"), parse(text))
    document.pop("wait", None)
    checked = load_document(Source(loaded.path, document))
    raw = copy.deepcopy(loaded.raw) if loaded.raw is not None else None
    if raw is not None:
        raw["load"] = document["load"]
    return dataclasses.replace(loaded, model=checked.model, document=document, raw=raw)
