"""Faults: refused, reset, timed-out and 5xx requests are failures grouped by cause; the run goes on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workload.faults import by_cause, classify

ROOT = Path(__file__).resolve().parent.parent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


FAULTS = """
name: faults
target:
  host: demo
  hosts: {nowhere: "http://127.0.0.1:%d"}
  headers: {Authorization: "Bearer top-secret-token"}
credentials: {inline: [{username: gina, password: gina-pw}]}
login:
  form: {path: /login, fields: {username: "{{ user.username }}", password: "{{ user.password }}"}}
endpoints:
  - {name: ok, path: /status/200, weight: 3}
  - {name: refused, host: nowhere, path: /}
  - {name: reset, path: /reset}
  - {name: timeout, path: "/slow?ms=2000"}
  - {name: unavailable, path: /status/503}
wait: {constant: 0.01}
policies:
  shared: {timeout: {connect: 1, read: 0.3}}
"""


def test_run_goes_on_and_failures_are_grouped_by_cause(tmp_path, demo_target):
    scenario = tmp_path / "faults.yaml"
    scenario.write_text(FAULTS % _closed_port())
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "workload" / "main.py"), "--headless",
         "--scenario", str(scenario), "-u", "3", "-r", "3", "-t", "4s", "--results-dir", str(tmp_path),
         "--run-id", "faults", "--only-summary"],
        cwd=ROOT, env={**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        capture_output=True, text=True, timeout=90)
    assert done.returncode == 1, done.stderr[-2000:]  # Locust's "requests failed" code
    text = (tmp_path / "faults" / "run.json").read_text()
    run = json.loads(text)
    causes = {e["name"]: e["cause"] for e in run["stats"]["errors"]}
    assert causes == {"refused": "refused", "reset": "reset", "timeout": "timeout", "unavailable": "http_status"}
    ok = next(e for e in run["stats"]["endpoints"] if e["name"] == "ok")
    assert ok["requests"] > 20 and ok["failures"] == 0
    for secret in ("top-secret-token", "gina-pw"):
        assert secret not in text
        assert all(secret not in p.read_text(errors="replace") for p in (tmp_path / "faults").iterdir())


@pytest.mark.parametrize(("error", "cause"), [
    ("ConnectionError(MaxRetryError(\"...NewConnectionError(... [Errno 99] Cannot assign requested address\"))",
     "ports_exhausted"),
    ("ConnectionRefusedError(111, 'Connection refused')", "refused"),
    ("ConnectionResetError(104, 'Connection reset by peer')", "reset"),
    ("RemoteDisconnected('Remote end closed connection without response')", "reset"),
    ("ReadTimeout(ReadTimeoutError(\"HTTPConnectionPool(host='127.0.0.1', port=1): Read timed out.\"))", "timeout"),
    ("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]'))", "tls"),
    ("HTTP 503", "http_status"),
    ("expected status 200, got 418", "http_status"),
    ("expected JSON 'count' == 5, got 4", "expectation"),
    ("something else", "other"),
])
def test_classify(error, cause):
    assert classify(error) == cause


def test_by_cause_sums_occurrences():
    rows = [{"error": "HTTP 503", "occurrences": 2}, {"error": "HTTP 500", "occurrences": 3},
            {"error": "x", "cause": "reset", "occurrences": 1}]
    assert by_cause(rows) == {"http_status": 5, "reset": 1}


def test_interrupted_compare_writes_an_incomplete_report(tmp_path, demo_target):
    env = {**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workload.cli", "compare", "scenarios/demo.yaml", "--policies", "shared,fresh",
         "--users", "2", "--duration", "30s", "--out", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not list((tmp_path / "runs").glob("shared.log")):
        time.sleep(0.2)
    time.sleep(6)  # let the first policy run for a while
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["incomplete"] is True
    assert [p["policy"] for p in summary["policies"]] == ["shared"]
    assert summary["policies"][0]["requests"] > 0
    assert "INCOMPLETE" in (tmp_path / "report.html").read_text()


def test_urls_in_results_lose_their_credentials():
    from workload.controller import _without_userinfo

    assert _without_userinfo("https://bob:hunter2@127.0.0.1:8443") == "https://127.0.0.1:8443"
    assert _without_userinfo("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
