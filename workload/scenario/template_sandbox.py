"""Template sandbox: the runtime surface a `{{ }}` template can reach, and nothing else.

Scenario files arrive in pull requests, so a template is untrusted code.  It runs in Jinja's
immutable sandbox narrowed to the documented surface: the helpers in `TEMPLATE_GLOBALS`,
`FILTERS` and `TESTS` (no `range`, `cycler`, `lipsum`, `namespace`, `attr`, `map`, `format`).
Only the helpers can be called.  The operators that can multiply size (`*`, `**`, `%` and
the `replace` and `join` filters) are checked before they run, so a template cannot exhaust memory.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RENDERED_CHARS = 1_048_576  # one rendered value (a body included): 1 MiB of text
MAX_INT_BITS = 4096  # integers a template computes: about 1,200 decimal digits


def _uuid4() -> str:
    return str(uuid.uuid4())


def _randint(a: int, b: int) -> int:
    return random.randint(a, b)


def _choice(items: Any) -> Any:
    return random.choice(list(items) if not isinstance(items, list | tuple | str) else items)


def _now() -> float:
    return time.time()


class Helper:
    """A helper as templates see it: it can be called, and nothing else (no text, no attributes)."""

    __slots__ = ("_function",)

    def __init__(self, function: Callable[..., Any]):
        self._function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function(*args, **kwargs)

    def __repr__(self) -> str:
        raise SecurityError("a helper can only be called, e.g. randint(1, 10)")

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return self.__repr__()


HELPER_FUNCTIONS: dict[str, Callable[..., Any]] = {"uuid4": _uuid4, "randint": _randint, "choice": _choice,
                                                   "now": _now}
TEMPLATE_GLOBALS: dict[str, Helper] = {name: Helper(f) for name, f in HELPER_FUNCTIONS.items()}
BUILTIN_NAMES = frozenset({"user_index", *TEMPLATE_GLOBALS})
_HELPERS = frozenset(TEMPLATE_GLOBALS.values())


def size_of(value: Any) -> int:
    """Characters `value` would take as text, roughly (what `*` would multiply)."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple):
        return len(value) + sum(size_of(v) for v in value)
    if isinstance(value, dict):
        return len(value) + sum(size_of(k) + size_of(v) for k, v in value.items())
    return 8


def guarded(operator: str, left: Any, right: Any) -> Any:
    """`left <operator> right` for the size-changing operators, refused when the result would be huge."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "%" and isinstance(left, str | bytes):
        raise SecurityError("'%' text formatting is not available in templates")
    if operator == "**" and ints and right > 0 and max(abs(left).bit_length(), 1) * right > MAX_INT_BITS:
        raise SecurityError(f"'**' would make a number over {MAX_INT_BITS} bits")
    if operator == "*" and ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise SecurityError(f"'*' would make a number over {MAX_INT_BITS} bits")
    if operator == "*" and not ints:
        count, seq = (right, left) if isinstance(right, int) else (left, right)
        if isinstance(count, int) and size_of(seq) * max(count, 0) > MAX_RENDERED_CHARS:
            raise SecurityError(f"'*' would make a value over {MAX_RENDERED_CHARS} characters")
    return ImmutableSandboxedEnvironment.default_binop_table[operator](left, right)


def _replace(value: Any, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(value), str(old), str(new)
    hits = text.count(old) if count is None or count < 0 else min(count, text.count(old))
    if len(text) + hits * (len(new) - len(old)) > MAX_RENDERED_CHARS:
        raise SecurityError(f"'replace' would make a value over {MAX_RENDERED_CHARS} characters")
    return text.replace(old, new, -1 if count is None else count)


@jinja2.pass_eval_context
def _join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if size_of(items) + len(str(d)) * max(len(items) - 1, 0) > MAX_RENDERED_CHARS:
        raise SecurityError(f"'join' would make a value over {MAX_RENDERED_CHARS} characters")
    return str(jinja2.filters.do_join(eval_ctx, items, d, attribute))


@jinja2.pass_eval_context
def _tojson(eval_ctx: Any, value: Any) -> Any:
    # No `indent` argument: tojson(indent=10**9) would repeat a billion spaces per line.
    return jinja2.filters.do_tojson(eval_ctx, value)


SAFE_FILTERS = ("abs", "capitalize", "count", "d", "default", "first", "float", "int", "items", "last",
                "length", "list", "lower", "max", "min", "reverse", "round", "sort", "string", "sum", "title",
                "trim", "truncate", "unique", "upper", "urlencode", "wordcount")
FILTERS: dict[str, Callable[..., Any]] = {**{n: jinja2.filters.FILTERS[n] for n in SAFE_FILTERS},
                                          "replace": _replace, "join": _join, "tojson": _tojson}
FILTERS = dict(sorted(FILTERS.items()))
# jinja2 annotates nothing on TESTS, so mypy infers its values as the bare `function` type.
TESTS: dict[str, Callable[..., Any]] = {n: jinja2.tests.TESTS[n] for n in (  # type: ignore[misc]
    "defined", "undefined", "none", "boolean", "true", "false", "number", "integer", "float", "string",
    "mapping", "sequence", "even", "odd", "divisibleby", "in", "eq", "ne", "lt", "le", "gt", "ge", "lower",
    "upper")}


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox narrowed to the documented surface."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return guarded(operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        if __obj not in _HELPERS:  # methods such as str.format, whatever reached them
            raise SecurityError("only the helpers uuid4, randint, choice and now can be called")
        return __obj(*args, **kwargs)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not callable(obj) and not callable(value) and super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `order.items` on JSON {"items": [...]} means the field, not dict.items.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def _no_functions(value: Any) -> Any:
    """Every `{{ }}` output passes here: a function's repr (addresses, names) is never sent."""
    if callable(value) and not isinstance(value, jinja2.Undefined):  # Undefined reports itself
        raise SecurityError("a template cannot output a function; call a helper instead")
    return value


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                   finalize=_no_functions)
    env.globals = dict(TEMPLATE_GLOBALS)  # drops range, dict, lipsum, cycler, joiner, namespace
    env.filters = dict(FILTERS)
    env.tests = dict(TESTS)
    return env


SANDBOX = _environment()
