"""Capacity analysis: a step-load run's per-step figures, its knee, and a forecast at a target rate.

A capacity run (`workload capacity`) raises the users step by step; run.json's `stages` hold
each step's exact figures (`workload.telemetry.stages`) and `sockets.series` the TIME_WAIT and
ESTABLISHED counts per second.  The *knee* is the highest step that is still within the SLO
(p95 and failure ratio) and still buys throughput: its RPS beat the previous knee by at least
`DEFAULT_MIN_RPS_GAIN` (or half the relative user increase, if that is smaller).  Scanning
stops at a *sustained* breach, `DEFAULT_BREACH_STEPS` breaching steps in a row; a single
breaching step is noise.  The forecast scales what was measured near a target request rate
to that rate (Little's law for concurrency).  Pure: no locust import.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import fmean
from typing import Any

from workload.errors import TelemetryError
from workload.results.run import RunResult
from workload.telemetry import forecast, port_headroom

DEFAULT_MIN_RPS_GAIN = 0.05
DEFAULT_GAIN_SHARE = 0.5  # with small steps, RPS may grow by half the relative user increase
DEFAULT_BREACH_STEPS = 2
POOLED_TYPES = ("shared", "recycle")

ENDED_SLO, ENDED_SATURATED, ENDED_BOUND, ENDED_NO_KNEE = "slo", "saturated", "bound", "no step within SLO"


@dataclass(frozen=True)
class Slo:
    """The limits a step must stay within to count as sustained load."""

    p95_ms: float
    failure_ratio: float

    def breaches(self, step: dict[str, Any]) -> list[str]:
        found = []
        if step.get("p95_ms") is not None and step["p95_ms"] > self.p95_ms:
            found.append(f"p95 {step['p95_ms']} ms > {self.p95_ms:g} ms")
        if step.get("failure_ratio") is not None and step["failure_ratio"] > self.failure_ratio:
            found.append(f"failure ratio {step['failure_ratio']:.2%} > {self.failure_ratio:.2%}")
        return found

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _window(series: list[dict[str, Any]], lo: float, hi: float, key: str) -> list[float]:
    return [p[key] for p in series if lo <= p.get("t", -1) <= hi and isinstance(p.get(key), int | float)]


def steps_of(run: RunResult) -> list[dict[str, Any]]:
    """One row per measured step: load, throughput, latency, failures, connections, TIME_WAIT."""
    started = run.started_at or 0.0
    series = (run.sockets.series if run.sockets is not None else None) or []
    rows = []
    for stage in run.stages or []:
        if stage.requests is None or stage.measured_from is None:
            continue  # too short to measure
        lo, hi = stage.measured_from - started, (stage.ended_at or 0.0) - started
        tw, tw_server, est = (_window(series, lo, hi, key) for key in ("tw_client", "tw_server", "est_client"))
        requests = stage.requests
        rows.append({
            "users": stage.users, "users_reached": stage.users_reached, "rps": stage.rps,
            "p50_ms": stage.p50_ms, "p95_ms": stage.p95_ms, "p99_ms": stage.p99_ms,
            "avg_ms": stage.avg_ms, "requests": requests,
            "failures": stage.failures if "failures" in stage.model_fields_set else 0,
            "failure_ratio": stage.failure_ratio, "tcp_connects": stage.tcp_connects,
            "connects_per_s": stage.connects_per_s,
            "connections_per_request": round(stage.tcp_connects / requests, 4)
            if requests and stage.tcp_connects is not None else None,
            "connections": round(fmean(est), 1) if est else None,
            "time_wait_client": max(tw) if tw else None,
            "time_wait_server": max(tw_server) if tw_server else None,
        })
    return rows


def _required_gain(previous: dict[str, Any], step: dict[str, Any]) -> float:
    user_growth = (step["users"] - previous["users"]) / max(previous["users"], 1)
    return min(DEFAULT_MIN_RPS_GAIN, DEFAULT_GAIN_SHARE * user_growth)


def find_knee(steps: list[dict[str, Any]], slo: Slo) -> dict[str, Any]:
    """The knee step's index and why the load could not go further (`ended_by`); marks every
    step with its SLO `breaches`."""
    for step in steps:
        step["breaches"] = slo.breaches(step)
    knee: int | None = None
    in_a_row, usable = 0, len(steps)
    for index, step in enumerate(steps):
        if step["breaches"]:
            in_a_row += 1
            if in_a_row >= DEFAULT_BREACH_STEPS:
                usable = index - in_a_row + 1
                break
            continue
        in_a_row = 0
        if knee is None or step["rps"] >= steps[knee]["rps"] * (1 + _required_gain(steps[knee], step)):
            knee = index  # otherwise within the SLO, but more users no longer bought throughput
    if knee is None:
        ended = ENDED_NO_KNEE
    elif any(not s["breaches"] for s in steps[knee + 1:usable]):
        ended = ENDED_SATURATED
    elif knee < len(steps) - 1:
        ended = ENDED_SLO
    else:
        ended = ENDED_BOUND  # the last step was still growing: raise --max-users
    within = [s for s in steps[:usable] if not s["breaches"]]
    best = max(within, key=lambda s: s["rps"], default=None)
    return {"index": knee, "ended_by": ended,
            "users": steps[knee]["users"] if knee is not None else None,
            "rps": steps[knee]["rps"] if knee is not None else None,
            "p95_ms": steps[knee]["p95_ms"] if knee is not None else None,
            "max_rps_within_slo": best["rps"] if best else None,
            "max_users_within_slo": max((s["users"] for s in within), default=None)}


def _ports_size(run: RunResult) -> int | None:
    size = run.ports.size if run.ports is not None else None
    if isinstance(size, int) and size > 0:
        return size
    try:
        return int(port_headroom()["size"])
    except (TelemetryError, KeyError, ValueError):
        return None


def _hosts(run: RunResult) -> int:
    urls = run.target.urls if run.target is not None else []
    return max(len(set(urls)), 1)


def _reference(steps: list[dict[str, Any]], knee: dict[str, Any], target_rps: float) -> dict[str, Any] | None:
    """The measured step to scale from: the first within the SLO that reached the target rate,
    else the knee (the target lies beyond what was sustained)."""
    if knee["index"] is None:
        return None
    for step in steps[: knee["index"] + 1]:
        if not step["breaches"] and step["rps"] >= target_rps:
            return step
    return steps[knee["index"]]


def _client_share(step: dict[str, Any]) -> float | None:
    """Of the TIME_WAIT sockets seen, the share on the client: the side that closed first."""
    client, server = step.get("time_wait_client"), step.get("time_wait_server")
    if client is None or server is None or client + server == 0:
        return None
    return client / (client + server)


def _pool_advice(run: RunResult, in_flight: float, hosts: int) -> dict[str, Any]:
    settings = run.policy.settings or {}
    if run.policy.type not in POOLED_TYPES:
        return {"pool_maxsize": None, "pool_connections": None,
                "pool_note": "does not apply: this policy opens a new connection per request"}
    if settings.get("scope") == "process":
        return {"pool_maxsize": max(1, math.ceil(in_flight / hosts)), "pool_connections": hosts,
                "pool_note": "one pool per host shared by all users: concurrent requests per host"}
    return {"pool_maxsize": 1, "pool_connections": hosts,
            "pool_note": "per-user pools: a user has one request in flight, so one connection per host"}


def _time_wait_forecast(run: RunResult, ref: dict[str, Any], new_per_s: float) -> dict[str, Any]:
    """Steady-state TIME_WAIT at `new_per_s` new connections/s, and its share of the port range."""
    size = _ports_size(run)
    ports = forecast(new_per_s, size) if size else {"forecast_time_wait": None, "forecast_share": None}
    share, upper = _client_share(ref), ports["forecast_time_wait"]
    client_tw = round(upper * share) if upper is not None and share is not None else upper
    port_share = round(client_tw / size, 4) if client_tw is not None and size else None
    note = None
    if port_share is not None and port_share >= 1:
        reuse = run.ports.tcp_tw_reuse if run.ports is not None else None
        note = (f"more TIME_WAIT than ephemeral ports: new connects fail (EADDRNOTAVAIL) unless the kernel "
                f"reuses TIME_WAIT ports (tcp_tw_reuse={reuse} here; 2 = loopback only)")
    return {"time_wait_upper_bound": upper, "time_wait_client_share": round(share, 3) if share is not None else None,
            "time_wait_client": client_tw, "port_range_size": size, "port_range_share_upper": ports["forecast_share"],
            "port_range_share": port_share, "ports_exhausted": bool(port_share is not None and port_share >= 1),
            "port_note": note}


def forecast_at(run: RunResult, steps: list[dict[str, Any]], knee: dict[str, Any],
                target_rps: float) -> dict[str, Any]:
    """What running this policy at `target_rps` needs: connections, TIME_WAIT, ports, fds, pool."""
    ref = _reference(steps, knee, target_rps)
    if ref is None or not ref["rps"] or not ref["users"]:
        return {"target_rps": target_rps, "reachable": False, "note": "no step within the SLO to scale from"}
    per_request = ref["connections_per_request"] or 0.0
    new_per_s = round(target_rps * per_request, 2)
    in_flight = target_rps * (ref["avg_ms"] or 0.0) / 1000.0  # Little's law
    users = math.ceil(target_rps / (ref["rps"] / ref["users"]))
    per_user = (ref["connections"] or 0.0) / ref["users"]
    open_connections = math.ceil(max(per_user * users, in_flight))
    hosts = _hosts(run)
    return {
        "target_rps": target_rps, "reachable": knee["rps"] is not None and target_rps <= knee["rps"],
        "scaled_from_users": ref["users"], "connections_per_request": per_request,
        "new_connections_per_s": new_per_s, **_time_wait_forecast(run, ref, new_per_s),
        "in_flight": round(in_flight, 1), "users_needed": users, "open_connections": open_connections,
        "file_descriptors": open_connections, "hosts": hosts, **_pool_advice(run, in_flight, hosts),
    }


def analyse(run: RunResult, slo: Slo, target_rps: float | None = None) -> dict[str, Any]:
    """One policy's capacity: its steps, knee and (with a target rate) the forecast."""
    steps = steps_of(run)
    knee = find_knee(steps, slo)
    return {
        "policy": run.policy.name, "type": run.policy.type, "run_id": run.run_id,
        "complete": run.complete, "slo": slo.to_dict(), "knee": knee, "steps": steps,
        "stopped_early": any(s.stopped_run for s in run.stages or []),
        "forecast": forecast_at(run, steps, knee, target_rps) if target_rps else None,
    }
