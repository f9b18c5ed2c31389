"""The locustfile as people run it: headless in a subprocess, and the web UI's fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.helpers import free_port, stop_process, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "workload" / "main.py")


def _env(demo_target) -> dict[str, str]:
    return {**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()}


def test_headless_run_counts_requests_and_writes_results(tmp_path, demo_target):
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--scenario", "scenarios/demo.yaml",
         "--policy", "fresh", "-u", "4", "-r", "4", "-t", "4s", "--json-file", str(tmp_path / "stats"),
         "--results-dir", str(tmp_path), "--run-id", "smoke", "--only-summary"],
        cwd=ROOT, env=_env(demo_target), capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((tmp_path / "stats.json").read_text())
    by_name = {s["name"]: s for s in stats}
    assert by_name["list items"]["num_requests"] > 10
    assert all(s["num_failures"] == 0 for s in stats)
    run = json.loads((tmp_path / "smoke" / "run.json").read_text())
    total = sum(s["num_requests"] for s in stats)
    assert run["policy"]["name"] == "fresh" and run["complete"] is True
    assert run["stats"]["total"]["requests"] == total
    # fresh: one connection per request, as the server counted them.  Locust kills users at
    # the end of the run: one stopped inside connect() leaves a connection the server accepted
    # but the client never finished, and one stopped after connecting recorded no request
    # (at most one of either per user).
    connects, accepted = run["connections"]["tcp_connects"], run["server"]["connections_accepted"]
    assert total <= connects <= total + 4
    assert connects <= accepted <= connects + 4
    assert run["sockets"]["time_wait_client"]["peak"] > 0


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
        assert rows["policy"] == "close" and rows["tcp_connects"] > 0 and rows["tls_handshakes"] > 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not list(tmp_path.glob("*/run.json")):
            time.sleep(0.3)
        [run_file] = list(tmp_path.glob("*/run.json"))
        run = json.loads(run_file.read_text())
        assert run["scenario"]["name"] == "https" and run["policy"]["name"] == "close"
        # close: one TLS connection per request; a user stopped mid-request may add one unrecorded.
        requests_done = run["stats"]["total"]["requests"]
        assert requests_done > 0
        assert requests_done <= run["connections"]["tls_handshakes"] <= requests_done + 2
        bad = requests.post(f"{ui}/swarm", data={**form, "policy": "nope"}, timeout=10).json()
        assert not bad["success"] and "unknown policy 'nope'" in bad["message"]
    finally:
        stop_process(proc)
