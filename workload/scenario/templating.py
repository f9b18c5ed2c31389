"""Templating: `{{ ... }}` values compiled once, rendered per request from a user's variables.

Templates are untrusted: they are checked against the documented surface when compiled
(`workload.scenario.template_rules`) and rendered in the sandbox (`workload.scenario.template_sandbox`), with
every rendered value bounded to `MAX_RENDERED_CHARS`.  Values without `{{` stay plain
constants, so an untemplated request costs nothing extra per call; a template is compiled
once when the scenario is compiled, never per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError

from workload.scenario.template_rules import compiled, parsed, template_problem, walk
from workload.scenario.template_sandbox import BUILTIN_NAMES, MAX_RENDERED_CHARS, TEMPLATE_GLOBALS

__all__ = ["BUILTIN_NAMES", "TEMPLATE_GLOBALS", "TemplateRenderError", "TemplateSecurityError", "Value",
           "fields_used", "is_template", "names_used", "template_problem"]


class TemplateRenderError(Exception):
    """A template could not be rendered (e.g. a capture has not happened yet)."""


class TemplateSecurityError(TemplateRenderError):
    """A template reaches outside the documented surface; it is never rendered."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def names_used(text: str) -> set[str]:
    """Variable names a template reads; raises jinja2.TemplateSyntaxError on bad syntax.

    Exact for templates inside the surface, which have no statements that could bind a name."""
    return {node.name for node, _ in walk(parsed(text), None)
            if isinstance(node, nodes.Name) and node.ctx == "load"} - set(TEMPLATE_GLOBALS)


def fields_used(text: str, name: str = "user") -> set[str]:
    """The `name.<field>` / `name['field']` fields a template reads (`user.username` → username)."""
    found = set()
    for node, _ in walk(parsed(text), None):
        if isinstance(node, nodes.Getattr | nodes.Getitem) and isinstance(node.node, nodes.Name) \
                and node.node.name == name:
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
            if isinstance(key, str):
                found.add(key)
    return found


class Value:
    """A compiled value: constant, a single template, or a nested structure of them."""

    __slots__ = ("constant", "_render")

    def __init__(self, raw: Any):
        self.constant = not names_or_templates(raw)
        self._render = _compile(raw)

    def render(self, context: Mapping[str, Any]) -> Any:
        try:
            return self._render(context)
        except jinja2.UndefinedError as exc:
            raise TemplateRenderError(f"template variable not set: {exc.message}") from exc
        except SecurityError as exc:
            raise TemplateSecurityError(f"template not allowed: {exc}") from exc
        except RecursionError as exc:  # e.g. a captured JSON value nested thousands deep
            raise TemplateRenderError("template failed: a value is nested too deeply") from exc
        except Exception as exc:  # noqa: BLE001 (whatever a filter raises on odd data: one failed request)
            raise TemplateRenderError(f"template failed: {type(exc).__name__}: {exc}") from exc


def names_or_templates(raw: Any) -> bool:
    if is_template(raw):
        return True
    if isinstance(raw, dict):
        return any(names_or_templates(k) or names_or_templates(v) for k, v in raw.items())
    if isinstance(raw, list):
        return any(names_or_templates(v) for v in raw)
    return False


def _compile(raw: Any) -> Any:
    if is_template(raw):
        return _compile_template(raw)
    if isinstance(raw, dict) and names_or_templates(raw):
        parts = [(_compile(k), _compile(v)) for k, v in raw.items()]
        return lambda ctx: {k(ctx): v(ctx) for k, v in parts}
    if isinstance(raw, list) and names_or_templates(raw):
        items = [_compile(v) for v in raw]
        return lambda ctx: [item(ctx) for item in items]
    return lambda ctx: raw


def _compile_template(text: str) -> Callable[[Mapping[str, Any]], str]:
    # Checked again here, not only by the loader: a plan may be compiled from data that never
    # went through validation (a worker's bundle, code building a Request).
    found = template_problem(text)
    if found:
        raise TemplateSecurityError(f"template not allowed: {found[0]}")
    try:
        template = compiled(text)
    except (RecursionError, SyntaxError, MemoryError) as exc:  # limits of the Python code Jinja generates
        raise TemplateSecurityError("template not allowed: it is nested too deeply") from exc

    def render(ctx: Mapping[str, Any]) -> str:
        out = template.render(ctx)
        if len(out) > MAX_RENDERED_CHARS:
            raise SecurityError(f"the rendered value is over {MAX_RENDERED_CHARS} characters")
        return out

    return render
