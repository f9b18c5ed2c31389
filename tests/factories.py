"""Test factories: a realistic, valid `RunResult` (run.json) with the figures a test cares about.

`make_run(**overrides)` starts from one finished 30 s run of the policy 'shared' of scenario
'demo' against the local demo target.  An override replaces a top-level key
(`sockets=None`, `workers=[...]`) or, with `__` between the parts, one key deep inside
(`stats__total__p95_ms=700`, `policy__name="close"`); list items are addressed by index
(`stats__endpoints__0__name="login"`).  The result is validated like a run.json read from disk.
"""

from __future__ import annotations

import copy
from typing import Any

from workload.results.run import RUN_SCHEMA, RunResult, validate_run

DURATION_S = 30.0


def _row(requests: int = 900, failures: int = 0, rps: float = 30.0) -> dict[str, Any]:
    return {"requests": requests, "failures": failures, "rps": rps, "p50_ms": 3, "p95_ms": 9, "p99_ms": 14,
            "avg_ms": 3.4, "max_ms": 40}


def base_run() -> dict[str, Any]:
    """The run.json document `make_run` starts from (a new copy each call)."""
    return {
        "schema": RUN_SCHEMA, "run_id": "20261121-105012-demo-shared", "complete": True,
        "incomplete_reason": None,
        "scenario": {"name": "demo", "path": "scenarios/demo.yaml"},
        "policy": {"name": "shared", "type": "shared", "settings": {"pool_maxsize": 10}},
        "target": {"urls": ["http://127.0.0.1:8080"], "local": True},
        "load": {"users": 10, "spawn_rate": 10.0, "duration_s": DURATION_S},
        "started_at": 1763722212.5, "ended_at": 1763722242.5, "duration_s": DURATION_S,
        "requested_duration_s": DURATION_S, "stop_drain_s": 0.01,
        "stats": {"total": _row(), "endpoints": [{"method": "GET", "name": "list items", **_row()}],
                  "errors": [], "history": [{"t": 1.0, "users": 10, "rps": 30.0, "failures_per_s": 0.0,
                                             "p50_ms": 3, "p95_ms": 9}]},
        "failures_by_cause": {},
        "connections": {"tcp_connects": 10, "tls_handshakes": 0, "tls_failures": 0, "pool_discards": 0,
                        "connect_errors": 0, "requests_per_connection": 90.0,
                        "setup_ms": {"count": 10, "avg": 0.2, "p50": 0.2, "p95": 0.4, "max": 0.9}},
        "sockets": {"endpoints": ["127.0.0.1:8080"], "server_side_observable": True, "source": "netlink",
                    "time_wait_client": {"peak": 0, "end": 0}, "time_wait_server": {"peak": 10, "end": 10},
                    "established_client": {"peak": 10, "end": 0}, "established_server": {"peak": 10, "end": 0},
                    "samples": 30, "series": []},
        "kernel": {"ActiveOpens": 10, "PassiveOpens": 10, "EstabResets": 0, "TCPAbortOnData": 0,
                   "TCPAbortOnClose": 0},
        "ports": {"range": [32768, 60999], "size": 28232, "tcp_tw_reuse": 2, "new_connections_per_s": 0.33,
                  "time_wait_seconds": 60, "forecast_time_wait": 20, "forecast_share": 0.0007},
        "server": {"connections_accepted": 10, "requests": 900},
        "workers": [],
    }


def make_run(**overrides: Any) -> RunResult:
    """`base_run()` with `overrides` applied (see the module's docstring), validated."""
    return validate_run(run_data(**overrides))


def run_data(**overrides: Any) -> dict[str, Any]:
    """The run.json document `make_run` validates: for tests that break it on purpose."""
    data = base_run()
    for name, value in overrides.items():
        *parents, last = [int(part) if part.isdigit() else part for part in name.split("__")]
        node: Any = data
        for part in parents:
            node = node[part]
        node[last] = copy.deepcopy(value)
    return data
