"""Cluster figures: the workers' telemetry reports of one distributed run, combined on the master.

A *worker report* is what one Locust worker process sends about itself (see
`workload.engine.distributed`): its exact connection counters, its view of the kernel socket table
and its kernel TCP counter deltas.  They combine differently:

* connection counters (tcp_connects, TLS handshakes, ...) are per process: they **sum**;
* the socket table and the kernel counters are per network namespace: every worker on one
  host sees the same sockets, so summing their TIME_WAIT would count each socket once per
  worker.  They are combined **per host** (hostname plus network namespace), one figure per
  host (the largest its workers saw), and then summed across hosts;
* generator health (loop lag, CPU) is per process: the lag histograms merge, the CPU is the
  busiest worker's (`workload.telemetry.generator.merged_section`).

Pure functions on plain dicts (msgpack-safe): no locust, no gevent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workload.telemetry.generator import merged_section

Report = dict[str, Any]

COUNTER_KEYS = ("tcp_connects", "tls_handshakes", "tls_failures", "pool_discards", "connect_errors",
                "pool_waits", "tls_resumed", "tls_full")
SOCKET_SECTIONS = ("time_wait_client", "time_wait_server", "established_client", "established_server")
SERIES_FIELDS = ("tw_client", "tw_server", "est_client", "est_server")


def host_key(report: Report) -> str:
    """Which socket table a report saw: one per hostname and network namespace."""
    return f"{report.get('host') or '?'}/{report.get('netns') or '?'}"


def by_host(reports: Iterable[Report]) -> dict[str, list[Report]]:
    hosts: dict[str, list[Report]] = {}
    for report in reports:
        hosts.setdefault(host_key(report), []).append(report)
    return hosts


def _max_known(values: Iterable[Any]) -> int | float | None:
    known = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return max(known) if known else None


def _sum_hosts(per_host: list[int | float | None]) -> int | None:
    """A total over hosts; unknown (None) when any host's figure is unknown."""
    if not per_host or any(v is None for v in per_host):
        return None
    return int(sum(v for v in per_host if v is not None))


# -- connections: per process, they sum --------------------------------------------------------
def merge_connections(reports: list[Report], requests: int | None) -> dict[str, Any]:
    """run.json `connections` for the whole cluster; `requests` is the master's exact total."""
    conns = [r.get("connections") or {} for r in reports]
    merged: dict[str, Any] = {k: sum(int(c.get(k) or 0) for c in conns) for k in COUNTER_KEYS}
    connects = merged["tcp_connects"]
    merged["requests_per_connection"] = round(requests / connects, 2) if requests and connects else None
    merged["setup_ms"] = _merge_setup([c.get("setup_ms") or {} for c in conns])
    return merged


