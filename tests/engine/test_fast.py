"""The fast engine where geventhttpclient would differ from the requests engine on its own.

Each case runs on both engines where the policy semantics must agree: no hidden resends,
`close` never reusing a connection, TLS failures counted as such, causes of failure named alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
import pytest
from gevent.server import StreamServer

from tests.helpers import harness, run_tasks
from tests.rawserver import http_response, raw_server
from workload.engine.recorder import stats_section
from workload.telemetry.connections import STATS

ENGINES = ("requests", "fast", "httpx")
SCENARIO = """
    target: {host: "%(url)s", verify: %(verify)s}
    endpoints: [{name: root, path: /}]
    policies:
      shared: {}
      close: {}
      retrying: {type: shared, retries: 2, timeout: 0.3}
"""


def _scenario(url: str, verify: str = "false") -> str:
    return SCENARIO % {"url": url, "verify": verify}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_connection_closed_without_an_answer_is_not_silently_resent(engine):
    with raw_server(lambda n: b"") as server:  # accepts, reads, closes without a response
        h = harness(_scenario(server.url), "shared", None, engine=engine)
        run_tasks(h.users(1), iterations=3, login=False)
    assert h.env.stats.total.num_failures == 3
    assert server.connections == STATS.tcp_connects == 3  # one attempt per request, as retries: 0 says


def test_fast_retries_what_the_policy_asks_for():
    def slow(_n: int) -> bytes:
        gevent.sleep(1.0)  # longer than the policy's 0.3 s read timeout
        return http_response(b"late")

    with raw_server(slow) as server:
        h = harness(_scenario(server.url), "retrying", None, engine="fast")
        run_tasks(h.users(1), iterations=2, login=False)
    assert h.env.stats.total.num_failures == 2
    assert server.connections == STATS.tcp_connects == 2 * 3  # each request: one try and two retries


@contextmanager
def keep_alive_server() -> Iterator[dict[str, Any]]:
    """Answers every request keep-alive on the same connection, even after `Connection: close`."""
    seen = {"connections": 0, "requests": 0}

    def handle(sock: Any, _address: Any) -> None:
        seen["connections"] += 1
        sock.settimeout(5)
        buffer = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                while b"\r\n\r\n" in buffer:
                    _, buffer = buffer.split(b"\r\n\r\n", 1)
                    seen["requests"] += 1
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        except OSError:
            return
        finally:
            sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    seen["url"] = f"http://127.0.0.1:{server.server_port}"
    try:
        yield seen
    finally:
        server.stop(timeout=2)


@pytest.mark.parametrize("engine", ENGINES)
def test_close_never_reuses_a_connection_the_server_kept_open(engine):
    with keep_alive_server() as server:
        h = harness(_scenario(server["url"]), "close", None, engine=engine)
        run_tasks(h.users(1), iterations=20, login=False)
        assert not h.errors(), h.errors()
        assert server["requests"] == 20 and server["connections"] == STATS.tcp_connects == 20


@pytest.mark.parametrize("engine", ENGINES)
def test_a_failed_handshake_is_a_tls_failure_not_a_connect_error(demo_target, engine, tmp_path):
    import trustme

    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))  # not the demo's CA
    text = _scenario("https://demo", "other-ca.pem")
    h = harness(text, "close", demo_target, file=str(tmp_path / "s.yaml"), engine=engine)
    run_tasks(h.users(1), iterations=3, login=False)
    assert h.env.stats.total.num_failures == 3
    assert (STATS.tcp_connects, STATS.tls_failures, STATS.tls_handshakes, STATS.connect_errors) == (3, 3, 0, 0)
    [row] = stats_section(h.env.stats, [])["errors"]
    assert row["cause"] == "tls"


@pytest.mark.parametrize("engine", ENGINES)
def test_failure_causes_are_named_alike(engine):
    from tests.helpers import free_port

    with raw_server(lambda n: http_response(b"no", status="503 Service Unavailable")) as server:
        h = harness(_scenario(server.url), "shared", None, engine=engine)
        run_tasks(h.users(1), iterations=2, login=False)
    refused = harness(_scenario(f"http://127.0.0.1:{free_port()}"), "shared", None, engine=engine)
    run_tasks(refused.users(1), iterations=2, login=False)
    causes = [row["cause"] for row in stats_section(h.env.stats, [])["errors"]]
    causes += [row["cause"] for row in stats_section(refused.env.stats, [])["errors"]]
    assert causes == ["http_status", "refused"]
    assert STATS.connect_errors == 2


def test_the_shipped_engines_scenario_runs_every_policy(demo_target):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scenarios" / "engines.yaml"
    text = path.read_text(encoding="utf-8")
    policies = ["shared", "shared-fast", "close", "close-fast", "fresh", "fresh-fast", "recycle", "recycle-fast"]
    for policy in policies:
        h = harness(text, policy, demo_target, file=str(path))
        users = h.users(2)
        run_tasks(users, iterations=5)
        assert h.requests() == 2 * (1 + 5) and not h.errors(), (policy, h.errors())
        assert h.user_class.transport.engine == ("fast" if policy.endswith("-fast") else "requests")
