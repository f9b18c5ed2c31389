"""Run results: load and check the `run.json` (schema ``workload.run/1``) of a run directory.

A *run* is one load run of one scenario under one connection policy; `workload compare` writes
one run directory per policy.  `load_run` turns a directory (or the run.json inside it) into the
parsed document, or raises a `ResultsError` that names the path, the key and how to fix it.
Sections a run cut short may lack (connections, sockets, ...) are optional here; the summary
reports them as null.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workload.errors import Problem, ResultsError

RUN_FILE = "run.json"
RUN_SCHEMA = "workload.run/1"
DEFAULT_FIX = "run `workload compare` first or pass a directory that contains run.json"
DEFAULT_MAX_HINTS = 3

# Sections that, when present, must be JSON objects (null is accepted: "not measured").
OPTIONAL_SECTIONS = ("connections", "sockets", "kernel", "ports", "load", "target", "server")
# Figures of stats.total that every run has, even one interrupted early.
REQUIRED_TOTALS = ("requests", "failures", "rps")


def _fail(file: Path | str, key: str, what: str, fix: str = DEFAULT_FIX) -> ResultsError:
    return ResultsError(Problem(file=str(file), line=None, key=key, what=what, fix=fix).render())


def _runs_below(directory: Path) -> list[str]:
    """Names of subdirectories that hold a run.json (the user passed their parent)."""
    try:
        found = sorted(p.name for p in directory.iterdir() if (p / RUN_FILE).is_file())
    except OSError:
        return []
    return found


def run_file(path: str | Path) -> Path:
    """The run.json for `path`: the file itself, or the run.json inside the directory."""
    given = Path(path).expanduser()
    if given.is_file() and given.name == RUN_FILE:
        return given
    if not given.exists():
        raise _fail(given, "", "no such directory")
    if not given.is_dir():
        raise _fail(given, "", f"not a directory and not a {RUN_FILE}")
    candidate = given / RUN_FILE
    if candidate.is_file():
        return candidate
    below = _runs_below(given)
    if below:
        shown = ", ".join(str(given / name) for name in below[:DEFAULT_MAX_HINTS])
        more = f" and {len(below) - DEFAULT_MAX_HINTS} more" if len(below) > DEFAULT_MAX_HINTS else ""
        raise _fail(given, "", f"no {RUN_FILE} here, but its subdirectories hold runs",
                    f"pass the run directories themselves, e.g. {shown}{more}")
    raise _fail(given, "", f"no {RUN_FILE} in this directory")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(file, "", f"cannot read the file ({exc})",
                    "check the file's permissions, or re-run the load to write it again") from exc
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _fail(f"{file}:{exc.lineno}", "", f"not valid JSON: {exc.msg} (column {exc.colno})",
                    "the run was probably killed while writing it: re-run it") from exc
    except ValueError as exc:
        raise _fail(file, "", f"not valid JSON: {exc}", "re-run the load to write it again") from exc


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require_object(file: Path, data: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise _fail(file, path, f"expected an object, found {type(value).__name__}",
                    "this run.json is incomplete or corrupt: re-run the load")
    return value


def _check_header(file: Path, data: Any) -> None:
    if not isinstance(data, dict):
        raise _fail(file, "", f"expected a JSON object, found {type(data).__name__}")
    schema = data.get("schema")
    if schema != RUN_SCHEMA:
        raise _fail(file, "schema", f"schema is {schema!r}, expected {RUN_SCHEMA!r}",
                    "pass a run.json written by this version of workload (re-run the load)")
    if not isinstance(data.get("complete"), bool):
        raise _fail(file, "complete", "expected true or false",
                    "this run.json is incomplete or corrupt: re-run the load")


def _check_names(file: Path, data: dict[str, Any]) -> None:
    for section in ("policy", "scenario"):
        name = _require_object(file, data, section, section).get("name")
        if not isinstance(name, str) or not name:
            raise _fail(file, f"{section}.name", "expected a non-empty string",
                        "this run.json is incomplete or corrupt: re-run the load")


def _check_stats(file: Path, data: dict[str, Any]) -> None:
    stats = _require_object(file, data, "stats", "stats")
    total = _require_object(file, stats, "total", "stats.total")
    for key in REQUIRED_TOTALS:
        if not _is_number(total.get(key)):
            raise _fail(file, f"stats.total.{key}", f"expected a number, found {total.get(key)!r}",
                        "this run.json is incomplete or corrupt: re-run the load")
    for key in ("history", "errors"):
        if not isinstance(stats.get(key, []), list):
            raise _fail(file, f"stats.{key}", "expected a list",
                        "this run.json is incomplete or corrupt: re-run the load")


def _check_sections(file: Path, data: dict[str, Any]) -> None:
    for key in OPTIONAL_SECTIONS:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            raise _fail(file, key, f"expected an object or null, found {type(value).__name__}",
                        "this run.json is incomplete or corrupt: re-run the load")
    if not isinstance(data.get("workers", []), list):
        raise _fail(file, "workers", "expected a list",
                    "this run.json is incomplete or corrupt: re-run the load")


def load_run(path: str | Path) -> dict[str, Any]:
    """Parse and check the run.json of the run directory `path` (or the run.json itself)."""
    file = run_file(path)
    data = _parse(file)
    _check_header(file, data)
    _check_names(file, data)
    _check_stats(file, data)
    _check_sections(file, data)
    return data


def load_runs(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """`load_run` for each path, in order; at least one path is required."""
    runs = [load_run(path) for path in paths]
    if not runs:
        raise _fail("(no run directories)", "", "nothing to report on",
                    "pass one or more run directories, each containing run.json")
    return runs
