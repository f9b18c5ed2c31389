"""YAML source: a scenario document parsed with the line of every key, and `${ENV}` secrets.

Validation errors must point at a file line, so the document is composed into PyYAML's
node tree once to record where each key path starts, then constructed into plain data.
`${VAR}` / `${VAR:-default}` in string values are replaced from the environment here, so
secrets never need to be written into scenario files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from workload.errors import Problem, ScenarioError
from workload.secrets import register_env

Path = tuple[str | int, ...]
ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Source:
    """A parsed document with the line each key path starts on."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Path, what: str, fix: str) -> Problem:
        return Problem(self.file, self.line_of(path), key_path(path), what, fix)


def key_path(path: Path) -> str:
    """`('policies', 'shared', 'pool_maxsize')` → `policies.shared.pool_maxsize`; lists as `[0]`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse(text: str, file: str) -> Source:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = f"invalid YAML: {exc.problem or exc}" + (f" ({exc.context})" if exc.context else "")
        fix = "check indentation, colons and quoting near this line"
        raise ScenarioError([Problem(file, line, "", what, fix)]) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, None, "", f"invalid YAML: {exc}", "fix the YAML syntax")]) from exc
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise ScenarioError([Problem(file, 1, "", f"the document is {kind}, not a mapping of keys",
                                     "start from scenarios/demo.yaml: 'target:', 'endpoints:', 'policies:'")])
    lines: dict[Path, int] = {(): 1}
    _record_lines(node, (), lines)
    return Source(file, data, lines)


def _record_lines(node: yaml.Node, path: Path, lines: dict[Path, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _record_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _record_lines(item, child, lines)


def interpolate_env(source: Source, environ: Mapping[str, str] | None = None) -> tuple[Source, list[Problem]]:
    """Replace `${VAR}` in every string; returns one problem per undefined variable."""
    env = os.environ if environ is None else environ
    problems: list[Problem] = []

    def walk(value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return ENV_PATTERN.sub(lambda m: _env_value(m, env, source, path, problems), value)
        return value

    data = walk(source.data, ())
    return Source(source.file, data, source.lines), problems


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
