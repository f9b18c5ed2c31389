"""Run results: load and check the `run.json` (schema ``workload.run/1``) of a run directory.

A *run* is one load run of one scenario under one connection policy; `workload compare` writes
one run directory per policy.  `load_run` finds the run.json of a directory (or takes the file)
and reads it into a `RunResult` (`workload.results.run`), or raises a `ResultsError` that names
the path, the key and how to fix it.  Sections a run cut short may lack (connections, sockets,
...) are None in the model; the summary reports them as null.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from workload.errors import Problem, ResultsError
from workload.results.run import RUN_FILE, RunResult, read_run

DEFAULT_FIX = "run `workload compare` first or pass a directory that contains run.json"
DEFAULT_MAX_HINTS = 3


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


def load_run(path: str | Path) -> RunResult:
    """The run of the run directory `path` (or of the run.json itself), read and validated."""
    return read_run(run_file(path))


def load_runs(paths: Iterable[str | Path]) -> list[RunResult]:
    """`load_run` for each path, in order; at least one path is required."""
    runs = [load_run(path) for path in paths]
    if not runs:
        raise _fail("(no run directories)", "", "nothing to report on",
                    "pass one or more run directories, each containing run.json")
    return runs
