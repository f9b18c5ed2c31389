"""Fault causes: a failed request's error text, normalised, bounded and classified into a cause.

Locust records failures as the repr of an exception or our own message; grouping them by
cause (refused, reset, timeout, protocol, HTTP status, ...) tells an operator what the
target or the client ran into.  Error texts are normalised before they become Locust error
keys (addresses, ports, long numbers, hex, byte dumps, URLs replaced by placeholders), and
a process keeps at most `DEFAULT_MAX_ERROR_ROWS` distinct error rows: any further distinct
error is counted in one overflow row per (request, cause), so a target answering garbage
cannot grow the results without bound.  No locust import: the cap wraps any object with
Locust's `RequestStats.log_error(method, name, error)` and `errors` shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

CAUSES = ("redirect_offsite", "ports_exhausted", "refused", "reset", "timeout", "tls", "protocol",
          "http_status", "expectation", "other")
DEFAULT_MAX_ERROR_ROWS = 50  # distinct error rows per process before the overflow rows take over
MAX_ERROR_CHARS = 300  # an error text longer than this is cut (the cause is read before cutting)
_SCAN_CHARS = 4000  # normalisation reads at most this much of an error text: bounded time

_OVERFLOW = re.compile(r"^overflow \((\w+)\): ")
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("redirect_offsite", re.compile(r"redirect_offsite|RedirectOffsite")),
    ("ports_exhausted", re.compile(r"Errno 99|Cannot assign requested address|EADDRNOTAVAIL", re.I)),
    ("refused", re.compile(r"Errno 111|Connection refused|ECONNREFUSED", re.I)),
    # Before `reset`: a malformed answer arrives as ProtocolError('Connection aborted.', BadStatusLine(..)).
    ("protocol", re.compile(r"IncompleteRead|Connection broken|BadStatusLine|LineTooLong|InvalidChunkLength|"
                            r"ChunkedEncodingError|ContentDecodingError|HeaderParsingError|UnknownProtocol|"
                            r"InvalidHeader|got more than \d+ bytes|HTTPParseError", re.I)),
    ("reset", re.compile(r"Errno 104|Connection reset|ConnectionResetError|RemoteDisconnected|"
                         r"Connection aborted|BrokenPipe|ProtocolError|HTTPConnectionClosed", re.I)),
    ("timeout", re.compile(r"timed? ?out|Timeout", re.I)),
    ("tls", re.compile(r"SSLError|SSL:|CERTIFICATE", re.I)),
    ("http_status", re.compile(r"^HTTP \d{3}|\b\d{3} (Client|Server) Error|expected status|"
                               r"BadStatusCode\(code=\d{3}", re.I)),  # the last: engine fast
    ("expectation", re.compile(r"expected|capture '|login: no token|template variable", re.I)),
)

# (pattern, replacement), applied in order.  Quoted text holding escapes or non-ASCII is a
# dump of what came off the wire; 1–3 digit numbers stay (status codes, errno values).
_NORMALISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"""((?<!\w)b)?('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""), ""),  # replaced by _quoted
    (re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>"), r"<\1 object>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "0x…"),
    (re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"()<>]+"), "<url>"),
    (re.compile(r"\burl: (?!<url>)[^\s'\"]+"), "url: <url>"),
    (re.compile(r"host='[^']*'"), "host='<host>'"),
    (re.compile(r"\bport=\d+"), "port=<port>"),
    (re.compile(r"\[[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\](?::\d+)?"), "<address>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<address>"),
    (re.compile(r"\b\d+ bytes read, \d+ more expected"), "N bytes read, N more expected"),
    (re.compile(r"\b\d{4,}\b"), "N"),
)
_DUMP = re.compile(r"\\[xuUrnt0]|[^\x20-\x7e]")


def classify(error: str) -> str:
    overflow = _OVERFLOW.match(error)
    if overflow and overflow.group(1) in CAUSES:
        return overflow.group(1)
    for cause, pattern in _RULES:
        if pattern.search(error):
            return cause
    return "other"


def by_cause(errors: list[dict[str, Any]]) -> dict[str, int]:
    """Occurrences per cause, from run.json `stats.errors` rows."""
    totals: dict[str, int] = {}
    for row in errors:
        cause = str(row.get("cause") or classify(str(row.get("error", ""))))
        totals[cause] = totals.get(cause, 0) + int(row.get("occurrences", 0) or 0)
    return totals


def _quoted(match: re.Match[str]) -> str:
    prefix, literal = match.group(1) or "", match.group(2)
    inside = literal[1:-1]
    if prefix == "b" or (_DUMP.search(inside) and "Error(" not in inside):
        return f"{prefix}'…'"  # one quote style, so dumps needing either quote make one row
    # A message quoting a nested error (MaxRetryError("... BadStatusLine('...')")): look inside.
    return f"{prefix}{literal[0]}{_NORMALISE[0][0].sub(_quoted, inside)}{literal[0]}"


def normalise(text: str) -> str:
    """`text` with what varies per response (addresses, ports, ids, dumps) replaced by placeholders."""
    text = text[:_SCAN_CHARS]
    quoted, *rest = _NORMALISE
    text = quoted[0].sub(_quoted, text)
    for pattern, replacement in rest:
        text = pattern.sub(replacement, text)
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


def error_text(error: object) -> str:
    """The text an error row shows: our own messages as written, exceptions as a normalised repr."""
    if isinstance(error, str):
        return normalise(error)
    if type(error).__name__ == "CatchResponseError" and getattr(error, "args", None):
        return normalise(str(error.args[0]))  # type: ignore[attr-defined]
    if getattr(error, "workload_fault", False):
        return str(error)[:MAX_ERROR_CHARS]  # written by us, bounded and meant to name its host
    if type(error).__module__.startswith("workload."):
        return normalise(str(error))  # our own exceptions carry a readable message
    return normalise(repr(error))


def overflow_text(cause: str, limit: int = DEFAULT_MAX_ERROR_ROWS) -> str:
    return f"overflow ({cause}): further distinct errors beyond the first {limit} error rows"


def install_error_cap(stats: Any, limit: int = DEFAULT_MAX_ERROR_ROWS) -> None:
    """Make `stats.log_error` normalise error texts and cap distinct rows (idempotent)."""
    original: Callable[[str, str, object], None] = stats.log_error
    if getattr(original, "workload_capped", False):
        return

    def log_error(method: str, name: str, error: object) -> None:
        text = error_text(error)
        rows = stats.errors.values()
        if len(stats.errors) >= limit and not any(
                r.error == text and r.name == name and r.method == method for r in rows):
            text = overflow_text(classify(text), limit)
        original(method, name, text)

    log_error.workload_capped = True  # type: ignore[attr-defined]
    # An instance attribute, not a patch of Locust's class: only this environment's stats change.
    stats.log_error = log_error
