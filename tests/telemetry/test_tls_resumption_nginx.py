"""Ground truth for TLS resumption: our resumed/full counts against nginx's own `$ssl_session_reused`.

nginx (Debian 1.22) serves HTTPS on three ports with `ssl_session_cache shared:SSL:1m`: TLS 1.2
without tickets (resumption by session ID from the server's cache), TLS 1.3 with session
tickets (sent after the handshake), and TLS 1.3 with HTTP/2 (ALPN h2).  It logs
`$ssl_session_reused` ("r" or "."), `$ssl_protocol` and `$server_protocol` per request; under
`close` (and `fresh`) each request is one connection, so each log line is one handshake.
Skipped where nginx is missing.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest

from tests import nginx as nginx_server
from tests.helpers import free_port, harness, run_tasks
from workload.report.findings import DEFAULT_SAME_RATIO
from workload.telemetry.connections import STATS

ROOT = Path(__file__).resolve().parents[2]
HTTP = """
    log_format tls "$ssl_session_reused $ssl_protocol $server_protocol $request_uri";
    access_log {dir}/access.log tls;
    ssl_session_cache shared:SSL:1m;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    server {{
        listen 127.0.0.1:{port12} ssl;
        ssl_protocols TLSv1.2;
        ssl_session_tickets off;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{port13} ssl;
        ssl_protocols TLSv1.3;
        ssl_session_tickets on;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{portidle} ssl;
        ssl_protocols TLSv1.3;
        keepalive_timeout 200ms;
        location / {{ return 200 "ok\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{porth2} ssl http2;
        ssl_protocols TLSv1.3;
        ssl_session_tickets on;
        location / {{ return 200 "ok\\n"; }}
    }}
"""
SCENARIO = """
    target: {host: "%(url)s", verify: "%(ca)s"}
    endpoints: [{name: root, path: "%(path)s"}]
    policies:
      close-resume: {type: close, tls_resumption: true, thresholds: {min_tls_resumed_ratio: 0.9}}
      close-full: {type: close}
"""
SHARED_POLICY = """
      shared-resume: {type: shared, tls_resumption: true}
"""
H2_POLICIES = """
      fresh-h2-resume: {type: fresh, engine: httpx, http2: true, tls_resumption: true}
      fresh-h2-full: {type: fresh, engine: httpx, http2: true}
"""


@dataclass
class TlsNginx:
    urls: dict[str, str]  # protocol -> https://127.0.0.1:port
    ca: Path
    log: Path

    def handshakes(self, path: str) -> list[tuple[str, str]]:
        """(reused "r"/".", protocol) of every logged request for `path` (one handshake each, under close)."""
        return [(fields[0], fields[1]) for fields in self._lines(path)]

    def http_versions(self, path: str) -> set[str]:
        return {fields[2] for fields in self._lines(path)}

    def wait_for(self, path: str, count: int) -> None:
        """nginx logs a request after sending its response: wait (bounded) until the last one is written."""
        deadline = time.monotonic() + 5
        while len(self._lines(path)) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def _lines(self, path: str) -> list[list[str]]:
        lines = [line.split() for line in self.log.read_text().splitlines()]
        return [fields for fields in lines if len(fields) == 4 and fields[3] == path]


@pytest.fixture(scope="module")
def tls_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNginx]:
    work = tmp_path_factory.mktemp("nginx-tls")
    ca = nginx_server.tls_files(work)
    ports = {"TLSv1.2": free_port(), "TLSv1.3": free_port(), "h2": free_port(), "idle": free_port()}
    conf = nginx_server.config(work, HTTP.format(dir=work, port12=ports["TLSv1.2"], port13=ports["TLSv1.3"],
                                                 porth2=ports["h2"], portidle=ports["idle"]))
    server = TlsNginx({name: f"https://127.0.0.1:{port}" for name, port in ports.items()}, ca, work / "access.log")
    context = ssl.create_default_context(cafile=str(ca))

    def answers() -> None:
        for url in server.urls.values():
            urllib.request.urlopen(f"{url}/up", timeout=5, context=context).close()

    with nginx_server.running(work, conf, answers):
        yield server


def _scenario(server: TlsNginx, protocol: str, path: str = "/") -> str:
    return SCENARIO % {"url": server.urls[protocol], "ca": server.ca, "path": path}


@pytest.mark.parametrize("engine", ["requests", "fast", "httpx"])
@pytest.mark.parametrize("protocol", ["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize(("policy", "resumes"), [("close-resume", True), ("close-full", False)])
def test_resumed_handshakes_agree_with_nginx(tls_nginx, protocol, policy, resumes, engine):
    path = f"/{policy}/{protocol}/{engine}"
    count = 100 if engine == "requests" else 40  # the other engines: the same handshakes, fewer of them
    h = harness(_scenario(tls_nginx, protocol, path), policy, None, engine=engine)
    run_tasks(h.users(1), iterations=count, login=False)
    assert h.requests() == count and not h.errors()
    tls_nginx.wait_for(path, count)
    logged = tls_nginx.handshakes(path)
    assert len(logged) == count and {p for _, p in logged} == {protocol}
    # One full handshake, then every connection resumes the session the previous one left.
    resumed = count - 1 if resumes else 0
    assert sum(reused == "r" for reused, _ in logged) == STATS.tls_resumed == resumed
    assert STATS.tls_full == count - resumed and STATS.tls_handshakes == STATS.tcp_connects == count


@pytest.mark.parametrize(("policy", "resumes"), [("fresh-h2-resume", True), ("fresh-h2-full", False)])
def test_http2_connections_resume_too(tls_nginx, policy, resumes):
    # fresh: one HTTP/2 connection (and handshake) per request; ALPN h2 again on a resumed session.
    path = f"/{policy}"
    h = harness(_scenario(tls_nginx, "h2", path) + H2_POLICIES, policy, None)
    run_tasks(h.users(1), iterations=30, login=False)
    assert h.requests() == 30 and not h.errors()
    tls_nginx.wait_for(path, 30)
    logged = tls_nginx.handshakes(path)
    assert len(logged) == 30 and tls_nginx.http_versions(path) == {"HTTP/2.0"}
    assert STATS.snapshot()["protocols"] == {"h2": 30}
    resumed = 29 if resumes else 0
    assert sum(reused == "r" for reused, _ in logged) == STATS.tls_resumed == resumed
    assert STATS.tls_full == 30 - resumed and STATS.tls_handshakes == STATS.tcp_connects == 30


@pytest.mark.parametrize("engine", ["requests", "fast", "httpx"])
def test_a_kept_alive_connection_the_server_closed_leaves_its_session(tls_nginx, engine):
    # nginx closes idle connections after 200 ms: the pool finds its connection dead, closes it
    # (keeping its session) and the next connection resumes.
    path = f"/idle/{engine}"
    h = harness(_scenario(tls_nginx, "idle", path) + SHARED_POLICY, "shared-resume", None, engine=engine)
    users = h.users(1)
    for _ in range(3):
        run_tasks(users, iterations=2, login=False)  # two requests on one connection
        gevent.sleep(0.5)
    assert h.requests() == 6 and not h.errors()
    tls_nginx.wait_for(path, 6)
    logged = tls_nginx.handshakes(path)
    assert [reused for reused, _ in logged] == [".", ".", "r", "r", "r", "r"]  # per request: reused session
    assert (STATS.tcp_connects, STATS.tls_full, STATS.tls_resumed) == (3, 1, 2)


@pytest.mark.slow
def test_compare_report_states_the_throughput_of_resumption(tls_nginx, tmp_path):
    scenario = tmp_path / "tls.yaml"
    scenario.write_text(_scenario(tls_nginx, "TLSv1.3").replace("\n    ", "\n"), encoding="utf-8")
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "workload.cli", "compare", str(scenario), "--users", "2",
                           "--spawn-rate", "2", "--duration", "2s", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rows = {p["policy"]: p for p in summary["policies"]}
    resume, full = rows["close-resume"], rows["close-full"]
    assert resume["tls_resumed"] / resume["tls_handshakes"] > 0.9  # one full handshake per user
    assert full["tls_resumed"] == 0 and full["tls_full"] == full["tls_handshakes"] > 0
    gain = next(f for f in summary["findings"] if f.startswith("close-resume with TLS resumption: "))
    measured = resume["rps"] / full["rps"]
    if 1 / DEFAULT_SAME_RATIO < measured < DEFAULT_SAME_RATIO:  # a busy machine can even out the gain
        assert "about the same throughput as close-full with full handshakes" in gain, gain
    else:
        ratio = re.search(r": ([\d.]+)× the throughput of close-full with full handshakes", gain)
        assert ratio and float(ratio.group(1)) == pytest.approx(measured, abs=0.06), gain
