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

from tests.helpers import harness, run_tasks
from tests.rawserver import http_response, raw_server
from workload.errors import ExitCode
from workload.results.faults import DEFAULT_MAX_ERROR_ROWS, by_cause, classify, install_error_cap, normalise

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket is closed


FAULTS = """
name: faults
target:
  host: demo
  hosts: {nowhere: "http://127.0.0.1:%d", garbage: "%s"}
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
  - {name: garbage, host: garbage, path: "/{{ user_index }}"}
wait: {constant: 0.01}
policies:
  shared: {timeout: {connect: 1, read: 0.3}}
"""


@pytest.mark.slow
def test_run_goes_on_and_failures_are_grouped_by_cause(tmp_path, demo_target):
    scenario = tmp_path / "faults.yaml"
    with raw_server(lambda n: os.urandom(64) + b"\r\n\r\n") as garbage:
        scenario.write_text(FAULTS % (_closed_port(), garbage.url))
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
    assert causes == {"refused": "refused", "reset": "reset", "timeout": "timeout", "unavailable": "http_status",
                      "garbage": "protocol"}
    # Every garbage answer differs, yet they make one row (normalised), not one per response.
    [row] = [e for e in run["stats"]["errors"] if e["name"] == "garbage"]
    # One failure per garbage answer; the run's end may stop each of the 3 users mid-request
    # (accepted by the server, never recorded), as in the other ground-truth tests.
    assert garbage.connections - 3 <= row["occurrences"] <= garbage.connections and row["occurrences"] >= 2
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
    # str() of a truncated body's error mentions "expected": it is still a protocol fault.
    ("('Connection broken: IncompleteRead(10 bytes read, 90 more expected)', IncompleteRead(...))", "protocol"),
    ("ConnectionError(ProtocolError('Connection aborted.', BadStatusLine('…')))", "protocol"),
    ("redirect_offsite: not following the redirect to undeclared host 127.0.0.2:9", "redirect_offsite"),
    ("overflow (timeout): further distinct errors beyond the first 50 error rows", "timeout"),
    ("something else", "other"),
])
def test_classify(error, cause):
    assert classify(error) == cause


def test_by_cause_sums_occurrences():
    rows = [{"error": "HTTP 503", "occurrences": 2}, {"error": "HTTP 500", "occurrences": 3},
            {"error": "x", "cause": "reset", "occurrences": 1}]
    assert by_cause(rows) == {"http_status": 5, "reset": 1}


