"""Template rules: a `{{ }}` template checked on Jinja's AST against the documented surface.

Validation runs this on every template in a scenario, so an escape attempt (a private
attribute, a call to anything but a helper, a statement, an unknown filter, a constant that
is too large) is a located error before anything is sent.  The sandbox
(`workload.scenario.template_sandbox`) enforces the same surface again at run time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError

from workload.scenario.messages import did_you_mean
from workload.scenario.template_sandbox import (
    FILTERS,
    HELPER_FUNCTIONS,
    MAX_RENDERED_CHARS,
    SANDBOX,
    TEMPLATE_GLOBALS,
    TESTS,
    guarded,
    size_of,
)

SURFACE_FIX = "templates may use variables, captures, user.<field>, user_index, the helpers uuid4(), " \
              "randint(a, b), choice(list), now() and the filters listed in docs/scenario-format.md"
_STATEMENT_TAGS = {"Assign": "set", "AssignBlock": "set", "FromImport": "import", "CallBlock": "call",
                   "FilterBlock": "filter", "ExprStmt": "do", "ScopedEvalContextModifier": "autoescape"}
_EXPRESSIONS = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.Getattr,
                nodes.Getitem, nodes.Slice, nodes.Call, nodes.Filter, nodes.Test, nodes.CondExpr, nodes.BinExpr,
                nodes.UnaryExpr, nodes.Compare, nodes.Operand, nodes.Concat, nodes.List, nodes.Tuple, nodes.Dict,
                nodes.Pair, nodes.Keyword)


@functools.lru_cache(maxsize=4096)
def parsed(text: str) -> nodes.Template:
    """Jinja's AST of `text`, parsed once for every check that reads it (the checks never change it)."""
    return SANDBOX.parse(text)


@functools.lru_cache(maxsize=4096)
def compiled(text: str) -> jinja2.Template:
    """The sandbox's compiled template for `text`; shared, as rendering never changes it."""
    return SANDBOX.from_string(text)


@functools.lru_cache(maxsize=4096)  # validation, then compiling the scenario, ask about the same texts
def template_problem(text: str) -> tuple[str, str] | None:
    """(what, fix) for the first thing in `text` outside the template surface, or None.

    Raises jinja2.TemplateSyntaxError on bad syntax."""
    try:
        for node, parent in walk(parsed(text), None):
            found = _node_problem(node, parent)
            if found:
                return found
    except (RecursionError, SyntaxError, MemoryError):
        return "template is nested too deeply", "split it into several variables"
    return None


def walk(node: nodes.Node, parent: nodes.Node | None) -> Iterator[tuple[nodes.Node, nodes.Node | None]]:
    yield node, parent
    for child in node.iter_child_nodes():
        yield from walk(child, node)


def _node_problem(node: nodes.Node, parent: nodes.Node | None) -> tuple[str, str] | None:
    if not isinstance(node, _EXPRESSIONS):
        kind = type(node).__name__
        tag = _STATEMENT_TAGS.get(kind, kind.lower())
        return (f"template statement '{{% {tag} %}}' is not allowed",
                "a template is expressions only: write '{{ a if flag else b }}' instead of {% if %}, and "
                "define values under 'variables:' instead of {% set %}")
    if isinstance(node, nodes.Name):
        return _name_problem(node, parent)
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        return _access_problem(node)
    if isinstance(node, nodes.Call):
        return _call_problem(node)
    if isinstance(node, nodes.Filter | nodes.Test):
        return _filter_problem(node)
    if isinstance(node, nodes.Mod) and isinstance(node.left, nodes.Const) and isinstance(node.left.value, str):
        return ("'%' text formatting is not allowed in templates", "join text with '~', e.g. '{{ \"id-\" ~ n }}'")
    if isinstance(node, nodes.BinExpr | nodes.Concat):
        return _constant_problem(node)
    return None


def _name_problem(node: nodes.Name, parent: nodes.Node | None) -> tuple[str, str] | None:
    if node.name == "self":
        return "'self' is not available in templates", SURFACE_FIX
    called = isinstance(parent, nodes.Call) and parent.node is node
    if node.name in TEMPLATE_GLOBALS and not called:
        return f"the helper '{node.name}' can only be called", f"call it, e.g. '{{{{ {_example(node.name)} }}}}'"
    return None


def _example(helper: str) -> str:
    return {"randint": "randint(1, 10)", "choice": "choice(colors)"}.get(helper, f"{helper}()")


