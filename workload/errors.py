"""Errors: the one root (`WorkloadError`) and one subclass per concept.

Library errors (PyYAML, pydantic, Jinja2, OS errors) are translated into these at module
boundaries with ``raise ... from exc``.  Every message says *what* is wrong, *where*
(file, line, key path) and *how to fix it*; the CLI and the locustfile print the message
and exit with `EXIT_BAD_INPUT` instead of showing a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from workload.redaction import redact

EXIT_BAD_INPUT = 2
EXIT_THRESHOLDS = 3  # a run finished but breached a threshold (Locust's own error code is 1)
EXIT_INCOMPLETE = 4  # interrupted, or ended more than 5% short of its requested duration
EXIT_NO_REQUESTS = 5  # the run ended without one completed request (nothing to judge)
EXIT_INTERRUPTED = 130  # compare/capacity stopped by Ctrl-C/SIGTERM, or a run before it started


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


class WorkloadError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = EXIT_BAD_INPUT


class ScenarioError(WorkloadError):
    """A scenario file is invalid; carries one `Problem` per thing wrong."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in scenario"
        return redact(head + ":\n" + "\n".join(p.render() for p in self.problems))  # no echoed secret


class TargetError(WorkloadError):
    """The embedded demo target could not be started or reached."""


class RunError(WorkloadError):
    """A load run could not be started or finished."""


class ResultsError(WorkloadError):
    """Saved run results are missing or unreadable, or a results folder cannot be written."""


class UnsafePathError(ResultsError):
    """A path the tool was about to write resolves outside its results folder."""


class TelemetryError(WorkloadError):
    """The kernel's socket table or counters could not be read."""
