"""Template checks: every `{{ }}` in a scenario validated before a request is sent.

Three questions per template, one message per template at most (the first that fails), so
one mistake never gives follow-on messages: does it stay inside the documented surface
(`workload.scenario.template_rules`), does every name it reads exist (variables, captures, helpers,
`user`), and does every `user.<field>` exist in every credentials row.  The surface check
runs on every string in the document, because a template anywhere could one day be rendered.
"""

from __future__ import annotations

import re
from typing import Any

import jinja2

from workload.errors import Problem
from workload.scenario import templating
from workload.scenario.messages import did_you_mean
from workload.scenario.schema import Request, Scenario
from workload.scenario.source import Path, Source

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TEMPLATED_SECTIONS = ("variables", "login", "endpoints", "flows", "target")
UNRENDERED_KEYS = ("capture",)  # read as written, never rendered (expect values are templates)


def check_templates(model: Scenario, source: Source, requests: list[tuple[Path, Request]],
                    credentials: tuple[dict[str, str], ...] | None) -> list[Problem]:
    """`credentials` None: the scenario has none; empty: they could not be read (already reported)."""
    defined = set(model.variables) | templating.BUILTIN_NAMES
    defined |= {name for _, req in requests for name in req.capture}
    # `item-id` is reported as a name templates cannot read; `{{ item-id }}` then reads `item`
    # and `id`, which must not add two follow-on messages for that one mistake.
    defined |= {part for name in list(defined) if not _IDENTIFIER.fullmatch(name) for part in _IDENTIFIER.findall(name)}
    if credentials is not None:
        defined.add("user")
    fields = _common_fields(credentials) if credentials else None
    problems: list[Problem] = []
    for path, text in template_strings(source.data):
        problems += [source.problem(path, what, fix) for what, fix in _problems(text, rendered(path), defined, fields)]
    return problems


def _problems(text: str, is_rendered: bool, defined: set[str], fields: list[str] | None) -> list[tuple[str, str]]:
    """What is wrong with one template: one escape or syntax error, else each unknown name or field."""
    try:
        found = templating.template_problem(text)
        if found or not is_rendered:
            return [found] if found else []
        missing = sorted(templating.names_used(text) - defined)
        unknown = sorted(templating.fields_used(text) - set(fields)) if fields is not None else []
    except jinja2.TemplateSyntaxError as exc:
        return [(f"template syntax error: {exc.message}", "write templates as '{{ name }}'")] if is_rendered else []
    return [(f"template variable '{name}' is not defined", _undefined_fix(name, defined)) for name in missing] + \
        [(f"the credentials have no field '{name}'",
          f"{did_you_mean(name, fields or [], noun='field')} (a field must be in every inline row, or be a CSV column)")
         for name in unknown]


def _common_fields(rows: tuple[dict[str, str], ...]) -> list[str]:
    """Fields every credentials row has (a CSV's header), in first-row order."""
    first = [k for k in rows[0] if isinstance(k, str)]
    return [k for k in first if all(k in row and row[k] is not None for row in rows)]


def _undefined_fix(name: str, defined: set[str]) -> str:
    if name == "user":
        return "add a 'credentials:' list (inline or csv) so each user has 'user.<field>'"
    hint = did_you_mean(name, sorted(defined), noun="name") if defined else ""
    base = "define it under 'variables:' or capture it from an earlier response"
    return f"{base}; {hint}" if hint.startswith("did you mean") else base


def rendered(path: Path) -> bool:
    return bool(path) and path[0] in TEMPLATED_SECTIONS and not any(k in path for k in UNRENDERED_KEYS)


def template_strings(data: Any) -> list[tuple[Path, str]]:
    """Every string holding `{{` in the document (mapping keys included), with its key path."""
    found: list[tuple[Path, str]] = []

    def walk(value: Any, path: Path) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if templating.is_template(k):
                    found.append(((*path, k), k))
                if k != "description":
                    walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, i))
        elif templating.is_template(value):
            found.append((path, value))

    walk(data, ())
    return found
