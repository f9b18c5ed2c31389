"""Request checks: what a scenario's requests mean, checked before any request is sent.

Each mistake is one located message with a fix, found at validation instead of as a crash
or a wrong figure at run time: names that become file names (policies, the scenario),
request names used twice (their statistics and thresholds would merge), JMESPath
expressions and regexes that do not compile, empty capture sources, capture and variable
names a template cannot read, header names that are not HTTP tokens, and a `Connection`
header, which would silently override the connection policy under test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import jmespath
import jmespath.exceptions

from workload.errors import Problem
from workload.scenario.messages import did_you_mean
from workload.scenario.schema import Request, Scenario
from workload.scenario.source import Path, Source, key_path

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
NAME_FIX = "use letters, digits, '-', '_' and '.', not starting with '-' or '.', at most 64 characters " \
           "(e.g. 'keepalive-8')"
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token
MAX_EXPRESSION_CHARS = 10_000  # JMESPath and regexes: compiling longer ones takes seconds
LOGIN_NAME = "login"  # the statistics name of the login request (workload.plan.login)


def check_names(model: Scenario, source: Source) -> list[Problem]:
    """Names that become file and folder names (run ids, compare's runs/<policy>/ and logs)."""
    named: list[tuple[Path, str, str]] = [(("policies", n), n, "policy name") for n in model.policies]
    if model.name is not None:
        named.insert(0, (("name",), model.name, "scenario name"))
    return [source.problem(path, f"{what} {_shown(name)} cannot be used as a file name", NAME_FIX)
            for path, name, what in named if not NAME_PATTERN.fullmatch(name)]


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:59] + "…")


def check_requests(model: Scenario, source: Source, requests: list[tuple[Path, Request]]) -> list[Problem]:
    problems = _duplicate_names(model, source, requests)
    problems += _headers(source, [(("target", "headers"), model.target.headers)] +
                         [((*path, "headers"), req.headers) for path, req in requests])
    for path, req in requests:
        problems += _captures(source, path, req)
        problems += _path(source, (*path, "path"), req.path)
        if req.expect is not None:
            for i, check in enumerate(req.expect.json_ or ()):
                problems += _jmespath(source, (*path, "expect", "json", i, "path"), check.path)
    problems += _login(model, source)
    problems += [source.problem(("variables", name), f"variable name {_shown(name)} cannot be used in a template",
                                "use letters, digits and '_', not starting with a digit (e.g. page_size)")
                 for name in model.variables if not IDENTIFIER.fullmatch(name)]
    return problems


def _stats_names(model: Scenario, requests: list[tuple[Path, Request]]) -> Iterator[tuple[Path, str]]:
    """Each request's name in the statistics, as `workload.plan.steps.compile_step` gives it."""
    if model.login is not None and (model.login.form or model.login.token):
        yield ("login",), LOGIN_NAME
    for path, req in requests:
        if req.name is not None:
            yield path, req.name
        elif path[0] == "flows":
            yield path, f"{model.flows[int(path[1])].name}: {req.method} {req.path}"
        else:
            yield path, f"{req.method} {req.path}"


def _duplicate_names(model: Scenario, source: Source, requests: list[tuple[Path, Request]]) -> list[Problem]:
    first: dict[str, Path] = {}
    problems = []
    for path, name in _stats_names(model, requests):
        if name not in first:
            first[name] = path
            continue
        where = first[name]
        line = source.line_of(where)
        what = "the login request" if where == ("login",) else key_path(where)
        problems.append(source.problem(path, f"request name {_shown(name)} is also used by {what}"
                                       + (f" (line {line})" if line else ""),
                                       "give each request its own 'name:': requests with one name share "
                                       "their statistics and thresholds"))
    return problems


def _headers(source: Source, groups: list[tuple[Path, dict[str, str]]]) -> list[Problem]:
    problems = []
    for path, headers in groups:
        for name, value in headers.items():
            where = (*path, name)
            if name.lower() == "connection":
                problems.append(source.problem(where, "a Connection header would override the connection policy",
                                               "remove it: the policy under test decides the Connection header "
                                               "(close sends 'Connection: close', shared keeps connections open)"))
            elif not HEADER_NAME.fullmatch(name) and "{{" not in name:  # a templated name is checked as one
                problems.append(source.problem(where, f"header name {_shown(name)} is not a valid HTTP header name",
                                               "use letters, digits and '-' (e.g. X-Request-Id)"))
            elif "\r" in str(value) or "\n" in str(value):
                problems.append(source.problem(where, "the header value contains a line break",
                                               "write the value on one line"))
    return problems


