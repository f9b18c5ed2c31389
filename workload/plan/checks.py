"""Checks: response expectations and captures, compiled once per scenario.

Expectations (status codes, a JSON field, a response header, body text) turn a response
into a Locust failure with a message saying what was expected and what came back; their
values may be templates, rendered per user (`equals: "{{ user.username }}"`).  Captures (JMESPath
on JSON, header, cookie, regex) store values that later requests use in templates.
Pure logic over response objects: no locust import, unit-testable on canned responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import jmespath
import jmespath.parser
import regex

from workload.redaction import register_capture
from workload.scenario.schema import Capture, Expect, HeaderExpect
from workload.scenario.templating import TemplateRenderError, Value

_MISSING = object()
# A capture regex is the scenario author's, the body is the target's: a pattern that backtracks
# catastrophically on some body must fail that request, not freeze the load loop for hours.
DEFAULT_REGEX_TIMEOUT_S = 0.25


class CaptureTimeout(Exception):
    """A capture regex ran out of time on a response body."""


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


Context = Mapping[str, Any]


@dataclass(frozen=True)
class JsonCheck:
    expression: jmespath.parser.ParsedResult
    source: str
    equals: Value
    exists: bool | None
    has_equals: bool

    def problem(self, data: Any, context: Context) -> str | None:
        found = self.expression.search(data) if data is not None else None
        if self.exists is not None and (found is not None) != self.exists:
            return f"expected JSON '{self.source}' to {'exist' if self.exists else 'be absent'}, got {found!r}"
        if self.has_equals and found != (want := self.equals.render(context)):
            return f"expected JSON '{self.source}' == {want!r}, got {found!r}"
        return None


@dataclass(frozen=True)
class HeaderCheck:
    name: str
    equals: Value | None
    contains: Value | None
    exists: bool | None

    def problem(self, headers: Any, context: Context) -> str | None:
        found = headers.get(self.name)  # requests' headers are case-insensitive
        if self.exists is not None and (found is not None) != self.exists:
            return f"expected header '{self.name}' to {'exist' if self.exists else 'be absent'}, got {found!r}"
        if self.equals is not None and found != (want := str(self.equals.render(context))):
            return f"expected header '{self.name}' == {want!r}, got {found!r}"
        if self.contains is not None and (want := str(self.contains.render(context))) not in (found or ""):
            return f"expected header '{self.name}' to contain {want!r}, got {found!r}"
        return None


@dataclass(frozen=True)
class Expectation:
    statuses: frozenset[int] | None
    json_checks: tuple[JsonCheck, ...]
    contains: Value | None
    header_checks: tuple[HeaderCheck, ...] = ()

    def problem(self, parsed: ParsedResponse, context: Context | None = None) -> str | None:
        """None when the response meets every expectation, else a failure message."""
        try:
            return self._problem(parsed, context or {})
        except TemplateRenderError as exc:
            return str(exc)  # e.g. a capture the expected value uses has not happened yet

    def _problem(self, parsed: ParsedResponse, context: Context) -> str | None:
        status = parsed.response.status_code
        if self.statuses is not None:
            if status not in self.statuses:
                return f"expected status {_list(self.statuses)}, got {status}"
        elif status >= 400 or status == 0:
            return f"HTTP {status}"
        if self.contains is not None and (want := str(self.contains.render(context))) not in parsed.response.text:
            return f"expected the body to contain {want!r}"
        for header in self.header_checks:
            if (found := header.problem(parsed.response.headers, context)) is not None:
                return found
        for check in self.json_checks:
            if (found := check.problem(parsed.json(), context)) is not None:
                return found
        return None


def _list(values: frozenset[int]) -> str:
    return " or ".join(str(v) for v in sorted(values))


def compile_expect(spec: Expect | None) -> Expectation | None:
    if spec is None:
        return None
    statuses = None if spec.status is None else frozenset(
        [spec.status] if isinstance(spec.status, int) else spec.status)
    checks = tuple(JsonCheck(jmespath.compile(j.path), j.path, Value(j.equals), j.exists,
                             "equals" in j.model_fields_set) for j in spec.json_ or ())
    headers = tuple(_header_check(name, h) for name, h in (spec.headers or {}).items())
    contains = None if spec.contains is None else Value(spec.contains)
    return Expectation(statuses, checks, contains, headers)


def _header_check(name: str, spec: HeaderExpect) -> HeaderCheck:
    return HeaderCheck(name, None if spec.equals is None else Value(spec.equals),
                       None if spec.contains is None else Value(spec.contains), spec.exists)


@dataclass(frozen=True)
class JsonCapture:
    """`capture: {name: {json: PATH}}`: a JMESPath search of the JSON body."""

    name: str
    source: str
    query: jmespath.parser.ParsedResult
    kind: ClassVar[str] = "json"

    def extract(self, parsed: ParsedResponse, cookie_jar: Any) -> Any:
        return self.query.search(parsed.json()) if parsed.json() is not None else None


@dataclass(frozen=True)
class HeaderCapture:
    """`capture: {name: {header: NAME}}`: a response header."""

    name: str
    source: str
    kind: ClassVar[str] = "header"

    def extract(self, parsed: ParsedResponse, cookie_jar: Any) -> Any:
        return parsed.response.headers.get(self.source)


@dataclass(frozen=True)
class CookieCapture:
    """`capture: {name: {cookie: NAME}}`: a cookie this response set, else one the jar holds."""

    name: str
    source: str
    kind: ClassVar[str] = "cookie"

    def extract(self, parsed: ParsedResponse, cookie_jar: Any) -> Any:
        value = parsed.response.cookies.get(self.source)
        return value if value is not None else cookie_jar.get(self.source)


@dataclass(frozen=True)
class RegexCapture:
    """`capture: {name: {regex: PATTERN}}`: the first group (or the match) in the body, time-bounded."""

    name: str
    source: str
    pattern: Any  # a compiled `regex` pattern (the module has no public type for it)
    kind: ClassVar[str] = "regex"

    def extract(self, parsed: ParsedResponse, cookie_jar: Any) -> Any:
        try:
            match = self.pattern.search(parsed.response.text, timeout=DEFAULT_REGEX_TIMEOUT_S)
        except TimeoutError as exc:
            raise CaptureTimeout(self.source) from exc
        if match is None:
            return None
        return match.group(1) if match.groups() else match.group(0)


Capturer = JsonCapture | HeaderCapture | CookieCapture | RegexCapture


def compile_captures(specs: dict[str, Capture]) -> tuple[Capturer, ...]:
    return tuple(_capturer(name, spec) for name, spec in specs.items())


def _capturer(name: str, spec: Capture) -> Capturer:
    if spec.json_ is not None:
        return JsonCapture(name, spec.json_, jmespath.compile(spec.json_))
    if spec.header is not None:
        return HeaderCapture(name, spec.header)
    if spec.cookie is not None:
        return CookieCapture(name, spec.cookie)
    assert spec.regex is not None
    # VERSION0: the `re` module's syntax (validated with `re`), plus a timeout per search.
    return RegexCapture(name, spec.regex, regex.compile(spec.regex, flags=regex.VERSION0))


def run_captures(captures: tuple[Capturer, ...], parsed: ParsedResponse, cookie_jar: Any,
                 into: dict[str, Any]) -> str | None:
    """Store captured values into `into`; a failure message if one matched nothing."""
    for capture in captures:
        try:
            value = capture.extract(parsed, cookie_jar)
        except CaptureTimeout:
            return (f"capture '{capture.name}': regex '{capture.source}' took longer than "
                    f"{DEFAULT_REGEX_TIMEOUT_S:g} s on the response body (a pattern that backtracks; simplify it)")
        if value is None:
            return f"capture '{capture.name}': {capture.kind} '{capture.source}' matched nothing"
        register_capture(capture.name, capture.source, value)  # a token or session id: masked
        into[capture.name] = value
    return None
