"""Errors: the one root (`WorkloadError`) and one subclass per concept.

Library errors (PyYAML, pydantic, Jinja2, OS errors) are translated into these at module
boundaries with ``raise ... from exc``.  Every message says *what* is wrong, *where*
(file, line, key path) and *how to fix it*; the CLI and the locustfile print the message
and exit with `ExitCode.BAD_INPUT` instead of showing a traceback.

A `WorkloadError` carries its parts (`what`, `fix`, `where`) and `render_message` lays them
out in one place, pre-commit style: ``WHERE: error: WHAT`` / ``    fix: FIX``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from workload.redaction import redact


class ExitCode(IntEnum):
    """Every exit code `workload` and the locustfile end with (README: "Exit codes")."""

    OK = 0
    LOCUST_FAILURES = 1  # Locust's own code: requests failed (the run still has results)
    BAD_INPUT = 2  # a scenario, option or file is wrong: nothing was run
    THRESHOLDS = 3  # a run finished but breached a threshold (distinct from Locust's 1)
    INCOMPLETE = 4  # interrupted, or ended more than 5% short of its requested duration
    NO_REQUESTS = 5  # the run ended without one completed request (nothing to judge)
    INTERRUPTED = 130  # compare/capacity stopped by Ctrl-C/SIGTERM, or a run before it started


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or, as a lint `warning`, suspicious) in an input file, located precisely."""

    file: str
    line: int | None
    key: str
    what: str
    fix: str
    severity: str = "error"

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = self.key or "(top level)"
        return f"{where}: ==> At key: {key}\n    {self.severity}: {self.what}\n    fix: {self.fix}"


def render_message(what: str, fix: str = "", where: str = "") -> str:
    """The one layout of a message: where (file, file:line, option or key path), what, how to fix.

    A bare `what` (no fix, no where) stays as it is: wrapped library text or a plain statement."""
    if not fix and not where:
        return what
    text = f"{where}: error: {what}" if where else f"error: {what}"
    return f"{text}\n    fix: {fix}" if fix else text


class WorkloadError(Exception):
    """Root of every error this package raises on purpose; carries what, where and the fix."""

    exit_code: int = ExitCode.BAD_INPUT

    def __init__(self, what: str = "", fix: str = "", where: str = ""):
        self.what, self.fix, self.where = what, fix, where
        super().__init__(render_message(what, fix, where))


class ScenarioError(WorkloadError):
    """A scenario file is invalid; carries one `Problem` per thing wrong."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in scenario"
        return redact(head + ":\n" + "\n".join(p.render() for p in self.problems))  # no echoed secret


class HarError(ScenarioError):
    """A HAR file (a browser recording for `workload import-har`) is unreadable or not a HAR."""

    def render(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in HAR file"
        return redact(head + ":\n" + "\n".join(p.render() for p in self.problems))


class TargetError(WorkloadError):
    """The embedded demo target could not be started or reached."""


class TlsFileError(WorkloadError):
    """A TLS file the scenario names (CA bundle, client certificate or key) cannot be loaded when
    a run starts (validation loaded it first, see `scenario.tls_files`: it changed or vanished since)."""


class RunError(WorkloadError):
    """A load run could not be started or finished."""


class ResultsError(WorkloadError):
    """Saved run results are missing or unreadable, or a results folder cannot be written."""


class UnsafePathError(ResultsError):
    """A path the tool was about to write resolves outside its results folder."""


class TelemetryError(WorkloadError):
    """The kernel's socket table or counters could not be read."""
