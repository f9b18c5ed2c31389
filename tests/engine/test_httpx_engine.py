"""engine: httpx on the wire, HTTP/1.1 and HTTP/2, held against the demo target's own counters.

Connections opened (the tool's `tcp_connects`) must equal the connections the demo target
accepted, and HTTP/2 ones must equal those it served as HTTP/2, for every policy.  The policy
tests every engine shares (HTTP/1.1) are in tests/engine/test_transport.py.
"""

from __future__ import annotations

import pytest

from tests.helpers import harness, run_tasks
from workload.errors import ScenarioError
from workload.scenario.loader import load_text
from workload.telemetry.connections import STATS

SCENARIO = """
    target: https://demo
    credentials: {inline: [{username: alice, password: alice-pw}]}
    login:
      form: {path: /login, fields: {username: "{{ user.username }}", password: "{{ user.password }}"}}
    endpoints:
      - {name: me, path: /api/me, expect: {status: 200, json: [{path: user, equals: alice}]}}
      - {name: echo, path: /echo, method: POST, json: {n: 1}, expect: {json: [{path: json.n, equals: 1}]}}
    policies:
      shared: {engine: httpx, pool_maxsize: 2}
      shared_h2: {type: shared, engine: httpx, http2: true}
      process_h2: {type: shared, scope: process, engine: httpx, http2: true}
      process_h1: {type: shared, scope: process, engine: httpx, pool_maxsize: 4}
      close: {engine: httpx}
      fresh: {engine: httpx}
      fresh_h2: {type: fresh, engine: httpx, http2: true}
      recycle_h2: {type: recycle, every_requests: 5, engine: httpx, http2: true}
"""


def _https(demo) -> dict[str, int]:
    return demo.stats()["https"]


# (policy, users, tasks per user, connections expected, of which HTTP/2).  Each user also logs in once.
CASES = [
    ("shared", 3, 10, 3, 0),  # one connection per user: a user sends one request at a time
    ("shared_h2", 3, 10, 3, 3),
    ("process_h2", 20, 5, 1, 1),  # multiplexing: every user's streams on one connection
    ("process_h1", 20, 5, 4, 0),  # HTTP/1.1: pool_maxsize connections, the other users wait
    ("close", 2, 10, 22, 0),
    ("fresh", 2, 10, 22, 0),
    ("fresh_h2", 2, 10, 22, 22),
    ("recycle_h2", 2, 14, 6, 6),  # 15 requests per user, recycled after every 5th
]


@pytest.mark.parametrize(("policy", "users", "tasks", "connections", "h2"), CASES, ids=[c[0] for c in CASES])
def test_connections_opened_equal_server_accepts(demo_target, policy, users, tasks, connections, h2):
    h = harness(SCENARIO, policy, demo_target)
    before = _https(demo_target)
    run_tasks(h.users(users), iterations=tasks)
    after = _https(demo_target)
    assert not h.errors() and not h.failures(), (h.errors(), h.failures())
    assert h.requests() == users * (tasks + 1)
    accepts = after["connections_accepted"] - before["connections_accepted"]
    served_h2 = after["http2_connections"] - before["http2_connections"]
    snapshot = STATS.snapshot(h.requests())
    assert (accepts, snapshot["tcp_connects"], snapshot["tls_handshakes"]) == (connections,) * 3
    assert (served_h2, snapshot["http2_connections"]) == (h2, h2)
    assert snapshot["protocols"] == {k: v for k, v in (("h2", h2), ("http/1.1", connections - h2)) if v}
    assert snapshot["http2_streams"] == (h.requests() if h2 else 0)
    assert snapshot["setup_ms"]["count"] == connections


def test_process_pool_waits_are_counted_only_when_the_pool_is_busy(demo_target):
    h = harness(SCENARIO, "process_h1", demo_target)
    run_tasks(h.users(8), iterations=3)
    assert STATS.pool_waits > 0  # 8 users, 4 connections
    h = harness(SCENARIO, "process_h2", demo_target)
    run_tasks(h.users(8), iterations=3)
    assert STATS.pool_waits == 0


def test_fresh_keeps_the_users_login_cookie_on_every_new_connection(demo_target):
    h = harness(SCENARIO, "fresh_h2", demo_target)
    [user] = h.users(1)
    run_tasks([user], iterations=4)
    assert "session" in user.client.cookies  # set by the login response, kept in the user's jar
    assert not h.failures()  # /api/me answered alice each time, over a new connection


def test_http2_sends_no_connection_header(demo_target):
    from tests.engine.test_transport import _echo_step, _with_headers

    h = harness(SCENARIO, "shared_h2", demo_target)
    [user] = h.users(1)
    parsed = user.send(_with_headers(_echo_step(h), {"Connection": "close", "Keep-Alive": "5"}))
    assert parsed is not None and not h.errors()
    headers = {k.lower() for k in parsed.json()["headers"]}
    assert "connection" not in headers and "keep-alive" not in headers


OFFSITE = """
    target:
      host: https://demo
      headers: {X-Api-Key: key-not-for-strangers}
      follow_offsite_redirects: %(follow)s
    credentials: {inline: [{username: olga, password: olga-pw}]}
    login:
      form: {path: /login, fields: {username: "{{ user.username }}", password: "{{ user.password }}"}}
    endpoints:
      - {name: away, path: "/redirect?to=%(url)s/landing"}
    policies:
      h1: {type: shared, engine: httpx}
      h2: {type: shared, engine: httpx, http2: true}
      fresh_h2: {type: fresh, engine: httpx, http2: true}
"""


