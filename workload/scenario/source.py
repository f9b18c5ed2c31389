"""YAML source: a scenario document parsed with the line of every key, and `${ENV}` secrets.

Validation errors must point at a file line, so the document is composed into a node tree
once (`workload.scenario.compose`, which bounds depth and aliases), constructed into plain data,
and walked to record where each key path starts.
`${VAR}` / `${VAR:-default}` in string values are replaced from the environment here, so
secrets never need to be written into scenario files.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from workload.errors import Problem, ScenarioError
from workload.redaction import register_env
from workload.scenario.compose import Composer, Loader, Path, key_path

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Source:
    """A parsed document with the line each key path starts on.

    `env_text` holds, for each string that `${ENV}` replaced parts of, the text as written:
    messages show that instead of the value, which may be a secret."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    env_text: dict[Path, str] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Path, what: str, fix: str) -> Problem:
        return Problem(self.file, self.line_of(path), key_path(path), what, fix)

    def shown(self, path: Path, value: Any) -> str:
        """`value` as a message may show it: `'text'`, or `the value of ${API_KEY}`."""
        written = self.env_text.get(path)
        if written is None:
            return repr(value)
        return f"the value of {written}" if ENV_PATTERN.fullmatch(written) else f"the value of {written!r}"


def parse(text: str, file: str) -> Source:
    """Parse once (libyaml where present), within the limits of `workload.scenario.compose`."""
    try:
        root, data = _compose(text, file, Loader)
    except yaml.MarkedYAMLError as exc:
        if Loader is yaml.SafeLoader or LIBYAML_DEPTH_ERROR not in str(exc.problem):
            raise _syntax_problem(exc, file) from exc
        # Newer libyaml scans ahead and stops at its own nesting limit before our composer can
        # report the depth at its key path: the pure-Python parser (bounded by the file size
        # limit) lets the composer's depth check speak, the same on every PyYAML version.
        root, data = _compose_or_fail(text, file, yaml.SafeLoader)
    if root is None or not isinstance(data, dict):  # no root: no document, so data is None
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ScenarioError([Problem(file, 1, "", f"the document is {kind}, not a mapping of keys",
                                     "start from scenarios/demo.yaml: 'target:', 'endpoints:', 'policies:'")])
    return Source(file, data, key_lines(root))


LIBYAML_DEPTH_ERROR = "maximum nesting depth"  # libyaml >= 0.2.6 (PyYAML 6.0.4 wheels)


def _compose(text: str, file: str, loader_class: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text)
    try:
        root = Composer(loader, file).compose()
        return root, (loader.construct_document(root) if root is not None else None)
    except yaml.YAMLError as exc:
        if not isinstance(exc, yaml.MarkedYAMLError):
            raise ScenarioError([Problem(file, None, "", f"invalid YAML: {exc}", "fix the YAML syntax")]) from exc
        raise
    finally:
        loader.dispose()


def _compose_or_fail(text: str, file: str, loader_class: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    try:
        return _compose(text, file, loader_class)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_problem(exc, file) from exc


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> ScenarioError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    what = f"invalid YAML: {exc.problem or exc}" + (f" ({exc.context})" if exc.context else "")
    return ScenarioError([Problem(file, line, "", what, "check indentation, colons and quoting near this line")])


def key_lines(root: yaml.Node) -> dict[Path, int]:
    """The line of every key path, aliases expanded (the composer bounded them).

    Runs after construction, which splices `<<:` merges into each mapping: a merged key keeps
    the line where it is written, in the anchor."""
    lines: dict[Path, int] = {(): 1}
    todo: list[tuple[yaml.Node, Path]] = [(root, ())]
    while todo:
        node, path = todo.pop()
        if isinstance(node, yaml.MappingNode):
            last = {str(k.value): (k, v) for k, v in node.value}  # later keys win, as in the data
            children = [((*path, name), k, v) for name, (k, v) in last.items()]
        elif isinstance(node, yaml.SequenceNode):
            children = [((*path, i), v, v) for i, v in enumerate(node.value)]
        else:
            continue
        for child, marked, value in children:
            lines[child] = marked.start_mark.line + 1
            todo.append((value, child))
    return lines


def interpolate_env(source: Source, environ: Mapping[str, str] | None = None) -> tuple[Source, list[Problem]]:
    """Replace `${VAR}` in every string; returns one problem per undefined variable."""
    env = os.environ if environ is None else environ
    problems: list[Problem] = []
    written: dict[Path, str] = {}

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            replaced = ENV_PATTERN.sub(lambda m: _env_value(m, env, source, path, problems), value)
            if replaced != value:
                written[path] = value
            return replaced
        return value

    data = walk(source.data, ())
    return Source(source.file, data, source.lines, written), problems


def _env_value(match: re.Match[str], env: Mapping[str, str], source: Source, path: Path,
               problems: list[Problem]) -> str:
    name, default = match.group(1), match.group(2)
    if name in env:
        register_env(env[name], path)  # a secret from now on: every output masks it
        return env[name]
    if default is not None:
        return default
    problems.append(source.problem(path, f"environment variable '{name}' is not set",
                                   f"export {name}=... before running, or write '${{{name}:-default}}'"))
    return ""


def settle_env_problems(problems: list[Problem], env_problems: list[Problem], source: Source) -> list[Problem]:
    """`problems` without follow-ons of an unset `${VAR}` and without values taken from `${ENV}`.

    An unset variable leaves '' behind, which fails again as "expected a whole number, got ''":
    one mistake, one message.  A value from the environment may be a secret: a message that
    quotes it gets the text as written (`${API_KEY}`) instead."""
    unset = {p.key for p in env_problems}
    kept = [p for p in problems if p in env_problems or not any(_within(p.key, key) for key in unset)]
    return [_hide_env_value(p, source) for p in kept]


def _within(key: str, ancestor: str) -> bool:
    return key == ancestor or key.startswith((f"{ancestor}.", f"{ancestor}["))


def _hide_env_value(problem: Problem, source: Source) -> Problem:
    for path, written in source.env_text.items():
        key = key_path(path)
        if problem.file == source.file and (_within(problem.key, key) or _within(key, problem.key)):
            value = _value_at(source.data, path)
            if isinstance(value, str) and value:
                what = problem.what.replace(repr(value), written).replace(f"'{value}'", written)
                problem = dataclasses.replace(problem, what=what)
    return problem


def _value_at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
