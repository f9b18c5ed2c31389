"""Recorded values: request bodies and response JSON read safely, secrets turned into `${ENV}`.

A recording holds the very secrets a scenario must never contain: the password typed into the
login form, session cookies, Bearer tokens, API keys.  `Secrets` hands out one `${NAME}`
reference per secret value (the scenario reads it from the environment when it runs) and, as
a last pass over the whole scenario, replaces any secret value that still appears anywhere.
Recorded literal text is escaped so that `{{` or `${` in it is sent as written, not evaluated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from workload.authoring.har import HarEntry

SECRET_NAME = re.compile(r"pass|pwd|secret|token|api[-_]?key|^key$|auth(?!ors?(?:\b|_))|session|sid$|credential|cookie|"
                         r"signature|^sig$|jwt|bearer|private|otp", re.I)
USER_NAME = re.compile(r"^(user(name)?|login|e-?mail|account)$", re.I)
MIN_SCRUB_CHARS = 4  # shorter values ("1", "on") would be replaced everywhere they happen to occur
MAX_BODY_CHARS = 1024 * 1024  # bodies larger than this are not searched for values
MAX_DEPTH = 16
MAX_LEAVES = 2000
_TEMPLATE_OPENERS = re.compile(r"\{\{|\{%|\{#|\$\{")
_ESCAPED = {"{{": "{{ '{{' }}", "{%": "{{ '{%' }}", "{#": "{{ '{#' }}", "${": "{{ '$' }}{"}


@dataclass
class Secrets:
    """Secret values met in the recording and the environment variable that stands for each."""

    env_of: dict[str, str] = field(default_factory=dict)  # value -> NAME
    value_of: dict[str, str] = field(default_factory=dict)  # NAME -> value
    used: list[str] = field(default_factory=list)  # NAMEs the scenario references, in order

    def ref(self, kind: str, name: str, value: str) -> str:
        """`${KIND_NAME}` for `value` (the same reference for the same value)."""
        env = self.remember(kind, name, value)
        if env not in self.used:
            self.used.append(env)
        return "${" + env + "}"

    def remember(self, kind: str, name: str, value: str) -> str:
        """Note a secret value (e.g. a cookie the server set) without using it yet; its NAME."""
        if value in self.env_of:
            return self.env_of[value]
        base = f"{kind}_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').upper() or 'VALUE'}"
        env, n = base, 2
        while env in self.value_of:
            env, n = f"{base}_{n}", n + 1
        self.env_of[value], self.value_of[env] = env, value
        return env

    def scrub(self, data: Any) -> Any:
        """`data` with every secret value left anywhere in a string replaced by its reference."""
        if isinstance(data, str):
            return self.scrub_text(data)
        if isinstance(data, dict):
            return {self.scrub(k): self.scrub(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.scrub(v) for v in data]
        return data

    def scrub_text(self, text: str) -> str:
        for value in sorted(self.env_of, key=len, reverse=True):  # longest first: no partial overlap
            if len(value) >= MIN_SCRUB_CHARS and value in text:
                text = text.replace(value, "${" + self._use(value) + "}")
        return text

    def _use(self, value: str) -> str:
        env = self.env_of[value]
        if env not in self.used:
            self.used.append(env)
        return env


def escape(text: str) -> str:
    """Recorded text as a scenario value that sends exactly it (no template, no `${ENV}`)."""
    return _TEMPLATE_OPENERS.sub(lambda m: _ESCAPED[m.group()], text)


def parse_json_text(text: str | None) -> Any:
    """Parsed JSON, or None when absent, too large, not JSON or nested too deeply."""
    if text is None or len(text) > MAX_BODY_CHARS:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


@dataclass(frozen=True)
class Body:
    """A request body as a scenario writes it: `json`, `form` or raw `body` text."""

    kind: str
    value: Any
    mime: str


def body_of(entry: HarEntry) -> Body | None:
    if entry.body_text is None and not entry.body_params:
        return None
    mime = entry.body_mime.split(";")[0].strip().lower()
    if "json" in mime and (parsed := parse_json_text(entry.body_text)) is not None:
        return Body("json", parsed, mime)
    if mime == "application/x-www-form-urlencoded":
        pairs = list(entry.body_params) or parse_qsl(entry.body_text or "", keep_blank_values=True)
        return Body("form", dict(pairs), mime)
    return Body("body", entry.body_text or "", entry.body_mime)


def json_leaves(data: Any) -> list[tuple[str, Any]]:
    """(JMESPath, value) of the scalar leaves of parsed JSON, bounded in depth and count."""
    found: list[tuple[str, Any]] = []

    def walk(value: Any, path: str, depth: int) -> None:
        if len(found) >= MAX_LEAVES or depth > MAX_DEPTH:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{_key(key)}" if path else _key(key), depth + 1)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", depth + 1)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            found.append((path, value))

    walk(data, "", 0)
    return found


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else json.dumps(key)


def response_json(entry: HarEntry) -> Any:
    text = entry.response_text
    if text is None or not ("json" in entry.response_mime.lower() or text.lstrip()[:1] in ("{", "[")):
        return None
    return parse_json_text(text)


def secret_body(value: Any, secrets: Secrets, kind: str, key: str = "") -> Any:
    """A JSON/form body with the values under secret (or username) keys replaced by `${ENV}`."""
    if isinstance(value, dict):
        return {k: secret_body(v, secrets, kind, k) for k, v in value.items()}
    if isinstance(value, list):
        return [secret_body(v, secrets, kind, key) for v in value]
    named = key and (SECRET_NAME.search(key) or (kind == "LOGIN" and USER_NAME.match(key)))
    if named and isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return secrets.ref(kind, key, str(value))
    return escape(value) if isinstance(value, str) else value
