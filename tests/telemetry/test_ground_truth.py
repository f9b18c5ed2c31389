"""Ground truth: the tool's connection and TIME_WAIT figures held against independent ones.

Connections opened are compared with Debian's nginx `stub_status` accepts (nginx installed
by `.ci/run`; skipped with the reason where it is not installed), and TIME_WAIT per side
with what `ss -tan state time-wait` reports for the same port.  Every policy runs on every
engine (`engine` parameter): the policy, not the client library, decides what the wire sees.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import nginx as nginx_server
from tests.helpers import free_port, harness, run_tasks
from workload.telemetry import SocketSampler, endpoints_from_urls
from workload.telemetry.connections import STATS

HTTP = """
    access_log off;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        location = /nginx_status {{ stub_status; }}
        location / {{ return 200 "ok\\n"; }}
    }}
"""


@dataclass
class Nginx:
    url: str
    port: int

    def accepts(self) -> int:
        with urllib.request.urlopen(f"{self.url}/nginx_status", timeout=5) as answer:
            text = answer.read().decode()
        return int(re.search(r"\n\s*(\d+)\s+\d+\s+\d+", text).group(1))  # "accepts handled requests"


@contextlib.contextmanager
def _running_nginx(work: Path) -> Iterator[Nginx]:
    port = free_port()
    server = Nginx(f"http://127.0.0.1:{port}", port)
    with nginx_server.running(work, nginx_server.config(work, HTTP.format(port=port)), server.accepts):
        yield server


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with _running_nginx(tmp_path_factory.mktemp("nginx")) as server:
        yield server


@pytest.fixture
def own_nginx(tmp_path: Path) -> Iterator[Nginx]:
    """An nginx on a port no earlier test connected to: no TIME_WAIT socket of an earlier test
    shares its 4-tuples, so `ss`'s before/after difference counts exactly this test's sockets
    (with tcp_tw_reuse a new connection can take over an earlier TIME_WAIT socket's 4-tuple,
    which ends that socket early and makes a plain difference come out short)."""
    with _running_nginx(tmp_path) as server:
        yield server


SCENARIO = """
    target: "%(url)s"
    endpoints: [{name: root, path: /}]
    policies:
      shared: {pool_maxsize: 1, engine: %(engine)s}
      close: {engine: %(engine)s}
      fresh: {engine: %(engine)s}
      recycle: {every_requests: 25, engine: %(engine)s}
"""
ENGINES = ("requests", "fast", "httpx")


def _ss_time_wait(port: int) -> tuple[int, int]:
    """(client side, server side) TIME_WAIT sockets for `port`, as `ss` reports them."""
    out = subprocess.run(["ss", "-tan", "state", "time-wait"], capture_output=True, text=True, check=True).stdout
    client = server = 0
    for line in out.splitlines()[1:]:
        fields = line.split()
        local, peer = fields[-2], fields[-1]
        server += local.endswith(f":{port}")
        client += peer.endswith(f":{port}")
    return client, server


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("policy", "expected"), [("shared", 1), ("close", 150), ("fresh", 150), ("recycle", 6)])
def test_connections_opened_equal_nginx_accepts(nginx, policy, expected, engine):
    h = harness(SCENARIO % {"url": nginx.url, "engine": engine}, policy, None)
    before = nginx.accepts()
    run_tasks(h.users(1), iterations=150, login=False)
    after = nginx.accepts()
    assert not h.errors()
    # The "after" status request is itself one accepted connection.
    assert after - before - 1 == STATS.tcp_connects == expected


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("policy", "side"), [("close", "server"), ("fresh", "client")])
def test_time_wait_side_agrees_with_ss(own_nginx, policy, side, engine):
    nginx = own_nginx
    h = harness(SCENARIO % {"url": nginx.url, "engine": engine}, policy, None)
    sampler = SocketSampler(endpoints_from_urls([nginx.url]), interval=0.5)
    ss_before = _ss_time_wait(nginx.port)
    sampler.start()
    run_tasks(h.users(1), iterations=120, login=False)
    time.sleep(0.3)  # let the last FIN/ACK exchange finish
    ss_after = _ss_time_wait(nginx.port)
    figures = sampler.stop()
    new_client, new_server = ss_after[0] - ss_before[0], ss_after[1] - ss_before[1]
    assert figures["time_wait_client"]["end"] == new_client
    assert figures["time_wait_server"]["end"] == new_server
    # Whoever closes first holds TIME_WAIT: the server under close, the client under fresh.
    # Not all 120: with net.ipv4.tcp_tw_reuse=2 (Linux's default) a new loopback connection
    # may take over a TIME_WAIT socket's port, ending that TIME_WAIT early.
    held, other = (new_server, new_client) if side == "server" else (new_client, new_server)
    assert held >= 90 and other <= 5
