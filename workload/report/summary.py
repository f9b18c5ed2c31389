"""Policy summary: one comparable row per run (per connection policy), plus plain-language findings.

`build_summary` turns loaded runs (see `workload.report.runs`) into the ``workload.summary/1``
document written as summary.json (documented in docs/summary-format.md).  Only figures present
in the runs are reported; anything not measured or not observable is null, never 0.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from workload.errors import ResultsError
from workload.report.findings import build_findings
from workload.report.numbers import finite as number
from workload.results.run import Connections, PeakEnd, RunResult, Sockets, Stats

SUMMARY_SCHEMA = "workload.summary/1"
# A way of ending accounts for the connections when it covers at least this share of them.
DEFAULT_ENDED_SHARE = 0.5
DEFAULT_CAUSE = "other"
KERNEL_RESET_COUNTERS = ("EstabResets", "TCPAbortOnData", "TCPAbortOnClose")
PORT_KEYS = ("range", "size", "tcp_tw_reuse", "new_connections_per_s", "time_wait_seconds",
             "forecast_time_wait", "forecast_share")
SERVER_KEYS = ("connections_accepted", "requests")
GENERATOR_KEYS = ("loop_lag_p99_ms", "loop_lag_max_ms", "cpu_percent", "saturated", "saturated_because")

ENDED_SERVER_TW = "server TIME_WAIT"
ENDED_CLIENT_TW = "client TIME_WAIT"
ENDED_RESET = "reset"
ENDED_KEPT_OPEN = "kept open"


def present(section: BaseModel | None) -> bool:
    """The run has this section, and it is not empty."""
    return section is not None and bool(section.model_dump(exclude_unset=True))


def _peak_end(figures: PeakEnd | None, observable: bool) -> tuple[Any, Any]:
    if not observable or figures is None:
        return None, None
    return number(figures.peak), number(figures.end)


def _requests_per_connection(conns: Connections, requests: Any) -> float | None:
    given = number(conns.requests_per_connection)
    if given is not None:
        return round(given, 1)
    opened = number(conns.tcp_connects)
    return round(requests / opened, 1) if opened and requests is not None else None


def _failures_by_cause(stats: Stats) -> dict[str, int]:
    counts: dict[str, int] = {}
    for error in stats.errors:
        cause = error.cause if error.cause is not None else DEFAULT_CAUSE
        counts[cause] = counts.get(cause, 0) + int(number(error.occurrences) or 0)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _picked(section: BaseModel | dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The named keys of a section (null when the run has no such section)."""
    if section is None:
        return None
    data = section if isinstance(section, dict) else section.model_dump()
    return {key: data.get(key) for key in keys}


def _kernel(run: RunResult) -> dict[str, int | float]:
    figures = ((str(k), number(v)) for k, v in (run.kernel or {}).items())
    return {k: v for k, v in figures if v is not None}


def resets(kernel: dict[str, int | float]) -> int | float | None:
    """Resets seen by the kernel during the run.

    EstabResets counts established connections ended by a reset (sent or received); the
    TCPAbortOn* counters count resets this host sent.  One reset can show in both, so the
    larger of the two figures is taken rather than their sum.
    """
    if not any(key in kernel for key in KERNEL_RESET_COUNTERS):
        return None
    aborts = kernel.get("TCPAbortOnData", 0) + kernel.get("TCPAbortOnClose", 0)
    return max(kernel.get("EstabResets", 0), aborts)