def _captures(source: Source, path: Path, req: Request) -> list[Problem]:
    problems = []
    for name, capture in req.capture.items():
        where = (*path, "capture", name)
        if not IDENTIFIER.fullmatch(name):
            problems.append(source.problem(where, f"capture name {_shown(name)} cannot be used in a template",
                                           "use letters, digits and '_', not starting with a digit (e.g. item_id)"))
        elif capture.json_ is not None:
            problems += _jmespath(source, (*where, "json"), capture.json_)
        elif capture.regex is not None:
            problems += _regex(source, (*where, "regex"), capture.regex)
        elif not (capture.header or capture.cookie):
            kind = "header" if capture.header is not None else "cookie"
            problems.append(source.problem((*where, kind), f"the {kind} name to capture is empty",
                                           f"name the response {kind}, e.g. "
                                           + ("'header: ETag'" if kind == "header" else "'cookie: session'")))
    return problems


def _path(source: Source, where: Path, path: str) -> list[Problem]:
    if path.startswith(("/", "?", "{")):  # "{{ base }}/x": a template, checked as one
        return []
    return [source.problem(where, f"path {_shown(path.split('?', 1)[0])} does not start with '/'",
                           "write the path only, e.g. '/api/items': the scheme and host come from 'target:'")]


def _too_long(source: Source, where: Path, text: str, what: str) -> list[Problem]:
    if len(text) <= MAX_EXPRESSION_CHARS:
        return []
    return [source.problem(where, f"the {what} is longer than {MAX_EXPRESSION_CHARS} characters",
                           "shorten it: capture a smaller part of the response")]


def _jmespath(source: Source, where: Path, expression: str) -> list[Problem]:
    if too_long := _too_long(source, where, expression, "JMESPath expression"):
        return too_long
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.EmptyExpressionError:
        return [source.problem(where, "empty JMESPath expression", "write a path into the JSON, e.g. 'data.id'")]
    except jmespath.exceptions.JMESPathError as exc:
        return [source.problem(where, f"invalid JMESPath {_shown(expression)}: {_jmespath_reason(exc)}",
                               "see https://jmespath.org (e.g. 'items[0].id', 'data.token')")]
    except RecursionError:
        return [source.problem(where, "the JMESPath expression is nested too deeply", "simplify it")]
    return []


def _jmespath_reason(exc: jmespath.exceptions.JMESPathError) -> str:
    column = getattr(exc, "lex_position", None)
    at = f" at column {column}" if isinstance(column, int) else ""
    if isinstance(exc, jmespath.exceptions.IncompleteExpressionError):
        return "the expression is incomplete" + at
    if isinstance(exc, jmespath.exceptions.LexerError):
        return f"{str(getattr(exc, 'message', 'bad token')).lower()}{at}"
    return f"{str(getattr(exc, 'msg', 'syntax error')).lower()}{at}"


def _regex(source: Source, where: Path, pattern: str) -> list[Problem]:
    if not pattern:
        return [source.problem(where, "empty regular expression", "write a pattern with a group, e.g. 'id=(\\d+)'")]
    if too_long := _too_long(source, where, pattern, "regular expression"):
        return too_long
    try:
        re.compile(pattern)
    except re.error as exc:
        return [source.problem(where, f"invalid regular expression: {exc.msg} at position {exc.pos}",
                               "check brackets and escapes (in YAML, single-quote the pattern)")]
    except (RecursionError, OverflowError) as exc:
        what = "nested too deeply" if isinstance(exc, RecursionError) else "a repetition count is too large"
        return [source.problem(where, f"invalid regular expression: {what}", "simplify it")]
    return []


def _login(model: Scenario, source: Source) -> list[Problem]:
    login = model.login
    if login is None or (login.form is None and login.token is None):
        return []
    kind = "form" if login.form is not None else "token"
    spec = login.form or login.token
    assert spec is not None
    problems = _path(source, ("login", kind, "path"), spec.path)
    if spec.host is not None and spec.host not in model.target.hosts:
        fix = did_you_mean(spec.host, list(model.target.hosts), noun="host name") if model.target.hosts \
            else "define it under 'target: {hosts: {name: url}}'"
        problems.append(source.problem(("login", kind, "host"), f"unknown host name {_shown(spec.host)}", fix))
    if login.token is None:
        return problems
    token = login.token
    problems += _jmespath(source, ("login", "token", "token"), token.token)
    if not HEADER_NAME.fullmatch(token.header):
        problems.append(source.problem(("login", "token", "header"), f"header name {_shown(token.header)} is not a "
                                       "valid HTTP header name", "leave it out for 'Authorization', or name a header"))
    return problems
