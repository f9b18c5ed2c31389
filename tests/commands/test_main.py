"""The locustfile as people run it: headless in a subprocess, and the web UI's fields."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests

from tests.helpers import free_port, stop_process, wait_until_up
from workload.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "workload" / "main.py")


def _env(demo_target) -> dict[str, str]:
    return {**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()}


@pytest.mark.slow
def test_headless_run_counts_requests_and_writes_results(tmp_path, demo_target):
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--scenario", "scenarios/demo.yaml",
         "--policy", "fresh", "-u", "4", "-r", "4", "-t", "4s", "--json-file", str(tmp_path / "stats"),
         "--results-dir", str(tmp_path), "--run-id", "smoke", "--only-summary",
         "--host", "demo"],  # the word demo, as for a scenario's target: the demo's address, logins included
        cwd=ROOT, env=_env(demo_target), capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((tmp_path / "stats.json").read_text())
    by_name = {s["name"]: s for s in stats}
    assert by_name["list items"]["num_requests"] > 10
    assert all(s["num_failures"] == 0 for s in stats)
    run = json.loads((tmp_path / "smoke" / "run.json").read_text())
    total = sum(s["num_requests"] for s in stats)
    assert run["policy"]["name"] == "fresh" and run["complete"] is True
    assert run["target"]["urls"][0] == demo_target.http_url
    assert run["stats"]["total"]["requests"] == total
    # fresh: one connection per request, as the server counted them.  Locust kills users at
    # the end of the run: one stopped inside connect() leaves a connection the server accepted
    # but the client never finished, and one stopped after connecting recorded no request
    # (at most one of either per user).
    connects, accepted = run["connections"]["tcp_connects"], run["server"]["connections_accepted"]
    assert total <= connects <= total + 4
    assert connects <= accepted <= connects + 4
    assert run["sockets"]["time_wait_client"]["peak"] > 0


@pytest.mark.slow
def test_web_ui_scenario_and_policy_fields_take_effect(tmp_path, demo_target):
    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", MAIN, "--web-host", "127.0.0.1", "--web-port", str(port),
         "--results-dir", str(tmp_path)],
        cwd=ROOT, env=_env(demo_target), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(ui, proc)
        page = requests.get(ui, timeout=5).text
        assert "scenarios/https.yaml" in page and "Connections" in page
        form = {"user_count": "2", "spawn_rate": "2", "host": "", "scenario": "scenarios/https.yaml",
                "policy": "close", "run_time": "3s"}
        answer = requests.post(f"{ui}/swarm", data=form, timeout=10).json()
        assert answer["success"], answer
        time.sleep(2)
        live = requests.get(f"{ui}/stats/requests", timeout=5).json()
        rows = {r["metric"]: r["value"] for r in live["extended_stats"][0]["data"]}
        assert rows["Policy"] == "close"  # the Connections tab speaks in words: "12 connections"
        assert int(rows["TCP connects"].split()[0]) > 0 and int(rows["TLS handshakes completed"].split()[0]) > 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not list(tmp_path.glob("*/run.json")):
            time.sleep(0.3)
        [run_file] = list(tmp_path.glob("*/run.json"))
        run = json.loads(run_file.read_text())
        assert run["scenario"]["name"] == "https" and run["policy"]["name"] == "close"
        assert run["requested_duration_s"] == 3.0 and 2.94 <= run["duration_s"] <= 3.2, run["duration_s"]
        # close: one TLS connection per request; a user stopped mid-request may add one unrecorded.
        requests_done = run["stats"]["total"]["requests"]
        assert requests_done > 0
        assert requests_done <= run["connections"]["tls_handshakes"] <= requests_done + 2
        bad = requests.post(f"{ui}/swarm", data={**form, "policy": "nope"}, timeout=10).json()
        assert not bad["success"] and "unknown policy 'nope'" in bad["message"]
    finally:
        stop_process(proc)


# -- durations, fresh folders, interruption, empty runs (issue 9) ------------------------------------
LOCUST = [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--only-summary"]


def _headless(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([*LOCUST, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _server_window(demo_target, proc: subprocess.Popen, poll_s: float = 0.05) -> float:
    """Seconds between the first and the last change of the demo target's request counter,
    measured here with time.monotonic while `proc` runs: the load as the server saw it."""
    last_count, first, last = demo_target.stats()["requests"], None, None
    while proc.poll() is None:
        count = demo_target.stats()["requests"]
        if count != last_count:
            now = time.monotonic()
            first, last, last_count = first or now, now, count
        time.sleep(poll_s)
    assert first is not None and last is not None, "the server saw no request"
    return last - first


@pytest.mark.slow
def test_a_3s_headless_run_lasts_3s_and_says_so(tmp_path, demo_target):
    command = [*LOCUST, "--scenario", "scenarios/demo.yaml", "--policy", "shared", "-u", "4", "-r", "4",
               "-t", "3s", "--results-dir", str(tmp_path), "--run-id", "timed", "--stop-timeout", "5"]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, env=_env(demo_target), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    window = _server_window(demo_target, proc)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, stderr[-2000:]
    assert time.monotonic() - started > 3.0
    run = json.loads((tmp_path / "timed" / "run.json").read_text())
    assert run["requested_duration_s"] == 3.0 and run["load"]["duration_s"] == 3.0
    assert 2.94 <= run["duration_s"] <= 3.2 and run["complete"] is True and run["incomplete_reason"] is None
    # The server saw load for the run's duration (its users then finish the task they are in).
    assert 2.94 - 0.1 <= window <= run["duration_s"] + run["stop_drain_s"] + 0.2, (window, run)


@pytest.mark.slow
def test_the_same_run_id_twice_keeps_both_runs(tmp_path, demo_target):
    args = ["--scenario", "scenarios/demo.yaml", "-u", "2", "-r", "2", "-t", "2s", "--results-dir", str(tmp_path),
            "--run-id", "same"]
    for _ in range(2):
        done = _headless(args, _env(demo_target))
        assert done.returncode == 0, done.stderr[-2000:]
    first, second = (json.loads((tmp_path / name / "run.json").read_text()) for name in ("same", "same-2"))
    assert (first["run_id"], second["run_id"]) == ("same", "same-2")
    assert second["started_at"] > first["ended_at"]


@pytest.mark.slow
def test_an_unwritable_results_dir_is_exit_2_before_any_traffic(tmp_path, demo_target):
    afile = tmp_path / "results"
    afile.write_text("not a folder")
    before = demo_target.stats()["requests"]
    for results, why in ((str(afile), "is a file, not a folder\n    fix: pass a folder path"),
                         ("/proc/workload-no", "is not writable (No such file or directory)\n    fix: pass a folder "
                                               "you can write to, or fix its permissions")):
        done = _headless(["--scenario", "scenarios/demo.yaml", "-t", "2s", "--results-dir", results],
                         _env(demo_target), timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"workload: error: --results-dir {results} {why}" in done.stderr
    assert demo_target.stats()["requests"] == before


@pytest.mark.slow
def test_a_run_id_leading_outside_the_results_dir_is_refused(tmp_path, demo_target):
    done = _headless(["--scenario", "scenarios/demo.yaml", "-t", "2s", "--results-dir", str(tmp_path / "r"),
                      "--run-id", "../escaped"], _env(demo_target), timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "'../escaped' leads outside the results folder" in done.stderr
    assert not (tmp_path / "escaped").exists()


@pytest.mark.slow
def test_ctrl_c_stops_users_before_the_demo_target_and_fails_the_gate(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WORKLOAD_DEMO_TARGET"}  # host: demo, its own target
    command = [*LOCUST, "--scenario", "scenarios/ci.yaml", "-u", "4", "-r", "4", "-t", "30s",
               "--results-dir", str(tmp_path), "--run-id", "cut"]
    log = tmp_path / "locust.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "All users spawned" not in log.read_text(errors="replace"):
        time.sleep(0.2)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    output = log.read_text(errors="replace")
    assert proc.returncode == ExitCode.INCOMPLETE, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "refused" not in output.lower() and "ConnectionRefused" not in output
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert run["complete"] is False and run["incomplete_reason"].startswith("interrupted after ")
    assert run["stats"]["total"]["requests"] > 0 and run["stats"]["total"]["failures"] == 0
    summary = (tmp_path / "cut" / "summary.md").read_text()
    assert summary.startswith("### ❌ Thresholds of ci (shared): INCOMPLETE: 1 of 1 run cannot pass")
    assert "thresholds passed" not in summary
    junit = ET.parse(tmp_path / "cut" / "junit.xml").getroot()
    [case] = [c for c in junit.iter("testcase") if c.get("name") == "run: incomplete"]
    assert case.find("failure").get("type") == "incomplete"


@pytest.mark.slow
def test_a_run_without_one_completed_request_fails_with_its_own_code(tmp_path):
    with socket.socket() as silent:  # accepts connections (kernel backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        port = silent.getsockname()[1]
        scenario = tmp_path / "silent.yaml"
        scenario.write_text(f"name: silent\ntarget: {{host: 'http://127.0.0.1:{port}'}}\n"
                            "endpoints: [{name: hang, path: /}]\npolicies: {shared: {}}\n")
        done = _headless(["--scenario", str(scenario), "-u", "2", "-r", "2", "-t", "2s",
                          "--results-dir", str(tmp_path), "--run-id", "empty"], dict(os.environ))
    assert done.returncode == ExitCode.NO_REQUESTS, done.stderr[-3000:]
    assert "EMPTY run: no request completed (the target never answered within the run)" in done.stderr
    run = json.loads((tmp_path / "empty" / "run.json").read_text())
    assert run["complete"] is True and run["stats"]["total"]["requests"] == 0
    assert run["failures_by_cause"] == {}
    assert "EMPTY: 1 of 1 run cannot pass" in (tmp_path / "empty" / "summary.md").read_text()