def ended_by(entry: dict[str, Any]) -> str | None:
    """How most connections of a run ended (see the rule below), or None when unclear.

    A TCP connection ends in one of three ways: the side that closes first (sends the first
    FIN) keeps the socket in TIME_WAIT for ~60 s; a reset (RST) ends it at once on both sides,
    leaving no TIME_WAIT anywhere; or it is not closed while measured (kept open and reused).
    Each way gets a share of the N connections opened:

    * "kept open": established client sockets at peak / N (all connections open at once);
    * "server TIME_WAIT" / "client TIME_WAIT": TIME_WAIT peak on that side / min(N, forecast).
      TIME_WAIT sockets expire, so at most ``ports.forecast_time_wait`` (connection rate x
      TIME_WAIT seconds) can exist at once on a long run;
    * "reset": kernel resets during the run (see `resets`) / N.

    The way with the largest share wins (ties in the order above: a pool closed at the end of
    the run leaves client TIME_WAIT but its connections were kept open), provided its share
    reaches DEFAULT_ENDED_SHARE.  Otherwise, or when nothing was measured (a remote target
    hides server TIME_WAIT), the answer is None rather than a guess.
    """
    opened = entry.get("connections_opened")
    if not opened:
        return None
    forecast = number((entry.get("ports") or {}).get("forecast_time_wait"))
    expected = min(opened, forecast) if forecast else opened
    counts = {ENDED_KEPT_OPEN: (entry.get("established_client_peak"), opened),
              ENDED_SERVER_TW: (entry.get("time_wait_server_peak"), expected),
              ENDED_CLIENT_TW: (entry.get("time_wait_client_peak"), expected),
              ENDED_RESET: (resets(entry.get("kernel") or {}), opened)}
    shares = {way: count / base for way, (count, base) in counts.items() if count is not None}
    if not shares:
        return None
    way, share = max(shares.items(), key=lambda item: item[1])
    return way if share >= DEFAULT_ENDED_SHARE else None


def _traffic(run: RunResult) -> dict[str, Any]:
    total = run.stats.total
    traffic = {key: number(getattr(total, key)) for key in
               ("requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms")}
    response = run.arrival.response_time_ms if run.arrival is not None else None
    if response is not None and response.count:
        # The open model: latency from the intended start (Locust's rows leave out queueing on a stall).
        traffic.update(p50_ms=number(response.p50), p95_ms=number(response.p95), p99_ms=number(response.p99))
    return traffic


def _arrival(run: RunResult) -> dict[str, Any] | None:
    """The open model's offered vs achieved load and its two latencies (None for a closed run)."""
    figures = run.arrival
    if figures is None:
        return None
    response, service = figures.response_time_ms, figures.service_time_ms
    lag = figures.lag_ms
    return {"offered_rate": number(figures.offered_rate), "achieved_rate": number(figures.achieved_rate),
            "scheduled": number(figures.scheduled), "dropped": number(figures.dropped),
            "late": number(figures.late), "missed": number(figures.missed),
            "dropped_ratio": number(figures.dropped_ratio), "late_ratio": number(figures.late_ratio),
            "lag_p99_ms": number(lag.p99) if lag is not None else None,
            "response_p50_ms": number(response.p50) if response is not None else None,
            "response_p99_ms": number(response.p99) if response is not None else None,
            "response_p99_9_ms": number(response.p99_9) if response is not None else None,
            "service_p50_ms": number(service.p50) if service is not None else None,
            "service_p99_ms": number(service.p99) if service is not None else None}


def _connections(run: RunResult, requests: Any) -> dict[str, Any]:
    conns = run.connections or Connections()
    return {"connections_opened": number(conns.tcp_connects),
            "requests_per_connection": _requests_per_connection(conns, requests),
            "tls_handshakes": number(conns.tls_handshakes),
            "tls_failures": number(conns.tls_failures),
            "tls_resumed": number(conns.tls_resumed),
            "tls_full": number(conns.tls_full),
            "pool_discards": number(conns.pool_discards),
            "pool_waits": number(conns.pool_waits),
            "connection_setup_ms": number(conns.setup_ms.avg) if conns.setup_ms is not None else None,
            **_http2(conns)}


def _http2(conns: Connections) -> dict[str, Any]:
    """HTTP/2 figures (engine httpx); null for runs that recorded none."""
    protocols = {str(k): number(v) for k, v in conns.protocols.items()} if conns.protocols is not None else None
    return {"protocols": protocols, "http2_connections": number(conns.http2_connections),
            "streams_per_connection": number(conns.streams_per_connection)}


def _sockets(run: RunResult) -> dict[str, Any]:
    sockets = run.sockets if run.sockets is not None else Sockets()
    measured = present(run.sockets)
    observable = sockets.server_side_observable is not False if measured else None
    client = _peak_end(sockets.time_wait_client, measured)
    server = _peak_end(sockets.time_wait_server, bool(observable))
    return {"time_wait_client_peak": client[0], "time_wait_client_end": client[1],
            "time_wait_server_peak": server[0], "time_wait_server_end": server[1],
            "established_client_peak": _peak_end(sockets.established_client, measured)[0],
            "server_side_observable": observable, "endpoints": list(sockets.endpoints)}


