"""Thresholds: a finished run's figures judged against the scenario's pass/fail limits.

Limits come from three places in the scenario: `thresholds:` (the whole run), a policy's own
`thresholds:` (overriding the scenario's, key by key, for runs of that policy) and a request's
`thresholds:` (that endpoint's or flow step's row in `stats.endpoints`).  Everything is read
from run.json data (see docs/results-format.md), so a saved run can be judged again later.

A figure the run does not have (no requests, no socket samples) fails the threshold with a
message saying why: a gate that cannot measure must not pass.  Pure: no locust import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from workload.redaction import redact
from workload.results.run import EndpointFigures, Figures, RunResult, ThresholdRow, ThresholdSummary
from workload.scenario.schema import EndpointThresholds, Request, Scenario, Thresholds

TOTAL_SCOPE = "total"
AT_MOST, AT_LEAST = "<=", ">="


@dataclass(frozen=True)
class ThresholdResult:
    """One limit checked against one figure of one run."""

    policy: str
    scope: str  # "total" or the endpoint's name in Locust's stats
    metric: str  # the scenario key, e.g. "p95_ms" or "min_rps"
    limit: float
    actual: float | None
    passed: bool
    message: str

    @property
    def comparison(self) -> str:
        return METRICS[self.metric].comparison

    @property
    def unit(self) -> str:
        return METRICS[self.metric].unit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdResult:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


Row = Figures | EndpointFigures  # the run's total, or one endpoint's row
Reader = Callable[[Row | None, RunResult], float | None]


@dataclass(frozen=True)
class Metric:
    """How to read one threshold key's figure from run.json and which way the limit points."""

    label: str
    unit: str
    comparison: str
    read: Reader  # (stats row or None, run) -> figure
    missing: str  # why the figure can be absent


def _row_value(key: str) -> Reader:
    return lambda row, run: getattr(row, key) if row is not None and row.requests else None


def _failure_ratio(row: Row | None, run: RunResult) -> float | None:
    return row.failures / row.requests if row is not None and row.requests else None


def _rps(row: Row | None, run: RunResult) -> float | None:
    return row.rps if row is not None else None


def _time_wait_client(row: Row | None, run: RunResult) -> float | None:
    peak = run.sockets.time_wait_client if run.sockets is not None else None
    return peak.peak if peak is not None else None


def _requests_per_connection(row: Row | None, run: RunResult) -> float | None:
    connections = run.connections
    if connections is None:
        return None
    per_connection = connections.requests_per_connection
    if per_connection is None and connections.tcp_connects and row is not None and row.requests:
        # A master's own counters give no ratio; the merged connect count still does.
        per_connection = row.requests / connections.tcp_connects
    return per_connection


def _pool_discards(row: Row | None, run: RunResult) -> float | None:
    return run.connections.pool_discards if run.connections is not None else None


def _pool_waits(row: Row | None, run: RunResult) -> float | None:
    return run.connections.pool_waits if run.connections is not None else None


def _tls_resumed_ratio(row: Row | None, run: RunResult) -> float | None:
    conns = run.connections
    if conns is None or conns.tls_resumed is None or not conns.tls_handshakes:
        return None
    return conns.tls_resumed / conns.tls_handshakes


def _open(read: Callable[[Any], float | None]) -> Reader:
    """A figure of the open model's `arrival` section (None in a closed run)."""
    return lambda row, run: read(run.arrival) if run.arrival is not None else None


def _latency(kind: str, name: str) -> Callable[[Any], float | None]:
    return lambda arrival: getattr(getattr(arrival, kind), name) if getattr(arrival, kind) is not None else None


def _row_or_open(key: str, name: str) -> Reader:
    """A latency percentile: in an open-model run the whole run's is the response time from the
    intended start (coordinated omission corrected); an endpoint's row stays Locust's."""
    row_value, open_value = _row_value(key), _open(_latency("response_time_ms", name))

    def read(row: Row | None, run: RunResult) -> float | None:
        if run.arrival is not None and isinstance(row, Figures):
            return open_value(row, run)
        return row_value(row, run)

    return read


def _generator_lag(row: Row | None, run: RunResult) -> float | None:
    return run.generator.loop_lag_p99_ms if run.generator is not None else None


