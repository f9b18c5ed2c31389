"""Errors: a `WorkloadError` renders its parts in one layout; exit codes keep their documented numbers."""

from __future__ import annotations

import pytest

from workload.errors import ExitCode, RunError, TlsFileError, WorkloadError, render_message


def test_the_parts_render_pre_commit_style() -> None:
    error = RunError("--duration 2.5s is not a whole number of seconds", fix="use e.g. 2s", where="compare")
    assert str(error) == "compare: error: --duration 2.5s is not a whole number of seconds\n    fix: use e.g. 2s"
    assert (error.what, error.fix, error.where) == ("--duration 2.5s is not a whole number of seconds",
                                                    "use e.g. 2s", "compare")
    assert render_message("no baseline", fix="see above") == "error: no baseline\n    fix: see above"


def test_a_bare_message_stays_as_written() -> None:
    assert str(WorkloadError("the demo target exited before announcing itself")) == \
        "the demo target exited before announcing itself"


@pytest.mark.parametrize(("code", "number"), [(ExitCode.OK, 0), (ExitCode.LOCUST_FAILURES, 1),
                                              (ExitCode.BAD_INPUT, 2), (ExitCode.THRESHOLDS, 3),
                                              (ExitCode.INCOMPLETE, 4), (ExitCode.NO_REQUESTS, 5),
                                              (ExitCode.INTERRUPTED, 130)])
def test_exit_codes_keep_their_documented_numbers(code: ExitCode, number: int) -> None:
    assert code == number and f"exit {code}" == f"exit {number}"  # printed as the number, not the name


def test_a_tls_file_error_is_bad_input_not_a_target_error() -> None:
    error = TlsFileError("cannot load the TLS files", fix="give PEM files")
    assert error.exit_code == ExitCode.BAD_INPUT and type(error).__mro__[1] is WorkloadError
