"""Login detection in a recording: the request that made the session, turned into `login:`.

Two shapes are recognised, the two the scenario format runs once per user before its tasks:
- a token login: a POST/PUT whose JSON response holds a value that later requests send as
  `Authorization: <scheme> <value>` -> `login: {token: ...}` with the value's JMESPath;
- a form login: a form POST whose response sets a cookie -> `login: {form: ...}` (the
  session's cookie jar then carries the cookie, as the browser's did).
Only requests that look like a login (a secret-named field, or a login-like path) qualify,
so an ordinary POST that happens to set a tracking cookie is not mistaken for one.  The
credentials in the body become `${LOGIN_...}` references.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from workload.authoring.har import HarEntry
from workload.authoring.harvalues import SECRET_NAME, Body, Secrets, body_of, json_leaves, response_json, secret_body
from workload.scenario.schema import DEFAULT_TOKEN_SCHEME

LOGIN_PATH = re.compile(r"log[-_]?in|sign[-_]?in|auth|session|token", re.I)
MIN_TOKEN_CHARS = 8


@dataclass(frozen=True)
class LoginFound:
    entry: HarEntry
    spec: dict[str, Any]  # the scenario's `login:` mapping
    token: str | None = None  # the recorded token value (later Authorization headers carry it)
    scheme: str = ""


HostKey = Callable[[str], dict[str, str]]  # a URL -> {"host": name} for a named host, else {}


def detect_login(kept: list[HarEntry], secrets: Secrets, host_key: HostKey) -> LoginFound | None:
    """The first request in `kept` that logged in, as a `login:` spec; None when there is none."""
    for i, entry in enumerate(kept):
        body = body_of(entry)
        if entry.method not in ("POST", "PUT") or body is None or body.kind == "body":
            continue
        if not _looks_like_login(entry, body):
            continue
        found = _token_login(entry, body, kept[i + 1:], secrets, host_key) or \
            _form_login(entry, body, secrets, host_key)
        if found:
            return found
    return None


def _looks_like_login(entry: HarEntry, body: Body) -> bool:
    keys = body.value.keys() if isinstance(body.value, dict) else ()
    return any(SECRET_NAME.search(str(k)) for k in keys) or bool(LOGIN_PATH.search(urlsplit(entry.url).path))


def _token_login(entry: HarEntry, body: Body, later: list[HarEntry], secrets: Secrets,
                 host_key: HostKey) -> LoginFound | None:
    sent = {v for e in later for k, v in e.headers if k.lower() == "authorization"}
    for path, value in json_leaves(response_json(entry)):
        if not isinstance(value, str) or len(value) < MIN_TOKEN_CHARS:
            continue
        scheme = next((s.split(" ", 1)[0] for s in sent if s.endswith(" " + value)), None)
        if scheme is None:
            continue
        secrets.remember("LOGIN", "token", value)
        spec: dict[str, Any] = {"method": entry.method, "path": urlsplit(entry.url).path or "/",
                                **host_key(entry.url), body.kind: secret_body(body.value, secrets, "LOGIN"),
                                "token": path}
        if scheme != DEFAULT_TOKEN_SCHEME:
            spec["scheme"] = scheme
        return LoginFound(entry, {"token": spec}, value, scheme)
    return None


def _form_login(entry: HarEntry, body: Body, secrets: Secrets,
                host_key: Callable[[str], dict[str, str]]) -> LoginFound | None:
    sets_cookie = entry.set_cookies or any(k.lower() == "set-cookie" for k, _ in entry.response_headers)
    if body.kind != "form" or not sets_cookie:
        return None
    fields = {str(k): str(v) for k, v in secret_body(body.value, secrets, "LOGIN").items()}
    spec: dict[str, Any] = {"path": urlsplit(entry.url).path or "/", **host_key(entry.url), "fields": fields}
    if entry.method != "POST":
        spec = {"method": entry.method, **spec}
    if not 300 <= entry.status < 400:  # a login that redirects is followed: its final status differs
        spec["expect"] = {"status": entry.status}
    return LoginFound(entry, {"form": spec})
