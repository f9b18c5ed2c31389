"""Run result: run.json (schema ``workload.run/1``) as one typed, frozen model.

`RunResult` is the contract between a run and every gate, report and capacity analysis
(docs/results-format.md).  The recorder builds it, `write_run` is the only writer (atomic:
a reader never sees half a file) and `read_run` the only reader, whose errors name the file,
the key path, what is wrong and how to fix it, like a scenario's.

The sections are in `workload.results.run_sections`; they keep keys this version does not
name.  Fields a run cut short may lack default to None; `dump` leaves out every key the run did
not have, so the file on disk has exactly the keys the run wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, StrictBool, StrictStr, ValidationError

from workload.errors import Problem, ResultsError
from workload.results import paths
from workload.results.run_sections import (
    ArrivalFigures,
    Connections,
    EndpointFigures,
    ErrorRow,
    Figures,
    Generator,
    HistoryPoint,
    Load,
    Number,
    PeakEnd,
    PolicyRef,
    Ports,
    ScenarioRef,
    Section,
    Sockets,
    Stage,
    Stats,
    Target,
    ThresholdRow,
    ThresholdSummary,
    Worker,
)
from workload.scenario.compose import key_path
from workload.scenario.messages import data_path

RUN_FILE = "run.json"
RUN_SCHEMA = "workload.run/1"
CORRUPT_FIX = "this run.json is incomplete or corrupt: re-run the load"
__all__ = ["ArrivalFigures", "Connections", "EndpointFigures", "ErrorRow", "Figures", "Generator", "HistoryPoint",
           "PeakEnd", "Ports", "RunResult", "Sockets", "Stage", "Stats", "ThresholdRow", "ThresholdSummary",
           "Worker", "read_run",
           "validate_run", "write_run"]

class RunResult(Section):
    """run.json: what was run, what it measured, and (once judged) its thresholds."""

    schema_: StrictStr = Field(RUN_SCHEMA, alias="schema")
    run_id: StrictStr | None = None
    complete: StrictBool
    incomplete_reason: StrictStr | None = None
    scenario: ScenarioRef
    policy: PolicyRef
    target: Target | None = None
    load: Load | None = None
    started_at: Number | None = None
    ended_at: Number | None = None
    duration_s: Number | None = None
    requested_duration_s: Number | None = None
    stop_drain_s: Number | None = None
    stats: Stats
    failures_by_cause: dict[str, Number] | None = None
    connections: Connections | None = None
    sockets: Sockets | None = None
    kernel: dict[str, Number | None] | None = None
    ports: Ports | None = None
    server: dict[str, Number | None] | None = None
    workers: list[Worker] = []
    stages: list[Stage] | None = None
    arrival: ArrivalFigures | None = None  # the open model (`load.arrival`) only
    generator: Generator | None = None  # the generator's loop lag and CPU (saturated or not)
    thresholds: ThresholdSummary | None = None

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    @property
    def is_empty(self) -> bool:
        """Not one request completed (success or failure): nothing to judge."""
        return int(self.stats.total.requests or 0) == 0

    def dump(self) -> dict[str, Any]:
        """The run.json document: exactly the keys the run has, in the documented order."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def validate_run(data: Any, file: Path | str = "run.json") -> RunResult:
    """`data` (a parsed run.json) as a `RunResult`, or a `ResultsError` naming the key."""
    if not isinstance(data, dict):
        raise _fail(file, "", f"expected a JSON object, found {type(data).__name__}")
    if data.get("schema") != RUN_SCHEMA:
        raise _fail(file, "schema", f"schema is {data.get('schema')!r}, expected {RUN_SCHEMA!r}",
                    "pass a run.json written by this version of workload (re-run the load)")
    try:
        return RunResult.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, data, file) from None


def read_run(file: Path) -> RunResult:
    """The run.json `file`, parsed and validated; every failure is a `ResultsError`."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(file, "", f"cannot read the file ({exc})",
                    "check the file's permissions, or re-run the load to write it again") from exc
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _fail(f"{file}:{exc.lineno}", "", f"not valid JSON: {exc.msg} (column {exc.colno})",
                    "the run was probably killed while writing it: re-run it") from exc
    except ValueError as exc:
        raise _fail(file, "", f"not valid JSON: {exc}", "re-run the load to write it again") from exc
    return validate_run(data, file)


def write_run(folder: Path, run: RunResult) -> Path:
    """Write `folder/run.json` whole or not at all (temporary file + rename); its path."""
    path = paths.inside(folder, RUN_FILE)
    paths.write_atomic(path, json.dumps(run.dump(), indent=2) + "\n")
    return path


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _fail(file: Path | str, key: str, what: str, fix: str = CORRUPT_FIX) -> ResultsError:
    return ResultsError(Problem(file=str(file), line=None, key=key, what=what, fix=fix).render())


def _from_validation(exc: ValidationError, data: dict[str, Any], file: Path | str) -> ResultsError:
    """The first error pydantic found, on its key path in the document."""
    err = exc.errors()[0]
    path = data_path(err["loc"], data, names_a_key=err["type"] == "missing")
    return _fail(file, key_path(path), _what(err["type"], err.get("input"), path))


def _what(kind: str, value: Any, path: tuple[str | int, ...]) -> str:
    found = type(value).__name__ if isinstance(value, dict | list) else repr(value)
    if kind == "missing":
        return f"required key '{path[-1] if path else ''}' is missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected an object, found {_json_kind(value)}"
    if kind == "list_type":
        return f"expected a list, found {_json_kind(value)}"
    if kind == "bool_type":
        return f"expected true or false, found {found}"
    if kind == "string_too_short":
        return "expected a non-empty string"
    if kind == "string_type":
        return f"expected text, found {found}"
    if kind in ("int_type", "float_type"):
        return f"expected a number, found {found}"
    return f"unexpected value {found}"


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}
    return kinds.get(type(value), "a number")
