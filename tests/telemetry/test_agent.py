"""workload.telemetry.agent on loopback: a run's session on the agent counts the server side of
real connections (baseline excluded), and the agent refuses what it must (wrong key, stale or
replayed signatures, ports it does not serve, too many sessions)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from workload.demo.launcher import DemoTarget, start_demo_target
from workload.errors import TelemetryError
from workload.telemetry import agent as agent_module
from workload.telemetry.agent import Agent, AgentClient, auth_value, authentic, serve

KEY = b"k" * 32


@pytest.fixture
def own_target() -> Iterator[DemoTarget]:
    """A demo target of this test alone: no other test's sockets on its port (they would expire
    during the test and change the `ss` counts compared here)."""
    target = start_demo_target()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture
def running_agent(own_target) -> Iterator[tuple[str, int]]:
    """An agent serving the target's port, on a free loopback port; yields (url, target port)."""
    port = int(own_target.http_url.rsplit(":", 1)[1])
    agent = Agent(KEY, frozenset({port}), max_seconds=60)
    server = serve(agent, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", port
    finally:
        server.shutdown()
        server.server_close()
        agent.close()


def test_signatures_bind_time_method_path_and_body():
    now = time.time()
    header = auth_value(KEY, "POST", "/v1/sessions", b"{}", now)
    assert authentic(KEY, header, "POST", "/v1/sessions", b"{}", now)
    assert not authentic(b"x" * 32, header, "POST", "/v1/sessions", b"{}", now)  # another key
    assert not authentic(KEY, header, "POST", "/v1/sessions", b'{"a": 1}', now)  # another body
    assert not authentic(KEY, header, "POST", "/v1/sessions/stop/x", b"{}", now)  # another path
    assert not authentic(KEY, header, "POST", "/v1/sessions", b"{}", now + 61)  # too old
    assert not authentic(KEY, None, "POST", "/v1/sessions", b"{}", now)


def _time_wait(port: int, side: str) -> int:
    """TIME_WAIT sockets of `port` per `ss`: its server side (local port) or client side (remote)."""
    where = "sport" if side == "server" else "dport"
    out = subprocess.run(["ss", "-Htan", "state", "time-wait", f"( {where} = :{port} )"], capture_output=True,
                         text=True, timeout=10).stdout
    return len(out.splitlines())


def test_a_session_counts_the_server_side_of_its_run_only(running_agent, own_target):
    url, port = running_agent
    with requests.Session() as before:  # sockets from before the session: its baseline
        for _ in range(3):
            before.get(own_target.http_url + "/", headers={"Connection": "close"}, timeout=5)
    time.sleep(0.2)
    server_before, client_before = _time_wait(port, "server"), _time_wait(port, "client")
    client = AgentClient(url, KEY)
    client.start([f"127.0.0.1:{port}"])
    for _ in range(5):  # Connection: close: mostly the server closes first (TIME_WAIT on its side)
        requests.get(own_target.http_url + "/", headers={"Connection": "close"}, timeout=5)
    time.sleep(0.3)
    figures = client.stop()
    server_new = _time_wait(port, "server") - server_before
    assert figures["time_wait_server"]["end"] == server_new > 0
    assert server_new + _time_wait(port, "client") - client_before == 5  # one TIME_WAIT per connection
    assert figures["established_server"]["end"] == 0 and figures["samples"] >= 1
    assert set(figures) <= {"time_wait_server", "established_server", "samples", "source", "error"}


def test_the_agent_refuses_a_wrong_key_unserved_ports_and_too_many_sessions(running_agent, monkeypatch):
    url, port = running_agent
    with pytest.raises(TelemetryError, match="answered 401"):
        AgentClient(url, b"w" * 32).start([f"127.0.0.1:{port}"])
    with pytest.raises(TelemetryError, match=r"answered 400: .*port\(s\) \[1\] not served by this agent"):
        AgentClient(url, KEY).start(["127.0.0.1:1"])
    monkeypatch.setattr(agent_module, "MAX_SESSIONS", 1)
    first = AgentClient(url, KEY)
    first.start([f"127.0.0.1:{port}"])
    with pytest.raises(TelemetryError, match="answered 429"):
        AgentClient(url, KEY).start([f"127.0.0.1:{port}"])
    first.stop()
    with pytest.raises(TelemetryError, match="answered 404"):  # a session ends once
        first.session = "0" * 32
        first.stop()


def test_the_key_is_required(monkeypatch):
    monkeypatch.delenv(agent_module.KEY_ENV, raising=False)
    with pytest.raises(TelemetryError, match="WORKLOAD_AGENT_KEY is not set"):
        agent_module.agent_key()


@pytest.mark.parametrize(("agent", "message"), [
    ("http://10.9.9.9:9107", "/s.yaml:1: ==> At key: target.agent\n"
     "    error: agent host '10.9.9.9' is not a declared target host\n"
     "    fix: run the agent on the target's host and use that host in its URL (10.200.0.1)"),
    ("http://10.200.0.1:9107/x", "/s.yaml:1: ==> At key: target.agent\n"
     "    error: URL 'http://10.200.0.1:9107/x' has a path or query\n"
     "    fix: give the base URL only; paths go on endpoints"),
])
def test_the_agent_must_be_on_a_declared_host(agent, message):
    from workload.errors import ScenarioError
    from workload.scenario.loader import load_text

    text = f"target: {{host: 'http://10.200.0.1:8080', agent: '{agent}'}}\nendpoints: [{{path: /}}]\n"
    with pytest.raises(ScenarioError) as bad:
        load_text(text, "/s.yaml")
    assert message in str(bad.value)
    declared = load_text(text.replace(agent, "http://10.200.0.1:9107"), "/s.yaml")
    assert declared.model.target.agent == "http://10.200.0.1:9107"
