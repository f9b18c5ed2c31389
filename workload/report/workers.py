"""Workers table of the report: each worker of a distributed run with its own figures, then the total.

A worker's connection counters are its own; its socket figures are its *host's* view (every
worker on one host reads the same socket table), which is why the total row does not add up
the workers' TIME_WAIT: the run's figures count each host once (see `workload.telemetry.cluster`).
Shown only when at least one run was distributed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup

from workload.report.numbers import cell

TITLE = "Workers (distributed runs; socket figures are each worker's host view)"
HEADERS = ("policy", "worker", "host", "requests", "opened", "requests/connection", "TLS handshakes",
           "TIME_WAIT client peak", "TIME_WAIT client end", "TIME_WAIT server peak", "established client peak",
           "final report")
TEXT_HEADERS = frozenset({"policy", "worker", "host", "final report"})


def _worker_row(label: str, worker: dict[str, Any]) -> list[str]:
    conns, sockets = worker.get("connections") or {}, worker.get("sockets") or {}
    index = worker.get("index")
    return [label, f"#{index}" if isinstance(index, int) else cell(worker.get("id")), cell(worker.get("host")),
            cell(worker.get("requests")), cell(conns.get("tcp_connects")),
            cell(conns.get("requests_per_connection")), cell(conns.get("tls_handshakes")),
            cell((sockets.get("time_wait_client") or {}).get("peak")),
            cell((sockets.get("time_wait_client") or {}).get("end")),
            cell((sockets.get("time_wait_server") or {}).get("peak")),
            cell((sockets.get("established_client") or {}).get("peak")), cell(worker.get("final"))]


def _total_row(entry: dict[str, Any], workers: list[dict[str, Any]]) -> list[str]:
    hosts = len({(w.get("host"), w.get("netns")) for w in workers})
    finals = sum(1 for w in workers if w.get("final"))
    return [entry["label"], f"total ({len(workers)} workers)", f"{hosts} host(s), each counted once",
            cell(entry.get("requests")), cell(entry.get("connections_opened")),
            cell(entry.get("requests_per_connection")), cell(entry.get("tls_handshakes")),
            cell(entry.get("time_wait_client_peak")), cell(entry.get("time_wait_client_end")),
            cell(entry.get("time_wait_server_peak")),
            cell(entry.get("established_client_peak")), f"{finals} of {len(workers)}"]


def rows(summary: dict[str, Any]) -> list[list[str]]:
    found: list[list[str]] = []
    for entry in summary["policies"]:
        workers = [w for w in entry.get("workers") or [] if isinstance(w, dict)]
        if workers:
            found += [_worker_row(entry["label"], w) for w in workers]
            found.append(_total_row(entry, workers))
    return found


def markdown(summary: dict[str, Any], text: Callable[[str], str]) -> list[str]:
    """The table as report.md lines (`text` escapes a cell), or nothing for local runs."""
    table = rows(summary)
    if not table:
        return []
    lines = [f"## {TITLE}", "", "| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---" if h in TEXT_HEADERS else "---:" for h in HEADERS) + "|"]
    lines += ["| " + " | ".join(text(c) for c in r) + " |" for r in table]
    return [*lines, ""]


def html_tables(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The table in render's HTML table form (title, headers, rows, align), or nothing."""
    table = rows(summary)
    if not table:
        return []
    align = [Markup(' class="text"') if h in TEXT_HEADERS else "" for h in HEADERS]
    return [{"title": TITLE, "headers": list(HEADERS), "rows": table, "align": align}]
