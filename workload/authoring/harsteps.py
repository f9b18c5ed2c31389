"""Recorded requests as flow steps: path, query, headers and body, with captures and secrets.

Each value goes through the same three questions in order: did a response return it (a
`{{ capture }}`), is it a secret (a `${ENV}` reference), else it is recorded text (escaped).
Headers the browser adds by itself (cookies, user agent, caching, `Sec-*`) are left out; the
session's cookie jar and the policy's connection handling replace them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from workload.authoring.har import HarEntry
from workload.authoring.harcapture import Captures
from workload.authoring.harvalues import SECRET_NAME, Secrets, body_of, escape, secret_body

BROWSER_HEADERS = {"host", "connection", "content-length", "cookie", "accept-encoding", "accept-language",
                   "user-agent", "referer", "origin", "cache-control", "pragma", "upgrade-insecure-requests",
                   "dnt", "te", "priority", "if-none-match", "if-modified-since", "keep-alive",
                   "proxy-connection", "purpose", "x-requested-with"}


@dataclass(frozen=True)
class StepContext:
    """What every step needs: the host key for its URL, the login's token (its header is dropped)."""

    host: dict[str, str]
    token: str | None


def build_step(entry: HarEntry, context: StepContext, captures: Captures, secrets: Secrets) -> dict[str, Any]:
    parts = urlsplit(entry.url)
    step: dict[str, Any] = {} if entry.method == "GET" else {"method": entry.method}
    step.update(context.host)
    step["path"] = "/".join(_segment(s, captures) for s in (parts.path or "/").split("/"))
    query = _query(parts.query, captures, secrets)
    if query:
        step["query"] = query
    body = body_of(entry)
    headers = _headers(entry, context, captures, secrets, keep_type=body is not None and body.kind == "body")
    if headers:
        step["headers"] = headers
    if body is not None:
        step[body.kind] = _body(body.kind, body.value, captures, secrets)
    if not 300 <= entry.status < 400:
        step["expect"] = {"status": entry.status}
    _note_sent(entry, body.value if body else None, captures)
    return step


def _segment(text: str, captures: Captures) -> str:
    return (captures.segment(text) if text else None) or escape(text)


def _query(text: str, captures: Captures, secrets: Secrets) -> dict[str, Any]:
    query: dict[str, Any] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        rendered = _value(name, value, captures, secrets, "QUERY")
        previous = query.get(name)
        query[name] = rendered if previous is None else [*(previous if isinstance(previous, list) else
                                                           [previous]), rendered]
    return query


def _value(name: str, value: str, captures: Captures, secrets: Secrets, kind: str) -> str:
    captured = captures.value(value)
    if captured:
        return captured
    if SECRET_NAME.search(name) and value:
        return secrets.ref(kind, name, value)
    return escape(value)


def _headers(entry: HarEntry, context: StepContext, captures: Captures, secrets: Secrets,
             keep_type: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in entry.headers:
        low = name.lower()
        if low in BROWSER_HEADERS or low.startswith(("sec-", ":")) or (low == "content-type" and not keep_type):
            continue
        if low == "accept" and ("text/html" in value or value.strip() == "*/*"):
            continue  # the browser's own default; an API's `application/json` is kept
        if low == "authorization" and context.token and value.endswith(" " + context.token):
            continue  # the login sends it
        headers[name] = _header_value(name, value, captures, secrets)
    return headers


def _header_value(name: str, value: str, captures: Captures, secrets: Secrets) -> str:
    scheme, _, credential = value.partition(" ")
    captured = captures.value(value) or (credential and captures.value(credential))
    if captured:
        return captured if captures.value(value) else f"{scheme} {captured}"
    if SECRET_NAME.search(name) and value:
        return secrets.ref("HEADER", name, value)
    return escape(value)


def _body(kind: str, value: Any, captures: Captures, secrets: Secrets) -> Any:
    if kind == "body":
        return escape(value)
    return _captured(secret_body(value, secrets, "BODY"), captures)


def _captured(value: Any, captures: Captures) -> Any:
    if isinstance(value, dict):
        return {k: _captured(v, captures) for k, v in value.items()}
    if isinstance(value, list):
        return [_captured(v, captures) for v in value]
    if isinstance(value, str) and not re.search(r"\$\{|\{\{", value):
        return captures.value(value) or value
    return value


def _note_sent(entry: HarEntry, body: Any, captures: Captures) -> None:
    """Values this request sent: a response echoing them later is not their source."""
    parts = urlsplit(entry.url)
    for segment in parts.path.split("/"):
        captures.note_sent(int(segment) if segment.isdigit() and len(segment) < 19 else segment)
    for _, value in parse_qsl(parts.query, keep_blank_values=True):
        captures.note_sent(value)
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            captures.note_sent(item)
