"""Templating: `{{ ... }}` values compiled once, rendered per request from a user's variables.

Jinja2 does the work (autoescape off: these are HTTP values, not HTML).  Values without
`{{` stay plain constants so an untemplated request costs nothing extra per call; a
template is compiled once when the scenario is compiled, never per request.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jinja2
import jinja2.meta

TEMPLATE_GLOBALS: dict[str, Any] = {
    "uuid4": lambda: str(uuid.uuid4()),
    "randint": random.randint,
    "choice": random.choice,
    "now": time.time,
}
BUILTIN_NAMES = frozenset({"user_index", *TEMPLATE_GLOBALS})

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
_ENV.globals.update(TEMPLATE_GLOBALS)


class TemplateRenderError(Exception):
    """A template could not be rendered (e.g. a capture has not happened yet)."""


def is_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def names_used(text: str) -> set[str]:
    """Variable names a template reads; raises jinja2.TemplateSyntaxError on bad syntax."""
    return jinja2.meta.find_undeclared_variables(_ENV.parse(text)) - set(TEMPLATE_GLOBALS)


def names_in(value: Any) -> set[str]:
    """All names read by templates anywhere inside a nested value."""
    if is_template(value):
        return names_used(value)
    if isinstance(value, dict):
        return set().union(*(names_in(k) | names_in(v) for k, v in value.items())) if value else set()
    if isinstance(value, list):
        return set().union(*(names_in(v) for v in value)) if value else set()
    return set()


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
        template = _ENV.from_string(raw)
        return template.render
    if isinstance(raw, dict) and names_or_templates(raw):
        parts = [(_compile(k), _compile(v)) for k, v in raw.items()]
        return lambda ctx: {k(ctx): v(ctx) for k, v in parts}
    if isinstance(raw, list) and names_or_templates(raw):
        items = [_compile(v) for v in raw]
        return lambda ctx: [item(ctx) for item in items]
    return lambda ctx: raw
