"""TLS session resumption on every engine (requests, fast, httpx), against the demo target's HTTPS listener."""

from __future__ import annotations

import gc
import socket
import ssl
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import gevent
import pytest
import yaml

from tests.helpers import accepted, harness, run_tasks
from workload.engine.tls_sessions import TlsSessionCache
from workload.engine.transport import close_pools, tls_sessions_of
from workload.engine.webui import connection_rows
from workload.errors import ScenarioError
from workload.scenario.loader import load_text
from workload.telemetry import cluster
from workload.telemetry.connections import STATS

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = """
    target: {host: "https://demo", verify: false}
    endpoints:
      - {name: status, path: /status/200}
    policies:
      close: {tls_resumption: true}
      close-full: {type: close}
      fresh: {tls_resumption: true}
      recycle: {every_requests: 5, tls_resumption: true}
      process: {type: shared, scope: process, pool_maxsize: 1, tls_resumption: true}
      process-full: {type: shared, scope: process, pool_maxsize: 1}
"""
ENGINES = ["requests", "fast", "httpx"]


def sessions_of(client: Any) -> TlsSessionCache | None:
    """A user's TLS session cache on any engine (fast keeps it on its client, the others on the adapter)."""
    return client.tls_sessions if hasattr(client, "tls_sessions") else tls_sessions_of(client)


def process_sessions(engine: Any) -> TlsSessionCache | None:
    pool = engine.shared_pool if engine.engine == "httpx" else engine.process_pool
    return cast(TlsSessionCache | None, getattr(pool, "tls_sessions", None))


def close_process_pool(engine: Any) -> None:
    """Close every connection of a `scope: process` pool now, on any engine."""
    if engine.engine == "requests":
        close_pools(engine.process_pool)
    else:
        (engine.shared_pool if engine.engine == "httpx" else engine.process_pool).close()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("policy", ["close", "fresh"])
def test_every_connection_after_the_first_resumes(demo_target, policy, engine):
    h = harness(SCENARIO, policy, demo_target, engine=engine)
    before = accepted(demo_target)
    run_tasks(h.users(2), iterations=20)
    assert h.requests() == 40 and not h.errors()
    assert accepted(demo_target) - before == 40 == STATS.tcp_connects
    # One full handshake per user, then each connection offers the session the last one left.
    assert (STATS.tls_full, STATS.tls_resumed, STATS.tls_handshakes) == (2, 38, 40)


@pytest.mark.parametrize("engine", ENGINES)
def test_without_the_option_every_handshake_is_full(demo_target, engine):
    h = harness(SCENARIO, "close-full", demo_target, engine=engine)
    users = h.users(1)
    run_tasks(users, iterations=10)
    assert (STATS.tls_full, STATS.tls_resumed, STATS.tls_handshakes) == (10, 0, 10)
    assert sessions_of(users[0].client) is None


@pytest.mark.parametrize("engine", ENGINES)
def test_recycle_resumes_across_recycled_connections(demo_target, engine):
    h = harness(SCENARIO, "recycle", demo_target, engine=engine)
    run_tasks(h.users(1), iterations=20)
    assert h.requests() == 20 and not h.errors()
    assert (STATS.tcp_connects, STATS.tls_full, STATS.tls_resumed) == (4, 1, 3)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("policy", "resumes"), [("process", True), ("process-full", False)])
def test_a_process_pool_shares_one_session_cache(demo_target, policy, resumes, engine):
    h = harness(SCENARIO, policy, demo_target, engine=engine)
    users = h.users(3)
    transport = h.user_class.transport
    run_tasks(users, iterations=5)
    # Three users at once on a one-connection pool: requests discards the extra connections, fast
    # and httpx wait for the one.
    first = STATS.tls_full
    close_process_pool(transport)  # every connection closes: the next ones are new for every user
    run_tasks(users, iterations=5, login=False)
    assert h.requests() == 30 and not h.errors()
    assert STATS.tls_handshakes == STATS.tcp_connects == STATS.tls_resumed + STATS.tls_full > first
    if resumes:
        assert STATS.tls_full == first and STATS.tls_resumed > 0  # all of the second round resumed
        cache = process_sessions(transport)
        assert cache is not None and len(cache) == 1
        assert sessions_of(users[0].client) in (None, cache)  # the process's, not a user's own
    else:
        assert STATS.tls_resumed == 0 and process_sessions(transport) is None


