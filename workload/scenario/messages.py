"""Validation messages: pydantic's errors translated into located, fixable `Problem`s.

pydantic reports a `loc` tuple and an error type; this module maps the tuple back onto
the YAML key path (dropping union-branch tags such as `int` or `RetrySpec`), looks up the
line, and words the message for a person editing the file, with a did-you-mean for keys.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from workload.errors import Problem
from workload.scenario.source import Path, Source


def problems_from(exc: ValidationError, source: Source, root: type[BaseModel]) -> list[Problem]:
    seen: dict[Path, Problem] = {}
    errors = [(data_path(e["loc"], source.data, names_a_key=e["type"] in KEY_ERRORS), e) for e in exc.errors()]
    deeper = {path[:i] for path, _ in errors for i in range(len(path))}
    # Where union branches disagree, a value of the right kind that breaks a bound (a negative
    # duration) says more than "expected text" from a branch of another kind: it goes first.
    errors.sort(key=lambda item: item[1]["type"].endswith(("_type", "_parsing")))
    misspelt = _misspelt(errors)
    for path, err in errors:
        if path in deeper and err["type"].endswith(("_type", "_parsing")):
            continue  # a union's other branch ("expected a number") where the mapping branch went deeper
        if err["type"] == "missing" and path in misspelt:
            continue  # `pasword: x` is one mistake: "unknown key" says it, "password is missing" would repeat it
        # Union members each report an error at the same place; the first one is enough.
        seen.setdefault(path + (err["type"] == "extra_forbidden",), _translate(err, path, source, root))
    return sorted(seen.values(), key=lambda p: (p.line or 0, p.key))


KEY_ERRORS = frozenset({"missing", "extra_forbidden"})


def _misspelt(errors: list[tuple[Path, ErrorDetails]]) -> set[Path]:
    """Paths of missing keys that an unknown key beside them is a misspelling of."""
    unknown: dict[Path, list[str]] = {}
    for path, err in errors:
        if err["type"] == "extra_forbidden" and path:
            unknown.setdefault(path[:-1], []).append(str(path[-1]))
    return {path for path, err in errors if err["type"] == "missing" and path and
            difflib.get_close_matches(str(path[-1]), unknown.get(path[:-1], []), n=1, cutoff=0.6)}


def data_path(loc: tuple[Any, ...], data: Any, names_a_key: bool = False) -> Path:
    """Keep only the loc parts that exist in the document.

    The rest are pydantic's union-branch tags (`int`, `RetrySpec`, `constrained-int`, ...),
    except the last part of a missing/unknown-key error, which is the key itself."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif names_a_key and index == len(loc) - 1 and isinstance(node, dict):
            path.append(part)
    return tuple(path)


def _translate(err: ErrorDetails, path: Path, source: Source, root: type[BaseModel]) -> Problem:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    key = path[-1] if path else ""
    if kind == "extra_forbidden":
        allowed = allowed_keys(root, path[:-1])
        return source.problem(path, f"unknown key '{key}'", did_you_mean(str(key), allowed))
    if kind == "missing":
        return source.problem(path, f"required key '{key}' is missing", f"add '{key}: ...' here")
    if kind == "invalid_key":
        return source.problem(path, f"a key must be text, got {value!r}", "quote the key, or remove it")
    if kind == "workload":  # a rule between keys: `at` names the key it is about, under the model
        return source.problem((*path, *ctx.get("at", ())), err["msg"], ctx.get("fix", "see docs/scenario-format.md"))
    what, fix = _value_message(kind, ctx, value, source.shown(path, value))
    return source.problem(path, what, fix)


def _value_message(kind: str, ctx: dict[str, Any], value: Any, shown: str) -> tuple[str, str]:
    shown = shown if not isinstance(value, dict | list) else type(value).__name__
    if kind in ("greater_than", "greater_than_equal"):
        bound = ctx.get("gt", ctx.get("ge"))
        relation = "greater than" if kind == "greater_than" else "at least"
        return f"must be {relation} {bound}, got {shown}", f"use a number {relation} {bound}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}, got {shown}", "use a smaller number"
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        options = [o.strip(" '") for o in expected.replace(" or ", ", ").split(",")]
        return f"unknown value {shown}", did_you_mean(str(value), options, noun="value")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {shown}", "write a whole number such as 10"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {shown}", "write a number such as 2.5"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {shown}", "write true or false"
    if kind in ("string_type",):
        return f"expected text, got {shown}", "quote the value"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys, got {shown}", "indent 'key: value' lines under this key"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {shown}", "write a YAML list ('- item' lines or [a, b])"
    if kind in ("too_short", "too_long"):
        return f"wrong number of items: {ctx.get('actual_length')}", _length_fix(ctx)
    return f"invalid value {shown}: {_sentence(str(ctx.get('error', kind)))}", "see docs/scenario-format.md"


def _length_fix(ctx: dict[str, Any]) -> str:
    low, high = ctx.get("min_length"), ctx.get("max_length")
    return f"give exactly {low} items" if low == high else f"give at least {low} item(s)"


def _sentence(text: str) -> str:
    return text.replace("_", " ")


def did_you_mean(word: str, options: list[str], noun: str = "key") -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    listed = ", ".join(options)
    nouns = "policies" if noun == "policy" else noun + "s"
    if close:
        return f"did you mean '{close[0]}'? (allowed {nouns}: {listed})"
    return f"use one of the allowed {nouns}: {listed}"


def allowed_keys(root: type[BaseModel], path: Path) -> list[str]:
    """The keys the model at `path` accepts (by YAML name), walking the type annotations."""
    model: Any = root
    for part in path:
        model = _child_type(model, part)
        if model is None:
            return []
    # An optional section (`Thresholds | None`) is a union: its model is the one to list.
    models = [m for m in _models_in(model) if isinstance(m, type) and issubclass(m, BaseModel)]
    if not models:
        return []
    return [f.alias or name for name, f in models[0].model_fields.items()]


def _child_type(model: Any, part: str | int) -> Any:
    for candidate in _models_in(model):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            fields = {f.alias or n: f for n, f in candidate.model_fields.items()}
            if isinstance(part, str) and part in fields:
                return fields[part].annotation
        origin = typing.get_origin(candidate)
        if origin is list and isinstance(part, int):
            return typing.get_args(candidate)[0]
        if origin is dict and isinstance(part, str):
            return typing.get_args(candidate)[1]
    return None


def _models_in(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return [annotation]
