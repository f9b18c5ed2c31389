"""Checks on canned responses: pure logic, no network."""

from __future__ import annotations

import time
from types import SimpleNamespace

from workload.plan.checks import DEFAULT_REGEX_TIMEOUT_S, ParsedResponse, compile_captures, run_captures
from workload.scenario.schema import Capture


def _response(text: str) -> SimpleNamespace:
    return SimpleNamespace(status_code=200, headers={}, cookies={}, text=text, json=lambda: None)


def test_a_regex_capture_that_backtracks_fails_the_request_in_bounded_time():
    captures = compile_captures({"x": Capture.model_validate({"regex": "(a+)+$"})})
    into: dict[str, object] = {}
    started = time.monotonic()
    problem = run_captures(captures, ParsedResponse(_response("a" * 5000 + "!")), {}, into)
    elapsed = time.monotonic() - started
    assert problem == (f"capture 'x': regex '(a+)+$' took longer than {DEFAULT_REGEX_TIMEOUT_S:g} s on the "
                       "response body (a pattern that backtracks; simplify it)")
    assert into == {} and elapsed < 30  # with `re`: exponential in the body length, hours


def test_a_regex_capture_takes_the_first_group_or_the_match():
    captures = compile_captures({"id": Capture.model_validate({"regex": r"id=(\d+)"}),
                                 "word": Capture.model_validate({"regex": r"[a-z]+"})})
    into: dict[str, object] = {}
    assert run_captures(captures, ParsedResponse(_response("ok id=42")), {}, into) is None
    assert into == {"id": "42", "word": "ok"}
