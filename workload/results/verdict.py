"""Run verdict: whether a finished run is complete and has anything to judge, and its exit code.

A run is *incomplete* when it was interrupted (Ctrl-C, SIGTERM, the process quit before its
end) or ended more than `SHORT_TOLERANCE` short of its requested duration; a shape run
that its own `stop_if` limits ended early is complete (that early end is its result).  A
run with no completed request (success or failure) is *empty*.  Neither may pass a gate:
each has its own exit code, ahead of threshold breaches.  Pure functions on a `RunResult`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workload.errors import ExitCode

if TYPE_CHECKING:
    from workload.results.run import RunResult

SHORT_TOLERANCE = 0.05  # a run more than 5% shorter than requested did not measure what was asked


def completion(actual_s: float, requested_s: float | None, interrupted: bool,
               stopped_by_shape: bool = False) -> str | None:
    """Why the run is incomplete, or None when it is complete."""
    asked = f" of the requested {requested_s:g} s" if requested_s else ""
    if interrupted:
        return f"interrupted after {actual_s:.2f} s{asked}"
    if requested_s and not stopped_by_shape and actual_s < (1 - SHORT_TOLERANCE) * requested_s:
        return (f"ended after {actual_s:.2f} s, more than {SHORT_TOLERANCE:.0%} short{asked}")
    return None


def problem(run: RunResult) -> str | None:
    """One line on what keeps this run from being judged, or None."""
    if not run.complete:
        reason = run.incomplete_reason or "it did not complete"
        return f"INCOMPLETE run: {reason}; its figures cannot pass a gate"
    if run.is_empty:
        return "EMPTY run: no request completed (the target never answered within the run)"
    return None


def exit_code(run: RunResult) -> int | None:
    """`ExitCode.INCOMPLETE`, `ExitCode.NO_REQUESTS`, or None when the run can be judged."""
    if not run.complete:
        return ExitCode.INCOMPLETE
    if run.is_empty:
        return ExitCode.NO_REQUESTS
    return None
