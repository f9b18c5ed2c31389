"""Ground truth for engine httpx, HTTP/1.1 and HTTP/2, against Debian's nginx (`listen ... ssl http2`).

nginx 1.22 spells HTTP/2 as a `listen` parameter (`http2 on;` arrived in 1.25.1).  Connections
the tool opened are compared with nginx's `stub_status` accepts; HTTP/2 multiplexing shows as
ONE accepted connection for twenty users sharing the process's pool.  (engine httpx over HTTP/1.1
in cleartext, TIME_WAIT sides included, runs in test_ground_truth.py with the other engines.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import nginx as nginx_server
from tests.helpers import free_port, harness, run_tasks
from tests.telemetry.test_ground_truth import Nginx
from workload.telemetry.connections import STATS

HTTP = """
    access_log off;
    keepalive_requests 100000;
    http2_max_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location = /nginx_status {{ stub_status; }}
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {dir}/cert.pem;
        ssl_certificate_key {dir}/key.pem;
        location / {{ return 200 "ok\\n"; }}
    }}
"""


@pytest.fixture(scope="module")
def nginx_h2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Nginx, str, str]]:
    """(status server, https URL of the h2 listener, CA file)."""
    work = tmp_path_factory.mktemp("nginx-h2")
    ca = nginx_server.tls_files(work)
    port, tls_port = free_port(), free_port()
    server = Nginx(f"http://127.0.0.1:{port}", port)
    conf = nginx_server.config(work, HTTP.format(dir=work, port=port, tls_port=tls_port))
    with nginx_server.running(work, conf, server.accepts):
        yield server, f"https://127.0.0.1:{tls_port}", str(ca)


SCENARIO = """
    target: {host: "%s", verify: "%s"}
    endpoints: [{name: root, path: /}]
    policies:
      shared: {engine: httpx}
      process: {type: shared, scope: process, engine: httpx, pool_maxsize: 4}
      close: {engine: httpx}
      fresh: {engine: httpx}
      recycle: {every_requests: 25, engine: httpx}
      shared_h2: {type: shared, engine: httpx, http2: true}
      process_h2: {type: shared, scope: process, engine: httpx, http2: true}
      fresh_h2: {type: fresh, engine: httpx, http2: true}
      recycle_h2: {type: recycle, every_requests: 25, engine: httpx, http2: true}
"""

# (policy, users, requests per user, connections expected); HTTP/2 iff the name ends in _h2.
CASES = [
    ("shared", 3, 50, 3), ("process", 20, 10, 4), ("close", 1, 60, 60), ("fresh", 1, 60, 60),
    ("recycle", 2, 50, 4), ("shared_h2", 3, 50, 3), ("process_h2", 20, 10, 1), ("fresh_h2", 1, 60, 60),
    ("recycle_h2", 2, 50, 4),
]


@pytest.mark.parametrize(("policy", "users", "requests", "expected"), CASES, ids=[c[0] for c in CASES])
def test_httpx_connections_opened_equal_nginx_accepts(nginx_h2, policy, users, requests, expected):
    status, url, ca = nginx_h2
    h = harness(SCENARIO % (url, ca), policy, None)
    before = status.accepts()
    run_tasks(h.users(users), iterations=requests, login=False)
    after = status.accepts()
    assert not h.errors(), h.errors()
    # The "after" status request is itself one accepted connection.
    assert after - before - 1 == STATS.tcp_connects == STATS.tls_handshakes == expected
    protocol = "h2" if policy.endswith("_h2") else "http/1.1"
    assert STATS.protocols == {protocol: expected}  # what ALPN settled for each connection
    assert STATS.http2_streams == (users * requests if protocol == "h2" else 0)