NO_REQUESTS = "no requests were recorded"
NOT_OPEN = "the run is not an open-model run (no load.arrival), so this figure was not measured"
METRICS: dict[str, Metric] = {
    "p50_ms": Metric("median latency", "ms", AT_MOST, _row_or_open("p50_ms", "p50"), NO_REQUESTS),
    "p95_ms": Metric("95th percentile latency", "ms", AT_MOST, _row_or_open("p95_ms", "p95"), NO_REQUESTS),
    "p99_ms": Metric("99th percentile latency", "ms", AT_MOST, _row_or_open("p99_ms", "p99"), NO_REQUESTS),
    "max_failure_ratio": Metric("failure ratio", "", AT_MOST, _failure_ratio, NO_REQUESTS),
    "min_rps": Metric("requests/s", "", AT_LEAST, _rps, NO_REQUESTS),
    "max_time_wait_client": Metric("peak client TIME_WAIT sockets", "", AT_MOST, _time_wait_client,
                                   "the socket table was not sampled (sockets.time_wait_client.peak is null)"),
    "min_requests_per_connection": Metric("requests per connection", "", AT_LEAST, _requests_per_connection,
                                          "no connection was opened"),
    "max_pool_discards": Metric("pool discards", "", AT_MOST, _pool_discards,
                                "the run has no connection counters"),
    "max_pool_waits": Metric("pool waits", "", AT_MOST, _pool_waits,
                             "the run has no pool-wait counter"),
    "min_tls_resumed_ratio": Metric("TLS resumed share", "", AT_LEAST, _tls_resumed_ratio,
                                    "no TLS handshake was completed (or the run predates resumption counts)"),
    "response_p99_ms": Metric("99th percentile response time (from the intended start)", "ms", AT_MOST,
                              _open(_latency("response_time_ms", "p99")), NOT_OPEN),
    "service_p99_ms": Metric("99th percentile service time (from the send)", "ms", AT_MOST,
                             _open(_latency("service_time_ms", "p99")), NOT_OPEN),
    "max_dropped_ratio": Metric("dropped iterations ratio", "", AT_MOST,
                                _open(lambda a: a.dropped_ratio), NOT_OPEN),
    "max_late_ratio": Metric("late starts ratio", "", AT_MOST, _open(lambda a: a.late_ratio), NOT_OPEN),
    "max_generator_lag_ms": Metric("generator event-loop lag p99", "ms", AT_MOST, _generator_lag,
                                   "the generator's loop lag was not measured (generator.loop_lag_p99_ms is null)"),
}


def evaluate(scenario: Scenario, run: RunResult) -> list[ThresholdResult]:
    """Every threshold that applies to `run` (one policy's run.json), in scenario order."""
    policy = run.policy.name
    results = [_judge(policy, TOTAL_SCOPE, metric, limit, run.stats.total, run)
               for metric, limit in _set_limits(run_thresholds(scenario, policy))]
    for name, method, limits in request_thresholds(scenario):
        row = _endpoint_row(run.stats.endpoints, name, method)
        for metric, limit in _set_limits(limits):
            results.append(_judge(policy, name, metric, limit, row, run))
    return results


def run_thresholds(scenario: Scenario, policy: str) -> Thresholds | None:
    """The scenario's run-level limits with the policy's own laid over them, key by key."""
    base = scenario.thresholds
    spec = scenario.policies.get(policy)
    own = spec.thresholds if spec is not None else None
    if own is None or base is None:
        return own or base
    return Thresholds(**{**base.model_dump(exclude_none=True), **own.model_dump(exclude_none=True)})


def request_thresholds(scenario: Scenario) -> Iterator[tuple[str, str, EndpointThresholds]]:
    """(stats name, method, limits) of every endpoint and flow step that has thresholds."""
    for endpoint in scenario.endpoints:
        if endpoint.thresholds is not None:
            yield request_name(endpoint), endpoint.method, endpoint.thresholds
    for flow in scenario.flows:
        for step in flow.steps:
            if step.thresholds is not None:
                yield request_name(step, flow.name), step.method, step.thresholds


def request_name(request: Request, flow: str | None = None) -> str:
    """The name Locust records the request under (as `workload.engine.user` names it)."""
    if request.name:
        return request.name
    return f"{flow}: {request.method} {request.path}" if flow else f"{request.method} {request.path}"


def _set_limits(limits: EndpointThresholds | None) -> list[tuple[str, float]]:
    if limits is None:
        return []
    return [(key, float(value)) for key, value in limits.model_dump(exclude_none=True).items()]


def _endpoint_row(rows: list[EndpointFigures], name: str, method: str) -> EndpointFigures | None:
    for row in rows:
        if row.name in (name, redact(name)) and row.method == method:  # run.json is redacted
            return row
    return None


def _judge(policy: str, scope: str, metric: str, limit: float, row: Row | None,
           run: RunResult) -> ThresholdResult:
    spec = METRICS[metric]
    actual = spec.read(row, run)
    where = "the run" if scope == TOTAL_SCOPE else f"'{scope}'"
    if actual is None:
        why = f"'{scope}' was never requested" if scope != TOTAL_SCOPE and row is None else spec.missing
        return ThresholdResult(policy, scope, metric, limit, None, False,
                               f"{spec.label} of {where} is unknown: {why}")
    actual = float(actual)
    passed = actual <= limit if spec.comparison == AT_MOST else actual >= limit
    relation = "within" if passed else ("above" if spec.comparison == AT_MOST else "below")
    message = f"{spec.label} of {where} is {show(actual, spec.unit)}, {relation} the limit {show(limit, spec.unit)}"
    return ThresholdResult(policy, scope, metric, limit, actual, passed, message)


def show(value: float | None, unit: str = "") -> str:
    """A figure as a person reads it: 44 ms, 0.25, 1,200."""
    if value is None:
        return "—"
    text = f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 1 else f"{value:.4g}"
    return f"{text} {unit}".strip()


def summary_of(results: list[ThresholdResult]) -> ThresholdSummary:
    """run.json's `thresholds` section."""
    failed = sum(1 for r in results if not r.passed)
    return ThresholdSummary(passed=failed == 0, evaluated=len(results), failed=failed,
                            results=[ThresholdRow(**r.to_dict()) for r in results])


def results_of(run: RunResult) -> list[ThresholdResult] | None:
    """The results stored in a run.json, or None if it was never judged."""
    if run.thresholds is None:
        return None
    return [ThresholdResult.from_dict(row.model_dump()) for row in run.thresholds.results]
