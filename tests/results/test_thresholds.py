"""Thresholds: the schema's keys and `evaluate` on canned run.json data."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from tests.factories import make_run
from workload.errors import ScenarioError
from workload.results.run import RunResult
from workload.results.thresholds import ThresholdResult, evaluate, results_of, run_thresholds, summary_of
from workload.scenario.loader import load_text
from workload.scenario.schema import Scenario

SCENARIO = """\
target: demo
endpoints:
  - name: list items
    path: /api/items
    thresholds: {p95_ms: 100, min_rps: 10}
  - path: /api/me
    thresholds: {max_failure_ratio: 0.1}
flows:
  - name: buy
    steps:
      - {method: POST, path: /cart, thresholds: {p50_ms: 20}}
thresholds:
  p95_ms: 500
  max_failure_ratio: 0.01
  min_rps: 5
policies:
  shared:
    thresholds: {min_requests_per_connection: 10, max_pool_discards: 0, p95_ms: 200}
  fresh:
    thresholds: {max_time_wait_client: 100}
"""


def scenario(text: str = SCENARIO) -> Scenario:
    return load_text(text, "s.yaml").model


def row(name: str, method: str = "GET", requests: int = 100, failures: int = 0, rps: float = 20.0,
        p50: int = 5, p95: int = 50, p99: int = 80) -> dict[str, Any]:
    return {"method": method, "name": name, "requests": requests, "failures": failures, "rps": rps,
            "p50_ms": p50 if requests else None, "p95_ms": p95 if requests else None,
            "p99_ms": p99 if requests else None}


def run(policy: str = "shared", total: dict[str, Any] | None = None, endpoints: list[dict[str, Any]] | None = None,
        connections: dict[str, Any] | None = None, tw_peak: int | None = 3) -> RunResult:
    return make_run(
        policy={"name": policy},
        stats__total=total or row("Aggregated", requests=300, rps=60.0),
        stats__endpoints=endpoints if endpoints is not None else [
            row("list items"), row("GET /api/me"), row("buy: POST /cart", method="POST", p50=10)],
        connections=connections or {"tcp_connects": 10, "pool_discards": 0, "requests_per_connection": 30.0},
        sockets={"time_wait_client": {"peak": tw_peak, "end": 0}},
    )


def by_key(results: list[ThresholdResult]) -> dict[tuple[str, str], ThresholdResult]:
    return {(r.scope, r.metric): r for r in results}


def test_all_pass_in_scenario_order_with_the_policy_overriding_the_scenario():
    results = evaluate(scenario(), run())
    assert [(r.scope, r.metric, r.limit) for r in results] == [
        ("total", "p95_ms", 200.0),  # the policy's 200 replaces the scenario's 500
        ("total", "max_failure_ratio", 0.01),
        ("total", "min_rps", 5.0),
        ("total", "min_requests_per_connection", 10.0),
        ("total", "max_pool_discards", 0.0),
        ("list items", "p95_ms", 100.0),
        ("list items", "min_rps", 10.0),
        ("GET /api/me", "max_failure_ratio", 0.1),
        ("buy: POST /cart", "p50_ms", 20.0),
    ]
    assert all(r.passed and r.policy == "shared" for r in results)
    assert results[0].message == "95th percentile latency of the run is 50 ms, within the limit 200 ms"


def test_each_policy_gets_only_its_own_extra_limits():
    results = by_key(evaluate(scenario(), run(policy="fresh", tw_peak=250)))
    assert ("total", "min_requests_per_connection") not in results
    assert results[("total", "p95_ms")].limit == 500.0
    breached = results[("total", "max_time_wait_client")]
    assert (breached.actual, breached.passed) == (250.0, False)
    assert breached.message == "peak client TIME_WAIT sockets of the run is 250, above the limit 100"


def test_breaches_say_which_way_and_by_how_much():
    total = row("Aggregated", requests=200, failures=10, rps=2.5, p95=700)
    results = by_key(evaluate(scenario(), run(total=total, connections={
        "tcp_connects": 200, "pool_discards": 4, "requests_per_connection": 1.0})))
    assert results[("total", "p95_ms")].message == \
        "95th percentile latency of the run is 700 ms, above the limit 200 ms"
    assert results[("total", "max_failure_ratio")].message == \
        "failure ratio of the run is 0.05, above the limit 0.01"
    assert results[("total", "min_rps")].message == "requests/s of the run is 2.5, below the limit 5"
    assert results[("total", "min_requests_per_connection")].message == \
        "requests per connection of the run is 1, below the limit 10"
    assert results[("total", "max_pool_discards")].message == "pool discards of the run is 4, above the limit 0"
    assert not any(r.passed for r in results.values() if r.scope == "total")


def test_endpoint_limits_read_the_endpoint_row():
    slow = row("list items", p95=150, rps=4.0)
    results = by_key(evaluate(scenario(), run(endpoints=[slow, row("GET /api/me", failures=50)])))
    assert results[("list items", "p95_ms")].message == \
        "95th percentile latency of 'list items' is 150 ms, above the limit 100 ms"
    assert not results[("list items", "min_rps")].passed
    assert results[("GET /api/me", "max_failure_ratio")].message == \
        "failure ratio of 'GET /api/me' is 0.5, above the limit 0.1"


def test_missing_figures_fail_with_the_reason():
    empty = row("Aggregated", requests=0, rps=0.0)
    results = by_key(evaluate(scenario(), run(policy="fresh", total=empty, endpoints=[], tw_peak=None)))
    assert results[("total", "p95_ms")].message == \
        "95th percentile latency of the run is unknown: no requests were recorded"
    assert results[("total", "max_failure_ratio")].actual is None
    assert results[("total", "min_rps")].message == "requests/s of the run is 0, below the limit 5"
    assert results[("total", "max_time_wait_client")].message == (
        "peak client TIME_WAIT sockets of the run is unknown: the socket table was not sampled "
        "(sockets.time_wait_client.peak is null)")
    assert results[("list items", "p95_ms")].message == \
        "95th percentile latency of 'list items' is unknown: 'list items' was never requested"
    assert not any(r.passed for r in results.values())


def test_requests_per_connection_falls_back_to_the_connect_count():
    results = by_key(evaluate(scenario(), run(connections={"tcp_connects": 30, "pool_discards": 0,
                                                           "requests_per_connection": None})))
    assert results[("total", "min_requests_per_connection")].actual == 10.0  # 300 requests / 30


def test_no_thresholds_means_no_results():
    assert evaluate(scenario("target: demo\nendpoints: [{path: /}]\n"), run()) == []
    assert run_thresholds(scenario("target: demo\nendpoints: [{path: /}]\n"), "shared") is None


def test_results_round_trip_through_run_json():
    results = evaluate(scenario(), run())
    section = summary_of(results)
    assert (section.passed, section.evaluated, section.failed) == (True, 9, 0)
    assert results_of(make_run(thresholds=section.model_dump())) == results
    assert results_of(make_run()) is None


def problems(text: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_text(textwrap.dedent(text), "s.yaml")
    return str(caught.value)


def test_unknown_metric_is_a_located_error_with_did_you_mean():
    assert problems("target: demo\nendpoints: [{path: /}]\nthresholds:\n  p96_ms: 200\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: thresholds.p96_ms\n"
        "    error: unknown key 'p96_ms'\n"
        "    fix: did you mean 'p99_ms'? (allowed keys: p50_ms, p95_ms, p99_ms, max_failure_ratio, min_rps, "
        "max_time_wait_client, min_requests_per_connection, max_pool_discards, max_pool_waits, min_tls_resumed_ratio, "
        "response_p99_ms, service_p99_ms, max_dropped_ratio, max_late_ratio, max_generator_lag_ms)")


def test_whole_run_metrics_on_an_endpoint_say_where_they_belong():
    text = "target: demo\nendpoints:\n  - path: /\n    thresholds: {max_pool_discards: 0, p95_ms: 9}\n"
    assert problems(text) == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: endpoints[0].thresholds\n"
        "    error: max_pool_discards: a whole-run threshold, not a per-request one\n"
        "    fix: move it to the top-level 'thresholds:' (or a policy's 'thresholds:')")


def test_endpoint_typos_get_did_you_mean_from_the_endpoint_keys():
    assert problems("target: demo\nendpoints:\n  - path: /\n    thresholds: {p50ms: 9}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:4: ==> At key: endpoints[0].thresholds.p50ms\n"
        "    error: unknown key 'p50ms'\n"
        "    fix: did you mean 'p50_ms'? (allowed keys: p50_ms, p95_ms, p99_ms, max_failure_ratio, min_rps)")


def test_a_failure_ratio_above_one_is_rejected():
    assert problems("target: demo\nendpoints: [{path: /}]\nthresholds: {max_failure_ratio: 5}\n") == (
        "1 problem in scenario:\n"
        "s.yaml:3: ==> At key: thresholds.max_failure_ratio\n"
        "    error: must be at most 1.0, got 5\n"
        "    fix: use a smaller number")


def test_pool_waits_threshold():
    text = "target: demo\nendpoints: [{path: /}]\npolicies:\n  fast: {type: shared, engine: fast, " \
           "thresholds: {max_pool_waits: 5}}\n"
    model = scenario(text)
    waited = by_key(evaluate(model, run(policy="fast", connections={"tcp_connects": 2, "pool_waits": 9})))
    assert waited[("total", "max_pool_waits")].message == "pool waits of the run is 9, above the limit 5"
    calm = by_key(evaluate(model, run(policy="fast", connections={"tcp_connects": 2, "pool_waits": 5})))
    assert calm[("total", "max_pool_waits")].passed
    # A run recorded before the counter existed has no figure: the threshold fails and says why.
    old = by_key(evaluate(model, run(policy="fast", connections={"tcp_connects": 2})))
    assert not old[("total", "max_pool_waits")].passed


def test_tls_resumed_ratio_reads_resumed_over_completed_handshakes():
    limits = scenario("target: demo\nendpoints: [{path: /}]\nthresholds: {min_tls_resumed_ratio: 0.9}\n")
    conns = {"tcp_connects": 100, "tls_handshakes": 100, "tls_resumed": 85, "tls_full": 15}
    [low] = evaluate(limits, run(endpoints=[], connections=conns))
    assert (low.actual, low.passed) == (0.85, False)
    assert low.message == "TLS resumed share of the run is 0.85, below the limit 0.9"
    [none] = evaluate(limits, run(endpoints=[], connections={"tcp_connects": 100, "tls_handshakes": 0}))
    assert none.message == ("TLS resumed share of the run is unknown: no TLS handshake was "
                            "completed (or the run predates resumption counts)")