def _access_problem(node: nodes.Getattr | nodes.Getitem) -> tuple[str, str] | None:
    key = node.attr if isinstance(node, nodes.Getattr) else _constant_or_none(node.arg)
    if isinstance(key, str) and key.startswith("_"):
        return (f"template reaches the private attribute '{key}'",
                "use data fields only: names starting with '_' are not available in templates")
    if isinstance(node.node, nodes.Name) and node.node.name in TEMPLATE_GLOBALS:
        return (f"'{node.node.name}' is a helper function: its attributes are not available",
                f"call it, e.g. '{{{{ {_example(node.node.name)} }}}}'")
    return None


def _call_problem(node: nodes.Call) -> tuple[str, str] | None:
    target = node.node
    if isinstance(target, nodes.Name) and target.name in TEMPLATE_GLOBALS:
        if node.dyn_args is not None or node.dyn_kwargs is not None:
            return "'*' and '**' arguments are not allowed in templates", "pass the arguments one by one"
        return _arguments_problem(HELPER_FUNCTIONS[target.name], node, f"{target.name}()", with_value=False)
    if isinstance(target, nodes.Name):
        return f"template calls '{target.name}', which is not a helper", SURFACE_FIX
    if isinstance(target, nodes.Getattr):
        return f"template calls the method '{target.attr}', which is not a helper", SURFACE_FIX
    return "template calls an expression, which is not a helper", SURFACE_FIX


def _filter_problem(node: nodes.Filter | nodes.Test) -> tuple[str, str] | None:
    known, noun = (FILTERS, "filter") if isinstance(node, nodes.Filter) else (TESTS, "test")
    if node.name not in known:
        return f"unknown template {noun} '{node.name}'", did_you_mean(node.name, sorted(known), noun=noun)
    for keyword in node.kwargs:
        value = getattr(keyword.value, "value", None)
        if isinstance(value, str) and value.startswith("_"):
            return (f"template reaches the private attribute '{value}'",
                    "use data fields only: names starting with '_' are not available in templates")
    if node.dyn_args is not None or node.dyn_kwargs is not None:
        return "'*' and '**' arguments are not allowed in templates", "pass the arguments one by one"
    return _arguments_problem(known[node.name], node, f"the {noun} '{node.name}'", with_value=True)


def _arguments_problem(function: Callable[..., Any], node: nodes.Call | nodes.Filter | nodes.Test, what: str,
                       with_value: bool) -> tuple[str, str] | None:
    """Arguments that the function cannot take (`randint(1)`, `tojson(indent=4)`) are found before a run."""
    parameters = list(inspect.signature(function).parameters.values())
    if getattr(function, "jinja_pass_arg", None) is not None:
        parameters = parameters[1:]  # Jinja passes its context or environment first
    given = [None] * (len(node.args) + with_value)
    try:
        inspect.Signature(parameters).bind(*given, **{str(k.key): None for k in node.kwargs})
    except TypeError as exc:
        return f"{what} cannot take these arguments: {exc}", "see the template language in docs/scenario-format.md"
    return None


def _constant_problem(node: nodes.BinExpr | nodes.Concat) -> tuple[str, str] | None:
    """A constant expression over the size limits (`'a' * 10**9`) is found before any run."""
    try:
        _constant(node)
    except SecurityError as exc:
        return f"template value too large: {exc}", "use smaller numbers (a template renders at most 1 MiB)"
    except (_NotConstant, ArithmeticError, TypeError, ValueError):
        pass  # not constant, or an ordinary error that the run reports per request
    return None


class _NotConstant(Exception):
    pass


def _constant_or_none(node: nodes.Node) -> Any:
    """The value of a constant subscript such as `['__cl' ~ 'ass__']`, else None."""
    try:
        return _constant(node)
    except (_NotConstant, SecurityError, ArithmeticError, TypeError, ValueError):
        return None


def _constant(node: nodes.Node) -> Any:
    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, nodes.List | nodes.Tuple):
        return [_constant(item) for item in node.items]
    if isinstance(node, nodes.Concat):
        parts = [str(_constant(item)) for item in node.nodes]
        if sum(len(p) for p in parts) > MAX_RENDERED_CHARS:
            raise SecurityError(f"a value over {MAX_RENDERED_CHARS} characters")
        return "".join(parts)
    if isinstance(node, nodes.Neg) and isinstance(value := _constant(node.node), int | float):
        return -value
    if isinstance(node, nodes.BinExpr) and node.operator in ("*", "**", "+", "-"):
        left, right = _constant(node.left), _constant(node.right)
        if node.operator in ("*", "**"):
            return guarded(node.operator, left, right)
        if size_of(left) + size_of(right) > MAX_RENDERED_CHARS:
            raise SecurityError(f"a value over {MAX_RENDERED_CHARS} characters")
        return left + right if node.operator == "+" else left - right
    raise _NotConstant

