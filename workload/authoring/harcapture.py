"""Captured values: a value a response returned that a later request sends back.

A browser session is full of them: the id of the item just created, in the next URL; a CSRF
token from one response, in the next form.  Replaying the recorded value would fail (or hit
the same item every time), so the step whose response held it gets a `capture:` (its JSON
path) and the later request a `{{ name }}` reference.  Values the client sent itself before
(echoed back by the server) are not captures.  Numbers are matched only as whole URL path
segments, strings of at least `MIN_CHARS` as whole values, so a `limit: 5` is never mistaken
for a `count: 5`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from workload.authoring.harvalues import json_leaves
from workload.scenario.template_sandbox import BUILTIN_NAMES

MIN_CHARS = 4
MAX_KNOWN = 100_000  # response values remembered at most: bounds memory on a long recording
RESERVED = {"user", "loop", *BUILTIN_NAMES}
Key = tuple[str, Any]  # ("s", text) or ("i", number)


@dataclass
class Captures:
    """Response values seen so far (latest first) and the captures handed out."""

    known: dict[Key, tuple[int, str, str]] = field(default_factory=dict)  # value -> (step, path, url)
    sent: set[Key] = field(default_factory=set)  # values requests sent before their response came
    names: dict[tuple[int, str], str] = field(default_factory=dict)  # (step, path) -> name
    by_step: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)  # step -> capture: spec

    def learn(self, step: int, url: str, data: Any) -> None:
        """Remember the response of `step` (parsed JSON) as a source of later values."""
        if len(self.known) >= MAX_KNOWN:
            return
        for path, value in json_leaves(data):
            key = _key(value)
            if key is not None and key not in self.sent:
                self.known[key] = (step, path, url)

    def note_sent(self, value: Any) -> None:
        key = _key(value)
        if key is not None:
            self.sent.add(key)

    def segment(self, text: str) -> str | None:
        """`{{ name }}` for a URL path segment a response returned, else None."""
        return self._reference(("i", int(text)) if text.isdigit() and len(text) < 19 else ("s", text))

    def value(self, text: str) -> str | None:
        """`{{ name }}` for a whole string value (query, header, body) a response returned, else None."""
        return self._reference(("s", text)) if len(text) >= MIN_CHARS else None

    def _reference(self, key: Key) -> str | None:
        source = self.known.get(key)
        if source is None:
            return None
        step, path, url = source
        name = self.names.get((step, path))
        if name is None:
            name = self._new_name(path, url)
            self.names[(step, path)] = name
            self.by_step.setdefault(step, {})[name] = {"json": path}
        return "{{ " + name + " }}"

    def _new_name(self, path: str, url: str) -> str:
        key = _identifier(re.split(r"[.\[]", path.replace('"', ""))[-1].rstrip("]")) or "value"
        segments = [s for s in urlsplit(url).path.split("/") if s and not s.isdigit()]
        resource = _identifier(segments[-1]).removesuffix("s") if segments else ""
        base = key if not resource or key.startswith(resource) else f"{resource}_{key}"
        base = f"captured_{base}" if base in RESERVED else base
        taken = set(self.names.values())
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        return name


def _key(value: Any) -> Key | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return ("i", value)
    if isinstance(value, str) and len(value) >= MIN_CHARS:
        return ("s", value)
    return None


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    return f"v_{name}" if name[:1].isdigit() else name