def _merge_setup(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, average and maximum combine exactly; percentiles do not, so they are left null."""
    counted = [p for p in parts if p.get("count")]
    count = sum(int(p["count"]) for p in counted)
    if not count:
        return {"count": 0, "avg": None, "p50": None, "p95": None, "max": None}
    avg = sum(float(p.get("avg") or 0) * int(p["count"]) for p in counted) / count
    return {"count": count, "avg": round(avg, 3), "p50": None, "p95": None,
            "max": _max_known(p.get("max") for p in counted)}


# -- sockets and kernel counters: per host ------------------------------------------------------
def merge_sockets(reports: list[Report]) -> dict[str, Any]:
    """run.json `sockets` for the cluster: one figure per host, summed across hosts."""
    hosts = by_host(reports)
    sections = {name: [r.get("sockets") or {} for r in group] for name, group in hosts.items()}
    merged: dict[str, Any] = {
        "endpoints": sorted({e for group in sections.values() for s in group for e in s.get("endpoints") or []}),
        "server_side_observable": all(s.get("server_side_observable") is not False
                                      for group in sections.values() for s in group),
        "aggregation": "per host",
        "hosts": len(hosts),
    }
    for key in SOCKET_SECTIONS:
        merged[key] = {
            figure: _sum_hosts([_max_known((s.get(key) or {}).get(figure) for s in group)
                                for group in sections.values()])
            for figure in ("peak", "end")
        }
    merged["source"] = merge_source(s.get("source") for group in sections.values() for s in group)
    fallbacks = sorted({s["source_fallback"] for group in sections.values() for s in group
                        if s.get("source_fallback")})
    if fallbacks:
        merged["source_fallback"] = "; ".join(fallbacks)
    merged["samples"] = sum(int(s.get("samples") or 0) for group in sections.values() for s in group)
    merged["series"] = merge_series([[s.get("series") or [] for s in group] for group in sections.values()])
    errors = sorted({s["error"] for group in sections.values() for s in group if s.get("error")})
    if errors:
        merged["error"] = "; ".join(errors)
    return merged


def merge_source(sources: Iterable[Any]) -> str | None:
    """The workers' table sources: the one they all used, else each named ("netlink+proc")."""
    named = sorted({str(source) for source in sources if source})
    return "+".join(named) if named else None


def _host_series(series_of_workers: list[list[dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """One host's samples bucketed per second (t rounded), the largest value of its workers."""
    buckets: dict[int, dict[str, Any]] = {}
    for series in series_of_workers:
        for point in series:
            second = round(float(point.get("t", 0)))
            bucket = buckets.setdefault(second, {})
            for name in SERIES_FIELDS:
                bucket[name] = _max_known([bucket.get(name), point.get(name)])
    return buckets


def merge_series(hosts: list[list[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Sum the hosts' per-second series; a host without a sample in a second keeps its last one.

    Workers start sampling when the master's spawn message reaches them, within a fraction of
    a second of each other, so their run-relative times line up to the second."""
    per_host = [_host_series(host) for host in hosts]
    seconds = sorted({t for host in per_host for t in host})
    last: list[dict[str, Any]] = [{} for _ in per_host]
    merged = []
    for second in seconds:
        for index, host in enumerate(per_host):
            if second in host:
                last[index] = host[second]
        merged.append({"t": float(second),
                       **{name: _sum_hosts([point.get(name) for point in last]) for name in SERIES_FIELDS}})
    return merged


def merge_kernel(reports: list[Report]) -> dict[str, int]:
    """Kernel counter deltas: per namespace, so one per host (the largest), summed across hosts."""
    totals: dict[str, int] = {}
    for group in by_host(reports).values():
        names = {name for r in group for name in (r.get("kernel") or {})}
        for name in names:
            host_value = _max_known((r.get("kernel") or {}).get(name) for r in group)
            if host_value is not None:
                totals[name] = totals.get(name, 0) + int(host_value)
    return totals


# -- run.json `workers` and the web UI ----------------------------------------------------------
def worker_entry(report: Report) -> dict[str, Any]:
    """One run.json `workers` entry: the worker's own figures (its sockets are its host's view)."""
    sockets = {k: v for k, v in (report.get("sockets") or {}).items() if k != "series"}
    return {
        "id": report.get("worker"), "index": report.get("index"), "host": report.get("host"),
        "netns": report.get("netns"), "pid": report.get("pid"), "final": bool(report.get("final")),
        "requests": report.get("requests"), "connections": report.get("connections") or {},
        "sockets": sockets, "kernel": report.get("kernel") or {},
        "generator": _own_health(report.get("generator")),
    }


def _own_health(health: Any) -> dict[str, Any] | None:
    """A worker's generator summary, without the lag histogram it sent for merging."""
    return {k: v for k, v in health.items() if k != "lag_histogram"} if isinstance(health, dict) else None


def worker_entries(reports: Iterable[Report]) -> list[dict[str, Any]]:
    return [worker_entry(r) for r in sorted(reports, key=_order)]


def _order(report: Report) -> tuple[int, str]:
    index = report.get("index")
    return (index if isinstance(index, int) and index >= 0 else 1_000_000, str(report.get("worker")))


def merge_into(run: dict[str, Any], reports: list[Report]) -> dict[str, Any]:
    """Replace a master's run.json sections by the cluster's figures (the master sends nothing)."""
    if not reports:
        return run
    requests = ((run.get("stats") or {}).get("total") or {}).get("requests")
    run["connections"] = merge_connections(reports, requests)
    run["sockets"] = merge_sockets(reports)
    run["kernel"] = merge_kernel(reports)
    run["workers"] = worker_entries(reports)
    health = merge_generator(reports)
    if health is not None:  # workers of an older version send none: the master's own stays
        run["generator"] = health
    return run


def merge_generator(reports: list[Report]) -> dict[str, Any] | None:
    """run.json `generator` for the cluster: the workers generate the load, not the master."""
    return merged_section([r.get("generator") for r in reports])


def _figure(section: dict[str, Any] | None) -> str:
    if not section or section.get("end") is None:
        return "n/a"
    return f"now {section.get('end')}, peak {section.get('peak')}"


def worker_rows(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Connections-tab rows (metric, value): one per worker, then how the totals were formed."""
    rows = []
    for entry in workers:
        conns, sockets = entry.get("connections") or {}, entry.get("sockets") or {}
        name = f"worker {entry.get('index')} ({entry.get('host')}, pid {entry.get('pid')})"
        value = (f"requests {entry.get('requests')}, connections {conns.get('tcp_connects')}, "
                 f"TLS {conns.get('tls_handshakes')} (failed {conns.get('tls_failures', 0)}), "
                 f"discards {conns.get('pool_discards')}; "
                 f"TIME_WAIT client {_figure(sockets.get('time_wait_client'))} (host view)"
                 + ("" if entry.get("final") else "; final report pending"))
        rows.append({"metric": name, "value": value})
    if workers:
        hosts = len(by_host(workers))
        rows.append({"metric": "totals", "value": f"{len(workers)} worker(s) on {hosts} host(s): counters "
                     "summed over workers, sockets counted once per host"})
    return rows
