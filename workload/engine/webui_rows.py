"""Connections-tab rows: the live figures in words, and the policy's expected behaviour.

The tab is a table of labelled rows (metric, measured, expected) built from the live
snapshot (`RunController.live()`): every section and key is shown, known keys with the
words and unit of `WORDS`, unknown ones readably (`tls_full` -> "TLS full"), so a
figure added to the snapshot appears without touching this module; giving it words is one
line in `WORDS`, a row computed from several figures one line in `DERIVED`.  Locust-free: pure functions on plain data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workload.telemetry.cluster import worker_rows

Row = dict[str, Any]

# "section.key" (or "key" for the top level) -> (words, unit).  One line per figure.
WORDS: dict[str, tuple[str, str]] = {
    "policy": ("Policy", ""),
    "engine": ("HTTP engine", ""),
    "connections.tcp_connects": ("TCP connects", "connections"),
    "connections.tls_handshakes": ("TLS handshakes completed", "handshakes"),
    "connections.tls_failures": ("TLS handshakes failed", "handshakes"),
    "connections.tls_resumed": ("TLS handshakes resumed", "handshakes"),
    "connections.tls_full": ("TLS full handshakes", "handshakes"),
    "connections.pool_discards": ("Connections discarded (pool full)", "connections"),
    "connections.connect_errors": ("Connect errors", "errors"),
    "connections.requests_per_connection": ("Requests per connection", ""),
    "connections.setup_ms": ("Connection setup time", "ms"),
    "connections.pool_waits": ("Requests that waited for a pooled connection", "requests"),
    "connections.protocols": ("Connections by protocol (ALPN)", "connections"),
    "connections.http2_connections": ("HTTP/2 connections", "connections"),
    "connections.http2_streams": ("HTTP/2 streams (requests)", "streams"),
    "connections.streams_per_connection": ("HTTP/2 streams per connection", ""),
    "sockets.time_wait_client": ("TIME_WAIT sockets, client side", "sockets"),
    "sockets.time_wait_server": ("TIME_WAIT sockets, server side", "sockets"),
    "sockets.established_client": ("Established connections, client side", "connections"),
    "sockets.established_server": ("Established connections, server side", "connections"),
    "sockets.source": ("Socket table read from", ""),
    "sockets.source_fallback": ("Socket table fallback", ""),
    "sockets.server_side_observable": ("Server side observable", ""),
    "sockets.samples": ("Socket table samples", "samples"),
    "arrival.offered_rate": ("Open model: offered rate", "iterations/s"),
    "arrival.achieved_rate": ("Open model: achieved rate", "iterations/s"),
    "arrival.scheduled": ("Open model: iterations scheduled", "iterations"),
    "arrival.dropped": ("Open model: dropped (max_in_flight reached)", "iterations"),
    "arrival.late": ("Open model: late starts", "iterations"),
    "arrival.lag_ms": ("Open model: start lag", "ms"),
    "arrival.in_flight": ("Open model: in flight now", "iterations"),
    "arrival.peak_in_flight": ("Open model: in flight at most", "iterations"),
    "arrival.response_time_ms": ("Open model: response time (from the intended start)", "ms"),
    "arrival.service_time_ms": ("Open model: service time (from the send)", "ms"),
    "generator.loop_lag_p50_ms": ("Load generator: event-loop lag p50", "ms"),
    "generator.loop_lag_p99_ms": ("Load generator: event-loop lag p99", "ms"),
    "generator.loop_lag_max_ms": ("Load generator: event-loop lag max", "ms"),
    "generator.cpu_percent": ("Load generator: CPU (busiest process, % of one core)", "%"),
    "generator.cpu_percent_max": ("Load generator: CPU, highest one-second sample", "%"),
    "generator.saturated": ("Load generator: the bottleneck (latency figures are its own)", ""),
    "generator.saturated_because": ("Load generator: saturated because", ""),
    "generator.processes": ("Load generator: processes measured", ""),
}
PLAIN_SECTIONS = frozenset({"connections", "sockets"})  # their keys need no section name in front
# Bookkeeping of the socket sampler, not figures a reader wants in the tab.
HIDDEN = frozenset({"workers", "sockets.t", "sockets.current", "sockets.running", "sockets.last_sample_ms",
                    "sockets.endpoints", "sockets.series", "arrival.histograms",
                    "generator.loop_lag_samples", "generator.loop_lag_interval_ms", "generator.lag_reports"})
ACRONYMS = {"tcp": "TCP", "tls": "TLS", "http": "HTTP", "http2": "HTTP/2", "h2": "HTTP/2", "ms": "ms",
            "rps": "req/s", "p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "alpn": "ALPN"}


def words(path: str) -> tuple[str, str]:
    """The words and unit for a figure; unknown keys humanised from their name."""
    if path in WORDS:
        return WORDS[path]
    key = path.rsplit(".", 1)[-1]
    text = " ".join(ACRONYMS.get(part, part) for part in key.split("_"))
    return text[:1].upper() + text[1:], ""


def show(value: Any, unit: str) -> str:
    """A figure as text: numbers with their unit, dicts as `key value` pairs, None as not measured."""
    if value is None:
        return "not measured yet"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = f"{value:.2f}"
    if isinstance(value, Mapping):
        if set(value) == {"peak", "end"}:  # a socket count over the run
            return "not observable (remote target)" if value["end"] is None else \
                f"now {value['end']}, peak {value['peak']} {unit}".rstrip()
        parts = [f"{_label(k)} {show(v, '' if k == 'count' else unit)}"
                 for k, v in value.items() if v is not None]
        return ", ".join(parts) if parts else "not measured yet"
    if isinstance(value, list):
        return ", ".join(show(v, "") for v in value)
    return f"{value} {unit}".rstrip()


def _label(key: Any) -> str:
    """A key inside a figure: a name humanised (`p95` -> "p95"), data kept as it is (`http/1.1`)."""
    text = str(key)
    return words(text)[0].lower() if text.isidentifier() else text


def _resumed_share(live: Mapping[str, Any]) -> str | None:
    """'97% (388 of 400 handshakes)', or '-' before the first completed TLS handshake."""
    conns = live.get("connections") or {}
    resumed, total = conns.get("tls_resumed") or 0, conns.get("tls_handshakes") or 0
    return f"{resumed / total:.0%} ({resumed} of {total} handshakes)" if total else "-"


# Rows computed from several figures: (words, function of the live snapshot -> text, or None to omit).
# TLS resumed share: always shown ("-" without handshakes), as h13a's TLS session work expects.
DERIVED: list[tuple[str, Callable[[Mapping[str, Any]], str | None]]] = [
    ("TLS resumed share", _resumed_share),
]


def derived_rows(live: Mapping[str, Any]) -> list[Row]:
    return [{"metric": label, "value": text, "expected": ""} for label, compute in DERIVED
            if (text := compute(live)) is not None]


def figure_rows(live: Mapping[str, Any]) -> list[Row]:
    """Every figure of the live snapshot as a worded row, sections flattened one level."""
    rows: list[Row] = []
    for section, content in live.items():
        if section in HIDDEN:
            continue
        if isinstance(content, Mapping):
            for key, value in content.items():
                path = f"{section}.{key}"
                if path not in HIDDEN:
                    label, unit = words(path)
                    if path not in WORDS and section not in PLAIN_SECTIONS:  # whose figure it is
                        label = f"{words(section)[0]}: {label[:1].lower()}{label[1:]}"
                    rows.append({"metric": label, "value": show(value, unit), "expected": ""})
        else:
            label, unit = words(section)
            rows.append({"metric": label, "value": show(content, unit), "expected": ""})
    return rows


@dataclass(frozen=True)
class Expectation:
    """What a policy should do to connections, in words, and the measured figure to compare."""

    text: str  # "1 connection per request"
    measured: str  # "1.00 connections per request"


def expectation(policy: Any, connects: int, requests: int, users: int) -> Expectation:
    """The policy's expected connection behaviour next to the measured one."""
    per_request = f"{connects / requests:.2f} connections per request" if requests else "no requests yet"
    kind = getattr(policy, "type", None)
    if kind in ("close", "fresh"):
        how = "closed after it" if kind == "close" else "a new session each"
        return Expectation(f"1 connection per request ({how})", per_request)
    if kind == "recycle":
        if policy.every_requests:
            n = policy.every_requests
            return Expectation(f"~1 connection per {n} requests (~{1 / n:.2f} per request)", per_request)
        return Expectation(f"~1 connection per user every {policy.every_seconds:g} s",
                           f"{connects} connections for {users} users")
    size = getattr(policy, "pool_maxsize", None)
    if getattr(policy, "scope", "user") == "process":
        return Expectation(f"at most {size} connections for the whole process (shared pool), then reuse",
                           f"{connects} connections in all")
    per_user = f"{connects / users:.2f} connections per user ({connects} for {users} users)" if users \
        else "no users yet"
    return Expectation(f"at most {size} connections per user (pool size), then reuse", per_user)


def policy_rows(name: str, policy: Any, connects: int, requests: int, users: int) -> list[Row]:
    """The policy row: "close: expected 1 connection per request — measured 1.00 connections per request"."""
    if policy is None:
        return []
    seen = expectation(policy, connects, requests, users)
    sentence = f"{name}: expected {seen.text} — measured {seen.measured}"
    return [{"metric": "Connections: expected vs measured", "value": sentence, "expected": seen.text}]


def connection_rows(live: Mapping[str, Any] | None, policy: Any = None, requests: int = 0,
                    users: int = 0) -> list[Row]:
    """The tab's rows: the policy's expected vs measured behaviour, every figure, then workers."""
    if not live:
        return [{"metric": "Status", "value": "no run yet", "expected": ""}]
    connects = int((live.get("connections") or {}).get("tcp_connects") or 0)
    figures = figure_rows(live)
    first = 1 if "policy" in live else 0  # the policy's name, then its expected behaviour
    rows = figures[:first] + policy_rows(str(live.get("policy", "")), policy, connects, requests, users) \
        + figures[first:] + derived_rows(live)
    workers = [{"expected": "", **row} for row in worker_rows(live.get("workers") or [])]
    return rows + workers
