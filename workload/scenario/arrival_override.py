"""The `--arrival` option: a run's open-model load, replacing the scenario file's `load:`.

`workload capacity` steps the arrival rate with it, one Locust child per step, without
rewriting the scenario: `--arrival '{"rate": 100, "max_in_flight": 200, "duration": "10s"}'`
(the keys of `load.arrival`, plus `duration`), or `--arrival closed` to run an open-model
scenario as closed users (`load.users` etc., or `--shape`).  The override goes into the
scenario's document, so the bundle a master forwards to its workers carries it too.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from workload.errors import RunError, ScenarioError
from workload.scenario.loader import LoadedScenario, load_document
from workload.scenario.source import Source

CLOSED = "closed"
OPTION = "--arrival"
FIX = ('pass JSON with the keys of load.arrival and an optional duration, e.g. '
       '{"rate": 100, "max_in_flight": 200, "duration": "10s"}, or "closed"')


def overridden(loaded: LoadedScenario, text: str | None) -> LoadedScenario:
    """`loaded` with its load replaced as `--arrival` says (unchanged when it is empty)."""
    if not text or not text.strip():
        return loaded
    document = {**loaded.document, "load": _load_of(loaded, text.strip())}
    if document["load"].get("arrival") is not None:
        document.pop("wait", None)  # iterations do not wait: a closed scenario's wait means nothing here
    try:
        changed = load_document(Source(loaded.path, document))
    except ScenarioError as exc:
        first = exc.problems[0]  # located in the option's value, not in the file
        raise RunError(f"{first.what} (at {first.key})", where=OPTION, fix=first.fix) from exc
    return dataclasses.replace(changed, credentials=loaded.credentials, raw=loaded.raw)


def _load_of(loaded: LoadedScenario, text: str) -> dict[str, Any]:
    current = dict(loaded.document.get("load") or {})
    if text == CLOSED:
        current.pop("arrival", None)
        return current
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise RunError(f"{OPTION} is not JSON: {exc}", where=OPTION, fix=FIX) from exc
    if not isinstance(spec, dict):
        raise RunError(f"{OPTION} must be a JSON object, not {type(spec).__name__}", where=OPTION, fix=FIX)
    duration = spec.pop("duration", None)
    load: dict[str, Any] = {"arrival": spec}
    if "stages" not in spec:
        load["duration"] = duration if duration is not None else current.get("duration", loaded.model.load.duration)
    return load
