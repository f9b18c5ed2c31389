"""Fault causes: a failed request's error text classified into a cause a person can act on.

Locust records failures as the repr of an exception or our own message; grouping them by
cause (refused, reset, timeout, HTTP status, ports exhausted, ...) tells an operator what
the target or the client ran into.  Ordered: the first matching rule wins.
"""

from __future__ import annotations

import re

CAUSES = ("ports_exhausted", "refused", "reset", "timeout", "tls", "http_status", "expectation", "other")

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ports_exhausted", re.compile(r"Errno 99|Cannot assign requested address|EADDRNOTAVAIL", re.I)),
    ("refused", re.compile(r"Errno 111|Connection refused|ECONNREFUSED", re.I)),
    ("reset", re.compile(r"Errno 104|Connection reset|ConnectionResetError|RemoteDisconnected|"
                         r"Connection aborted|BrokenPipe|ProtocolError", re.I)),
    ("timeout", re.compile(r"timed? ?out|Timeout", re.I)),
    ("tls", re.compile(r"SSLError|SSL:|CERTIFICATE", re.I)),
    ("http_status", re.compile(r"^HTTP \d{3}|\b\d{3} (Client|Server) Error|expected status", re.I)),
    ("expectation", re.compile(r"expected|capture '|login: no token|template variable", re.I)),
)


def classify(error: str) -> str:
    for cause, pattern in _RULES:
        if pattern.search(error):
            return cause
    return "other"


def by_cause(errors: list[dict[str, object]]) -> dict[str, int]:
    """Occurrences per cause, from run.json `stats.errors` rows."""
    totals: dict[str, int] = {}
    for row in errors:
        cause = str(row.get("cause") or classify(str(row.get("error", ""))))
        totals[cause] = totals.get(cause, 0) + int(row.get("occurrences", 0) or 0)
    return totals