@pytest.mark.slow
def test_interrupted_compare_writes_an_incomplete_report(tmp_path, demo_target):
    env = {**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workload.cli", "compare", "scenarios/demo.yaml", "--policies", "shared,fresh",
         "--users", "2", "--duration", "30s", "--out", str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before = int(demo_target.stats()["connections_accepted"])
    deadline = time.monotonic() + 60
    # Until the first policy's users are sending (a busy machine can take seconds to start a child).
    while time.monotonic() < deadline and int(demo_target.stats()["connections_accepted"]) == before:
        time.sleep(0.2)
    time.sleep(3)  # let the first policy run for a while
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["incomplete"] is True
    assert [p["policy"] for p in summary["policies"]] == ["shared"]
    assert summary["policies"][0]["requests"] > 0
    assert "INCOMPLETE" in (tmp_path / "report.html").read_text()


def test_urls_in_results_lose_their_credentials():
    from workload.engine.controller import _without_userinfo

    assert _without_userinfo("https://bob:hunter2@127.0.0.1:8443") == "https://127.0.0.1:8443"
    assert _without_userinfo("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


def _rows(h):
    from workload.engine.recorder import stats_section

    return stats_section(h.env.stats, [])["errors"]


def _raw_scenario(url: str, extra: str = "") -> str:
    return f"""
    target: "{url}"
    endpoints:
      - {{name: item, path: "/items/{{{{ user_index }}}}"{extra}}}
    policies: {{close: {{}}}}
    """


def test_garbage_answers_make_one_protocol_row_not_one_per_response():
    with raw_server(lambda n: os.urandom(48) + b"\r\n\r\n") as server:
        h = harness(_raw_scenario(server.url), "close", None)
        run_tasks(h.users(2), iterations=40, login=False)
    assert h.requests() == 80 and server.connections == 80
    [row] = _rows(h)
    assert row["cause"] == "protocol" and row["occurrences"] == 80
    assert "BadStatusLine('…')" in row["error"] and "\\x" not in row["error"]


@pytest.mark.parametrize("extra", ["", ", expect: {status: 200}"])
def test_a_truncated_body_is_a_protocol_fault(extra):
    with raw_server(lambda n: http_response(b'{"ok": true}', length=100)) as server:
        h = harness(_raw_scenario(server.url, extra), "close", None)
        run_tasks(h.users(1), iterations=10, login=False)
    [row] = _rows(h)
    assert row["cause"] == "protocol" and row["occurrences"] == 10
    assert "IncompleteRead(N bytes read, N more expected)" in row["error"]


def test_distinct_errors_are_capped_with_an_overflow_row():
    # Each answer differs in a way normalisation keeps (a short word): only the cap bounds the rows.
    words = [f"w{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}" for n in range(200)]
    with raw_server(lambda n: http_response(json.dumps({"v": words[n]}).encode())) as server:
        h = harness(_raw_scenario(server.url, ", expect: {json: [{path: v, equals: x}]}"), "close", None)
        run_tasks(h.users(1), iterations=120, login=False)
    rows = _rows(h)
    assert len(rows) == DEFAULT_MAX_ERROR_ROWS + 1
    overflow = [r for r in rows if r["error"].startswith("overflow (")]
    assert [r["cause"] for r in overflow] == ["expectation"]
    assert overflow[0]["occurrences"] == 120 - DEFAULT_MAX_ERROR_ROWS
    assert sum(r["occurrences"] for r in rows) == 120 == h.env.stats.total.num_failures


def test_error_cap_keeps_one_overflow_row_per_request_and_cause():
    from locust.stats import RequestStats

    stats = RequestStats()
    install_error_cap(stats, limit=3)
    install_error_cap(stats, limit=3)  # idempotent: not wrapped twice
    for n in range(10):
        stats.log_error("GET", "a", f"expected JSON 'v' == 1, got {n}")
        stats.log_error("GET", "a", ConnectionResetError(104, f"Connection reset by peer {n}"))
    texts = sorted(e.error for e in stats.errors.values())
    assert len(texts) == 5
    assert sum(e.occurrences for e in stats.errors.values()) == 20
    assert {classify(t) for t in texts if t.startswith("overflow")} == {"expectation", "reset"}


@pytest.mark.parametrize(("raw", "normal"), [
    ("ConnectionError(MaxRetryError(\"HTTPConnectionPool(host='127.0.0.1', port=45231): Max retries exceeded "
     "with url: /items/12345?key=s3cret (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
     "object at 0x7f12ab>: Failed to establish a new connection: [Errno 111] Connection refused'))\"))",
     "ConnectionError(MaxRetryError(\"HTTPConnectionPool(host='<host>', port=<port>): Max retries exceeded "
     "with url: <url> (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: "
     "Failed to establish a new connection: [Errno 111] Connection refused'))\"))"),
    ("HTTPError('503 Server Error: SERVICE UNAVAILABLE for url: http://127.0.0.1:4444/status/503')",
     "HTTPError('503 Server Error: SERVICE UNAVAILABLE for url: <url>')"),
    ("peer [::1]:8080 or ('10.0.0.1', 8080) sent b'\\x00\\x01' at 0xdeadbeef, id 123456",
     "peer <address> or ('<address>', N) sent b'…' at 0x…, id N"),
    ("expected status 200, got 418", "expected status 200, got 418"),
])
def test_normalise(raw, normal):
    assert normalise(raw) == normal


def test_normalise_is_bounded():
    assert len(normalise("x" * 1_000_000)) <= 300


def test_the_demo_targets_truncated_body_is_a_protocol_fault(demo_target):
    h = harness("""
    target: demo
    endpoints: [{name: cut, path: /truncated}]
    policies: {shared: {}}
    """, "shared", demo_target)
    run_tasks(h.users(1), iterations=5, login=False)
    [row] = _rows(h)
    assert (row["name"], row["cause"], row["occurrences"]) == ("cut", "protocol", 5)