@pytest.mark.parametrize("engine", ENGINES)
def test_each_user_keeps_its_own_sessions(demo_target, engine):
    h = harness(SCENARIO, "close", demo_target, engine=engine)
    first, second = h.users(2)
    run_tasks([first], iterations=3)
    cache = sessions_of(first.client)
    assert cache is not None and len(cache) == 1
    assert sessions_of(second.client) is not cache and len(sessions_of(second.client) or ()) == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_fresh_closes_each_connection_before_the_next_request(demo_target, engine):
    # urllib3 2.7's PoolManager.clear() leaves closing to the garbage collector; the policy must not.
    gc.collect()  # connections other tests left to the garbage collector close now
    gevent.sleep(0.2)  # the server notices a close on its next read
    before = demo_target.stats()["https"]["open_connections"]
    h = harness(SCENARIO, "fresh", demo_target, engine=engine)
    users = h.users(1)
    run_tasks(users, iterations=5)
    gevent.sleep(0.2)
    assert demo_target.stats()["https"]["open_connections"] <= before
    assert len(sessions_of(users[0].client) or ()) == 1  # kept when the connection closed
    assert (STATS.tls_full, STATS.tls_resumed) == (1, 4)


def test_resumption_needs_the_policys_shared_ssl_context():
    text = ("target: demo\nendpoints: [{path: /}]\npolicies:\n"
            "  close:\n    ssl_context: per_connection\n    tls_resumption: true\n")
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "s.yaml")
    assert str(caught.value) == (
        "1 problem in scenario:\n"
        "s.yaml:6: ==> At key: policies.close.tls_resumption\n"
        "    error: tls_resumption needs one SSL context for the policy, not ssl_context: per_connection\n"
        "    fix: remove 'ssl_context: per_connection' or set 'tls_resumption: false'")


@pytest.mark.parametrize("engine", ENGINES)
def test_the_shipped_https_scenario_resumes_against_the_demo_target(demo_target, engine):
    shipped = yaml.safe_load((ROOT / "scenarios" / "https.yaml").read_text(encoding="utf-8"))
    if engine != "requests":
        del shipped["policies"]["close-untuned"]  # ssl_context: per_connection is requests' only
    h = harness(yaml.safe_dump(shipped), "close-resume", demo_target, engine=engine)
    run_tasks(h.users(1), iterations=20)
    assert h.requests() == 20 and not h.failures()
    assert (STATS.tls_full, STATS.tls_resumed) == (1, 19)


def test_connections_tab_shows_the_resumed_share():
    live = {"policy": "close-resume", "connections": {"tls_handshakes": 400, "tls_resumed": 388, "tls_full": 12}}
    rows = {r["metric"]: r["value"] for r in connection_rows(live)}
    assert rows["TLS resumed share"] == "97% (388 of 400 handshakes)"
    assert (rows["TLS handshakes resumed"], rows["TLS full handshakes"]) == ("388 handshakes", "12 handshakes")
    assert {r["metric"]: r["value"] for r in connection_rows({"connections": {}})}["TLS resumed share"] == "-"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_the_demo_target_resumes_sessions_of_both_protocols(demo_target, version):
    # Its server SSLContext keeps Python's defaults: a session cache and tickets for TLS 1.2,
    # two tickets per TLS 1.3 handshake (num_tickets); no session id context is needed as it
    # asks no client certificate.  Checked with the plain ssl module, independent of urllib3.
    context = ssl.create_default_context(cafile=demo_target.ca_path)
    context.minimum_version = context.maximum_version = version
    parts = urlsplit(demo_target.https_url)
    host, port = parts.hostname or "", parts.port or 443
    session, reused = None, []
    for _ in range(3):
        with socket.create_connection((host, port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=host, session=session) as tls:
            tls.sendall(b"GET /status/200 HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
            while tls.recv(4096):  # reading also takes in TLS 1.3's post-handshake tickets
                pass
            reused.append(tls.session_reused)
            session = tls.session
    assert reused == [False, True, True]


def test_workers_resumed_and_full_handshakes_are_summed():
    reports = [{"connections": {"tcp_connects": 10, "tls_handshakes": 10, "tls_resumed": 9, "tls_full": 1}},
               {"connections": {"tcp_connects": 5, "tls_handshakes": 5, "tls_resumed": 0, "tls_full": 5}}]
    merged = cluster.merge_connections(reports, requests=15)
    assert (merged["tls_handshakes"], merged["tls_resumed"], merged["tls_full"]) == (15, 9, 6)
