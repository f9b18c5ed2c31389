"""Secrets: the registry of values that must never leave the process, and `redact`.

A scenario's secrets are known where they enter: `${ENV}` values as they are substituted,
credentials rows as they are read, secret-looking document values (headers, query and form
fields, variables named like a key/token/password, preset cookies, `user:password@` in
URLs, login fields) when the document is loaded, and tokens captured at run time.  Every
exit (run.json, CSVs, HTML, JUnit, Markdown, logs, the console, the web UI) passes its text
through `redact`, which replaces each registered value, and its URL-, JSON- and
HTML-encoded forms, with `MASK`.

What is not registered (see `worth_registering`): values shorter than `MIN_SECRET_LEN`,
numbers, durations and addresses, and a few common words: masking those would destroy
figures and text everywhere.  Usernames and other identity fields are not secrets.

(Not to be confused with the standard library's `secrets`: always imported as
`workload.redaction`.)
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

log = logging.getLogger(__name__)
MASK = "***"
MIN_SECRET_LEN = 4
# Bounds the memory and the regex compilation (about 0.15 s per 1,000 forms) of a long run
# that captures a new token per request; past it, new values are not masked (a warning says so).
MAX_SECRET_FORMS = 20_000
# Words that a scenario writes around secrets (schemes, switches); never secrets themselves.
NOT_SECRET_WORDS = frozenset({"true", "false", "none", "null", "yes", "no", "on", "off", "demo", "localhost",
                              "bearer", "basic", "token", "digest", "http", "https", "session", "cookie"})
# Numbers, durations, times and IPv4 addresses: "8080", "1.5", "30s", "10:30", "127.0.0.1".
PLAIN_VALUE = re.compile(r"[\d.:,_+\- ]+(?:ms|s|m|h|d)?", re.IGNORECASE)
# A header, field, variable or capture with such a name carries a secret.
SECRET_NAME = re.compile(r"auth|token|secret|passw|pwd|key|cookie|session|csrf|xsrf|jwt|credential|signature"
                         r"|bearer|otp|pin\b", re.IGNORECASE)
# Credentials columns that identify a user rather than authenticate one.
IDENTITY_FIELDS = frozenset({"username", "user", "user_name", "login", "email", "name", "id", "user_id",
                             "account", "tenant", "role", "group"})
AUTH_SCHEME = re.compile(r"[A-Za-z][\w-]*\s+(\S+)")  # an Authorization value: scheme, credential
TEMPLATE_PART = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
# Sections whose values are expressions, not data (JMESPath, regexes, expected values).
NOT_DATA_KEYS = frozenset({"capture", "expect", "thresholds", "policies", "load"})
# Where a `${ENV}` value names or configures something rather than carrying data.
STRUCTURAL_SECTIONS = frozenset({"name", "default_policy", "policies", "load", "wait", "thresholds"})
STRUCTURAL_KEYS = frozenset({"host", "method", "weight", "name", "verify", "cert", "type"})
# Sections registered field by field (`register_document`), not by the name rule.
OWN_RULE_KEYS = frozenset({"login", "credentials", "cookies"})


def worth_registering(value: str) -> bool:
    """Whether masking `value` everywhere is safe and useful (see the module docstring)."""
    text = value.strip()
    return (len(text) >= MIN_SECRET_LEN and text.lower() not in NOT_SECRET_WORDS
            and not PLAIN_VALUE.fullmatch(text))


def encoded_forms(value: str) -> set[str]:
    """`value` as it may appear in a URL, JSON, CSV or HTML (Locust's report embeds JSON in HTML)."""
    as_json = json.dumps(value)[1:-1]
    forms = {value, quote(value, safe=""), quote(value), quote_plus(value), quote(value, safe="/:@!$&'()*+,;=~"),
             as_json, json.dumps(value, ensure_ascii=False)[1:-1], html.escape(value), html.escape(value, quote=False),
             as_json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("'", "\\u0027"),
             value.replace('"', '""')}
    return {form for form in forms if len(form) >= MIN_SECRET_LEN}


class Registry:
    """A growing set of secrets and the compiled patterns that mask them.

    Patterns are kept in levels of doubling size (like a binary counter), so registering
    tokens one by one during a run costs O(n log n) compilation in all, not O(n) per log line."""

    def __init__(self) -> None:
        self._forms: set[str] = set()
        self._pending: list[str] = []
        self._levels: list[tuple[list[str], re.Pattern[str]]] = []
        self._lock = threading.Lock()
        self._full = False

    def add(self, value: str) -> None:
        if not isinstance(value, str) or not worth_registering(value):
            return
        with self._lock:
            new = encoded_forms(value) - self._forms
            full = len(self._forms) + len(new) > MAX_SECRET_FORMS
            if not full:
                self._forms.update(new)
                self._pending.extend(new)
        if full:
            self._warn_full()  # outside the lock: the log filter redacts, which takes it

    def _warn_full(self) -> None:
        if not self._full:
            self._full = True
            log.warning("over %d secret values registered: later captured tokens are not masked in outputs",
                        MAX_SECRET_FORMS)

    def __contains__(self, value: object) -> bool:
        return value in self._forms

    def __len__(self) -> int:
        return len(self._forms)

    def clear(self) -> None:
        with self._lock:
            self._forms.clear()
            self._pending.clear()
            self._levels.clear()
            self._full = False

    def _patterns(self) -> list[re.Pattern[str]]:
        with self._lock:
            if self._pending:
                words, self._pending = self._pending, []
                while self._levels and len(self._levels[-1][0]) <= len(words):
                    words = self._levels.pop()[0] + words
                self._levels.append((words, re.compile(trie_pattern(words))))
            return [pattern for _, pattern in self._levels]

    def redact(self, text: str) -> str:
        if not text or not (self._forms):
            return text
        patterns = self._patterns()
        if len(patterns) == 1:
            return patterns[0].sub(MASK, text)
        return _mask_spans(text, sorted(m.span() for p in patterns for m in p.finditer(text)))


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with every span (overlapping ones merged) replaced by one `MASK`."""
    out, done = [], 0
    for start, end in spans:
        if end <= done:
            continue
        if start < done:
            start = done  # overlaps the previous mask: extend it
        else:
            out.append(text[done:start] + MASK)
        done = end
    out.append(text[done:])
    return "".join(out)


def trie_pattern(words: Iterable[str]) -> str:
    """One regex matching any of `words`, the longest at a position (a prefix trie, so a
    search costs about the length of the text, not the number of words)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _node_pattern(root)


def _node_pattern(node: dict[str, Any]) -> str:
    branches = []
    for char in sorted(k for k in node if k):
        chain, child = [char], node[char]
        while len(child) == 1 and "" not in child:  # a run of single children: one literal
            (next_char, child), = child.items()
            chain.append(next_char)
        branches.append(re.escape("".join(chain)) + _node_pattern(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if "" in node else body


REGISTRY = Registry()


def redact(text: str) -> str:
    """`text` with every registered secret (raw or encoded) replaced by `MASK`."""
    return REGISTRY.redact(text)


def redact_data(data: Any) -> Any:
    """Redact every string (keys included) inside nested dicts and lists, in place; returns `data`."""
    if isinstance(data, dict):
        for key in list(data):
            value = redact_data(data.pop(key))
            data[redact(key) if isinstance(key, str) else key] = value
        return data
    if isinstance(data, list):
        data[:] = [redact_data(item) for item in data]
        return data
    return redact(data) if isinstance(data, str) else data


# -- registering ----------------------------------------------------------------------------
def register(value: Any) -> None:
    """Register one secret value (ignored if not a string or not worth masking)."""
    if isinstance(value, str):
        REGISTRY.add(value)
        REGISTRY.add(value.strip())
        if scheme := AUTH_SCHEME.fullmatch(value.strip()):  # "Bearer abc": abc alone is secret too
            REGISTRY.add(scheme.group(1))


def register_literal(value: Any) -> None:
    """A value written in the scenario: its text outside `{{ ... }}` templates (a template's
    result is registered where it is known, e.g. a captured token)."""
    if isinstance(value, str):
        for part in TEMPLATE_PART.split(value):
            register(part)


def register_env(value: str, path: tuple[str | int, ...] = ()) -> None:
    """A substituted `${ENV}` value at key `path`: a secret, except that of a URL (e.g.
    `${TARGET_URL}`) only the userinfo is, and a value that names or configures something
    (`STRUCTURAL_SECTIONS`, `STRUCTURAL_KEYS`) is not: masking a policy name would break results."""
    if "://" in value and urlsplit(value).scheme in ("http", "https"):
        register_userinfo(value)
    elif not (path and str(path[0]) in STRUCTURAL_SECTIONS) and not STRUCTURAL_KEYS.intersection(map(str, path)):
        register(value)


def register_userinfo(url: str) -> None:
    """`user:password@` in a URL: the password, and user:password as sent in Basic auth."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if password:
        register(password)
        register_basic(user or "", password)


def register_basic(username: str, password: str) -> None:
    register(password)
    register(f"{username}:{password}")
    register(base64.b64encode(f"{username}:{password}".encode()).decode("ascii"))


def register_credentials(rows: Iterable[dict[str, Any]]) -> None:
    """Every credentials field except those naming the user (see `IDENTITY_FIELDS`)."""
    for row in rows:
        for field, value in row.items():
            if str(field).strip().lower() not in IDENTITY_FIELDS:
                register(value)


def register_capture(name: str, source: str, value: Any) -> None:
    """A value captured at run time, when the capture's name or source looks like a secret."""
    if SECRET_NAME.search(name) or SECRET_NAME.search(source):
        register(value)


def register_document(data: Any) -> None:
    """A scenario document's secrets: secret-named values, userinfo, cookies, login fields."""
    if not isinstance(data, dict):
        return
    _walk(data, secret=False)
    target = data.get("target")
    if isinstance(target, dict) and isinstance(target.get("cookies"), list):
        for cookie in target["cookies"]:
            register_literal(cookie.get("value") if isinstance(cookie, dict) else None)
    login = data.get("login")
    if isinstance(login, dict):
        _register_login(login)
    credentials = data.get("credentials")
    if isinstance(credentials, dict) and isinstance(credentials.get("inline"), list):
        register_credentials(row for row in credentials["inline"] if isinstance(row, dict))


def _walk(value: Any, secret: bool) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key) not in NOT_DATA_KEYS | OWN_RULE_KEYS:
                _walk(item, secret or bool(SECRET_NAME.search(str(key))))
    elif isinstance(value, list):
        for item in value:
            _walk(item, secret)
    elif isinstance(value, str):
        if "://" in value:  # a URL (e.g. a host named `auth`): only its userinfo is secret
            register_userinfo(value)
        elif secret:
            register_literal(value)


def _register_login(login: dict[str, Any]) -> None:
    basic = login.get("basic")
    if isinstance(basic, dict) and isinstance(basic.get("password"), str):
        user = basic.get("username")
        register_basic(user if isinstance(user, str) and "{{" not in user else "", basic["password"])
    for kind, key in (("form", "fields"), ("token", "json"), ("token", "form")):
        section = login.get(kind)
        fields = section.get(key) if isinstance(section, dict) else None
        if isinstance(fields, dict):
            for field, value in fields.items():
                if str(field).lower() not in IDENTITY_FIELDS:
                    register_literal(value)
