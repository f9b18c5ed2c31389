"""HAR files: a browser recording read in bounded time and memory, checked, turned into entries.

A HAR (HTTP Archive 1.2) is JSON that browsers save from their network panel; it may be large,
hand-edited, truncated or not a HAR at all.  It is read like a scenario file (size limit, UTF-8,
`workload.scenario.textfile`), parsed with the standard library (a nesting too deep for it is an
error, not a crash), and checked against `HAR_SCHEMA` (the subset the import reads) with
jsonschema.  Every problem names the file, the JSON path (`log.entries[3].request.url`), what is
wrong and the fix, as a `HarError` (exit code 2).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from workload.errors import HarError, Problem, ScenarioError
from workload.scenario.textfile import TextFile, read_text

MAX_HAR_BYTES = 64 * 1024 * 1024  # 64 MiB: a long session with bodies embedded; parsing stays < 1 GB
MAX_ENTRIES = 5000  # requests in one recording: a scenario with more steps is no longer readable
MAX_PROBLEMS = 10  # shown at once; the rest are counted
HAR_FIX = "give a HAR 1.2 file as a browser saves it (DevTools > Network > 'Save all as HAR')"
HAR_FILE = TextFile("the HAR file", "", "check the path of the .har file", MAX_HAR_BYTES)

_HEADERS = {"type": "array", "items": {"type": "object", "required": ["name", "value"],
                                       "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}}
HAR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["log"],
    "properties": {"log": {
        "type": "object", "required": ["entries"],
        "properties": {"entries": {"type": "array", "items": {"$ref": "#/$defs/entry"}}}}},
    "$defs": {"entry": {
        "type": "object", "required": ["startedDateTime", "request", "response"],
        "properties": {
            "startedDateTime": {"type": "string"},
            "time": {"type": "number"},  # some tools write -1 for "unknown": read as 0
            "request": {
                "type": "object", "required": ["method", "url", "headers"],
                "properties": {
                    "method": {"type": "string"}, "url": {"type": "string"}, "headers": _HEADERS,
                    "postData": {"type": "object", "properties": {
                        "mimeType": {"type": "string"}, "text": {"type": "string"}, "params": _HEADERS}}}},
            "response": {
                "type": "object", "required": ["status", "headers"],
                "properties": {
                    "status": {"type": "integer"}, "headers": _HEADERS, "cookies": _HEADERS,
                    "content": {"type": "object", "properties": {
                        "mimeType": {"type": "string"}, "text": {"type": "string"},
                        "encoding": {"type": "string"}}}}}}}},
}
_VALIDATOR = Draft202012Validator(HAR_SCHEMA)

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class HarEntry:
    """One recorded request and its response, as the import uses them."""

    index: int  # position in log.entries (names the entry in messages)
    started: float  # seconds since the epoch
    duration: float  # seconds the request took (HAR `time`)
    method: str
    url: str
    headers: Pairs
    body_mime: str
    body_text: str | None
    body_params: Pairs
    status: int
    response_headers: Pairs
    set_cookies: Pairs  # (name, value) of every cookie the response sets
    response_mime: str
    response_text: str | None  # None when not recorded or base64 (binary)


def read_har(path: str) -> list[HarEntry]:
    """The entries of the HAR file at `path` in recorded order, or a `HarError`."""
    try:
        text = read_text(path, HAR_FILE)
    except ScenarioError as exc:
        raise HarError(exc.problems) from exc
    return entries_of(parse_json(text, path), path)


def parse_json(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _error(path, exc.lineno, "", f"not JSON: {exc.msg} (column {exc.colno})",
                     f"{HAR_FIX}; a cut-off download also ends like this") from exc
    except RecursionError as exc:
        raise _error(path, None, "", "the JSON is nested too deeply to be a HAR file",
                     HAR_FIX) from exc


def entries_of(data: Any, path: str) -> list[HarEntry]:
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise HarError(_problems(errors, path))
    raw = data["log"]["entries"]
    if not raw:
        raise _error(path, None, "log.entries", "the recording has no requests",
                     "record again with the network panel open from the first page load")
    if len(raw) > MAX_ENTRIES:
        raise _error(path, None, "log.entries", f"{len(raw):,} requests: more than the limit of {MAX_ENTRIES:,}",
                     "record a shorter session (one user journey), or split the file")
    return [_entry(i, e, path) for i, e in enumerate(raw)]


def json_path(parts: Iterable[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _problems(errors: list[ValidationError], path: str) -> list[Problem]:
    problems = [Problem(path, None, json_path(e.absolute_path), _what(e), HAR_FIX) for e in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        problems.append(Problem(path, None, "", f"{len(errors) - MAX_PROBLEMS} more problems not shown",
                                "fix the ones above first"))
    return problems


def _what(error: ValidationError) -> str:
    # jsonschema's own message quotes the whole value, which may be megabytes: name its type instead.
    if error.validator == "type":
        return f"expected {_article(str(error.validator_value))}, got {_article(_json_type(error.instance))}"
    if error.validator == "required":
        wanted = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [k for k in wanted if isinstance(error.instance, dict) and k not in error.instance]
        return f"missing key '{missing[0]}'" if missing else "a required key is missing"
    return error.message[:200]


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _entry(index: int, raw: dict[str, Any], path: str) -> HarEntry:
    request, response = raw["request"], raw["response"]
    post, content = request.get("postData") or {}, response.get("content") or {}
    text = content.get("text")
    return HarEntry(
        index=index, started=_started(raw["startedDateTime"], index, path),
        duration=max(0.0, float(raw.get("time") or 0)) / 1000.0,
        method=request["method"].upper(), url=request["url"], headers=_pairs(request["headers"]),
        body_mime=post.get("mimeType", ""), body_text=post.get("text"), body_params=_pairs(post.get("params", [])),
        status=response["status"], response_headers=_pairs(response["headers"]),
        set_cookies=_pairs(response.get("cookies", [])), response_mime=content.get("mimeType", ""),
        response_text=None if content.get("encoding") == "base64" else text)


def _started(text: str, index: int, path: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError as exc:
        raise _error(path, None, f"log.entries[{index}].startedDateTime",
                     f"not an ISO 8601 date and time: {text[:40]!r}",
                     "write it as browsers do, e.g. 2026-01-31T12:00:00.000Z") from exc


def _pairs(items: list[dict[str, str]]) -> Pairs:
    return tuple((item["name"], item["value"]) for item in items)


def _error(path: str, line: int | None, key: str, what: str, fix: str) -> HarError:
    return HarError([Problem(path, line, key, what, fix)])