def _model(run: RunResult) -> dict[str, Any]:
    """Open (arrival rate) or closed (users), with the open model's response time from the
    intended start: the coordinated-omission finding compares it with a closed run's latency."""
    response = run.arrival.response_time_ms if run.arrival is not None else None
    return {"model": "open" if run.arrival is not None else "closed", "avg_ms": number(run.stats.total.avg_ms),
            "response_mean_ms": number(response.mean) if response is not None else None,
            "response_p90_ms": number(response.p90) if response is not None else None}


def policy_entry(run: RunResult) -> dict[str, Any]:
    """The summary row of one run."""
    entry: dict[str, Any] = {
        "policy": run.policy.name, "policy_type": run.policy.type, "label": run.policy.name,
        "run_id": run.run_id, "complete": run.complete,
        "duration_s": number(run.duration_s), "users": number(run.load.users) if run.load is not None else None,
        "target_local": run.target.local if run.target is not None else None,
        **engine_fields(run.policy.settings),
    }
    entry.update(_traffic(run))
    entry.update(_connections(run, entry["requests"]))
    entry["tls_resumption"] = (run.policy.settings or {}).get("tls_resumption")  # None: not recorded
    entry.update(_sockets(run))
    entry["kernel"] = _kernel(run)
    entry["ports"] = _picked(run.ports, PORT_KEYS)
    entry["ended_by"] = ended_by(entry)
    entry["failures_by_cause"] = _failures_by_cause(run.stats)
    entry["server"] = _picked(run.server, SERVER_KEYS)
    entry["generator"] = _picked(run.generator, GENERATOR_KEYS)
    entry.update(_model(run))
    # A saturated generator's latencies include its own delay: flagged, not trusted.
    entry["latency_flagged"] = bool(run.generator is not None and run.generator.saturated)
    entry["workers"] = run.dump()["workers"] if "workers" in run.model_fields_set else []
    entry["arrival"] = _arrival(run)
    return entry


# Settings that choose the engine rather than the policy (findings compare engines at one policy).
ENGINE_KEYS = ("engine", "http2")
_NOT_THE_POLICY = ("description", "thresholds", *ENGINE_KEYS)


def engine_fields(settings: dict[str, Any] | None) -> dict[str, Any]:
    """The run's engine ("httpx h2" with HTTP/2) and a digest of its other policy settings:
    two runs with the same digest ran the same policy (the digest, not the settings, so
    nothing from them reaches the report)."""
    settings = settings or {}
    engine = str(settings.get("engine") or "requests") + (" h2" if settings.get("http2") else "")
    policy = {k: v for k, v in settings.items() if k not in _NOT_THE_POLICY}
    text = json.dumps(policy, sort_keys=True, default=str)
    return {"engine": engine, "policy_digest": hashlib.sha256(text.encode()).hexdigest()[:12]}


def _label_duplicates(policies: list[dict[str, Any]]) -> None:
    """Tell apart several runs of the same policy by their run id (or position)."""
    names = [p["policy"] for p in policies]
    for index, entry in enumerate(policies):
        if names.count(entry["policy"]) > 1:
            entry["label"] = f"{entry['policy']} ({entry['run_id'] or f'run {index + 1}'})"


def build_summary(runs: list[RunResult], *, incomplete: bool = False) -> dict[str, Any]:
    """The ``workload.summary/1`` document for `runs` (as loaded by `load_run`).

    `incomplete` marks a report whose set of runs was cut short; it is also set when any run
    itself did not complete.
    """
    if not runs:
        raise ResultsError("no runs to summarise: pass one or more run directories containing run.json")
    policies = [policy_entry(run) for run in runs]
    _label_duplicates(policies)
    scenarios = list(dict.fromkeys(run.scenario.name for run in runs))
    return {
        "schema": SUMMARY_SCHEMA,
        "scenario": ", ".join(scenarios),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "incomplete": incomplete or not all(p["complete"] for p in policies),
        "policies": policies,
        "findings": build_findings(policies, scenarios),
    }