@pytest.mark.parametrize("policy", ["h2", "fresh_h2"])  # h1: tests/engine/test_transport.py
def test_a_redirect_to_an_undeclared_host_is_not_followed(demo_target, policy):
    from tests.rawserver import http_response, raw_server
    from workload.engine.recorder import stats_section

    with raw_server(lambda n: http_response(b"landed"), host="127.0.0.2") as other:
        h = harness(OFFSITE % {"follow": "false", "url": other.url}, policy, demo_target)
        run_tasks(h.users(1), iterations=5)
    assert other.connections == 0
    [row] = stats_section(h.env.stats, [])["errors"]
    assert row["cause"] == "redirect_offsite" and row["occurrences"] == 5


def test_an_unreachable_target_is_a_refused_connection():
    from tests.helpers import free_port
    from workload.engine.recorder import stats_section

    text = (f"target: http://127.0.0.1:{free_port()}\nendpoints: [{{path: /}}]\n"
            "policies: {s: {type: shared, engine: httpx}}")
    h = harness(text, "s", None)
    run_tasks(h.users(1), iterations=2, login=False)
    [row] = stats_section(h.env.stats, [])["errors"]
    assert (row["cause"], row["occurrences"], STATS.connect_errors, STATS.tcp_connects) == ("refused", 2, 2, 0)


HEAD = "target: http://127.0.0.1:8080\nendpoints: [{path: /}]\npolicies:\n  p: "


def _error(policy: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        load_text(HEAD + policy + "\n", "/tmp/s.yaml")
    return str(caught.value)


@pytest.mark.parametrize(("policy", "key", "fix"), [
    ("{type: shared, engine: httpx, ssl_context: per_connection}", "ssl_context",
     "remove 'ssl_context' (httpx shares one context per policy) or use engine: requests"),
    ("{type: shared, engine: httpx, pool_block: false}", "pool_block",
     "remove 'pool_block' (or use engine: requests to measure pool discards)"),
    ("{type: shared, engine: httpx, pool_connections: 3}", "pool_connections",
     "remove 'pool_connections' (pool_maxsize is each host's pool size)"),
    ("{type: shared, engine: httpx, retries: {total: 2, backoff_factor: 0.5}}", "retries",
     "give 'retries' as a number, or use engine: requests"),
])
def test_what_httpx_cannot_honour_is_located(policy, key, fix):
    text = _error(policy)
    assert text.startswith(f"1 problem in scenario:\n/tmp/s.yaml:4: ==> At key: policies.p.{key}\n"
                           f"    error: engine 'httpx' cannot honour '{key}': ")
    assert text.endswith(f"\n    fix: {fix}")


def test_close_over_http2_is_located():
    assert _error("{type: close, engine: httpx, http2: true}") == (
        "1 problem in scenario:\n/tmp/s.yaml:4: ==> At key: policies.p.http2\n"
        "    error: type 'close' needs HTTP/1.1's 'Connection: close', which HTTP/2 does not have\n"
        "    fix: use type 'fresh' for one connection per request, or remove 'http2'")


def test_the_shipped_engines_scenario_runs_its_httpx_policies(demo_target):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scenarios" / "engines.yaml"
    text = path.read_text(encoding="utf-8")
    for policy, protocol, connections in [("shared-httpx", "http/1.1", 2), ("shared-h2", "h2", 2),
                                          ("pooled-h2", "h2", 1), ("fresh-h2", "h2", 12)]:
        h = harness(text, policy, demo_target, file=str(path))
        run_tasks(h.users(2), iterations=5)
        assert h.requests() == 2 * (1 + 5) and not h.errors() and not h.failures(), (policy, h.errors())
        assert h.user_class.transport.engine == "httpx"
        assert STATS.protocols == {protocol: connections}, policy


def test_the_connections_tab_lists_connections_per_protocol():
    from workload.engine.webui import connection_rows

    rows = connection_rows({"policy": "pooled-h2", "connections": {"tcp_connects": 3, "setup_ms": {"avg": 1.5},
                                                                    "protocols": {"h2": 2, "http/1.1": 1}}})
    by_metric = {row["metric"]: row["value"] for row in rows}
    assert by_metric["Connections by protocol (ALPN)"] == "http/2 2 connections, http/1.1 1 connections"


@pytest.fixture(scope="module")
def h2c_demo():
    from workload.demo.launcher import start_demo_target

    target = start_demo_target(h2c=True)
    try:
        yield target
    finally:
        target.stop()


def test_http2_in_cleartext_is_prior_knowledge_h2c(h2c_demo):
    text = SCENARIO.replace("target: https://demo", "target: demo")
    h = harness(text, "process_h2", h2c_demo)
    before = h2c_demo.stats()["http"]
    run_tasks(h.users(10), iterations=3)
    after = h2c_demo.stats()["http"]
    assert not h.errors() and not h.failures(), h.errors()
    assert (after["connections_accepted"] - before["connections_accepted"],
            after["http2_connections"] - before["http2_connections"]) == (1, 1)
    assert (STATS.tcp_connects, STATS.tls_handshakes, STATS.protocols, STATS.http2_streams) == (1, 0, {"h2c": 1}, 40)
