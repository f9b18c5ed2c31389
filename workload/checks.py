"""Checks: response expectations and captures, compiled once per scenario.

Expectations (status codes, a JSON field, body text) turn a response into a Locust
failure with a message saying what was expected and what came back.  Captures (JMESPath
on JSON, header, cookie, regex) store values that later requests use in templates.
Pure logic over response objects: no locust import, unit-testable on canned responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import jmespath
import jmespath.parser

from workload.schema import Capture, Expect
from workload.secrets import register_capture

_MISSING = object()


class Response(Protocol):
    status_code: int
    headers: Any
    cookies: Any
    text: str

    def json(self) -> Any: ...


class ParsedResponse:
    """A response with its JSON body parsed at most once, shared by checks and captures."""

    __slots__ = ("response", "_json")

    def __init__(self, response: Response):
        self.response = response
        self._json: Any = _MISSING

    def json(self) -> Any:
        if self._json is _MISSING:
            try:
                self._json = self.response.json()
            except ValueError:
                self._json = None
        return self._json


@dataclass(frozen=True)
class JsonCheck:
    expression: jmespath.parser.ParsedResult
    source: str
    equals: Any
    exists: bool | None
    has_equals: bool

    def problem(self, data: Any) -> str | None:
        found = self.expression.search(data) if data is not None else None
        if self.exists is not None and (found is not None) != self.exists:
            return f"expected JSON '{self.source}' to {'exist' if self.exists else 'be absent'}, got {found!r}"
        if self.has_equals and found != self.equals:
            return f"expected JSON '{self.source}' == {self.equals!r}, got {found!r}"
        return None


@dataclass(frozen=True)
class Expectation:
    statuses: frozenset[int] | None
    json_checks: tuple[JsonCheck, ...]
    contains: str | None

    def problem(self, parsed: ParsedResponse) -> str | None:
        """None when the response meets every expectation, else a failure message."""
        status = parsed.response.status_code
        if self.statuses is not None:
            if status not in self.statuses:
                return f"expected status {_list(self.statuses)}, got {status}"
        elif status >= 400 or status == 0:
            return f"HTTP {status}"
        if self.contains is not None and self.contains not in parsed.response.text:
            return f"expected the body to contain {self.contains!r}"
        for check in self.json_checks:
            if (found := check.problem(parsed.json())) is not None:
                return found
        return None


def _list(values: frozenset[int]) -> str:
    return " or ".join(str(v) for v in sorted(values))


def compile_expect(spec: Expect | None) -> Expectation | None:
    if spec is None:
        return None
    statuses = None if spec.status is None else frozenset(
        [spec.status] if isinstance(spec.status, int) else spec.status)
    checks = tuple(JsonCheck(jmespath.compile(j.path), j.path, j.equals, j.exists, "equals" in j.model_fields_set)
                   for j in spec.json_ or ())
    return Expectation(statuses, checks, spec.contains)


@dataclass(frozen=True)
class Capturer:
    name: str
    kind: str
    source: str
    compiled: Any

    def extract(self, parsed: ParsedResponse, cookie_jar: Any) -> Any:
        response = parsed.response
        if self.kind == "json":
            return self.compiled.search(parsed.json()) if parsed.json() is not None else None
        if self.kind == "header":
            return response.headers.get(self.source)
        if self.kind == "cookie":
            value = response.cookies.get(self.source)
            return value if value is not None else cookie_jar.get(self.source)
        match = self.compiled.search(response.text)
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)


def compile_captures(specs: dict[str, Capture]) -> tuple[Capturer, ...]:
    return tuple(_capturer(name, spec) for name, spec in specs.items())


def _capturer(name: str, spec: Capture) -> Capturer:
    if spec.json_ is not None:
        return Capturer(name, "json", spec.json_, jmespath.compile(spec.json_))
    if spec.header is not None:
        return Capturer(name, "header", spec.header, None)
    if spec.cookie is not None:
        return Capturer(name, "cookie", spec.cookie, None)
    assert spec.regex is not None
    return Capturer(name, "regex", spec.regex, re.compile(spec.regex))


def run_captures(captures: tuple[Capturer, ...], parsed: ParsedResponse, cookie_jar: Any,
                 into: dict[str, Any]) -> str | None:
    """Store captured values into `into`; a failure message if one matched nothing."""
    for capture in captures:
        value = capture.extract(parsed, cookie_jar)
        if value is None:
            return f"capture '{capture.name}': {capture.kind} '{capture.source}' matched nothing"
        register_capture(capture.name, capture.source, value)  # a token or session id: masked
        into[capture.name] = value
    return None
