"""The web UI as an outsider reaches it: it listens on 127.0.0.1 by default, and its scenario
field reads only files under the scenarios folder (the command line's --scenario may be any path);
its form offers each scenario's policies, and the Connections tab, its charts' series and its CSV
speak in words and stay redacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from flask import Flask, jsonify

from tests.helpers import free_port, listening_addresses, stop_process, wait_until_up
from workload.engine import webui
from workload.engine.webui import ScenarioField, scenarios_folder
from workload.redaction import MASK, register

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "workload" / "main.py")
SCENARIO = "target: http://127.0.0.1:9\nendpoints: [{path: /}]\npolicies: {shared: {}}\n"


def _problem(folder: Path, value: str, reason: str) -> str:
    return (f"error: the web UI's scenario field reads only *.yaml files under {folder}: '{value}' {reason}\n"
            "    fix: choose a listed scenario, put the file in that folder (or point --scenarios-dir / "
            "WORKLOAD_SCENARIOS_DIR at its own), or give it on the command line with --scenario PATH")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A scenarios folder with one scenario, and an outside folder with a valid scenario too."""
    inside, outside = tmp_path / "scenarios", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    (inside / "ok.yaml").write_text(SCENARIO)
    (outside / "evil.yaml").write_text(SCENARIO)
    (inside / "link.yaml").symlink_to(outside / "evil.yaml")
    (inside / "dirlink").symlink_to(outside, target_is_directory=True)
    return inside.resolve(), outside.resolve()


def test_scenario_field_accepts_only_files_under_the_folder(folders):
    inside, outside = folders
    field = ScenarioField(inside, typed="/anywhere/typed.yaml")
    assert field.choose(str(inside / "ok.yaml")) == (str(inside / "ok.yaml"), None)
    assert field.choose("ok.yaml") == (str(inside / "ok.yaml"), None)  # relative to the folder
    assert field.choose("/anywhere/typed.yaml") == ("/anywhere/typed.yaml", None)  # the command line's
    assert field.choose("") == ("", None)  # empty: the command line's scenario
    for value, reason in ((str(outside / "evil.yaml"), "is outside that folder"),
                          ("/etc/passwd", "is outside that folder"),
                          (str(inside / "link.yaml"), "is outside that folder"),  # a symlink out
                          ("link.yaml", "is outside that folder"),
                          ("dirlink/evil.yaml", "is outside that folder"),
                          ("../outside/evil.yaml", "contains '..'"),
                          ("../x.yaml", "contains '..'"),
                          ("missing.yaml", "is not a scenario file there"),
                          (str(inside), "is not a scenario file there")):
        assert field.choose(value) == (value, _problem(inside, value, reason)), value


def test_scenarios_folder_is_configured_or_next_to_the_cwd_or_the_repo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert scenarios_folder("", ROOT) == (ROOT / "scenarios").resolve()
    (tmp_path / "scenarios").mkdir()
    assert scenarios_folder("", ROOT) == (tmp_path / "scenarios").resolve()
    assert scenarios_folder("elsewhere", ROOT) == (tmp_path / "elsewhere").resolve()


@pytest.mark.slow
def test_web_ui_listens_on_loopback_and_refuses_files_outside_the_folder(tmp_path, folders, demo_target):
    inside, outside = folders
    (inside / "demo.yaml").write_text((ROOT / "scenarios" / "demo.yaml").read_text())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLOAD_", "LOCUST_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", MAIN, "--web-port", str(port), "--scenarios-dir", str(inside),
         "--results-dir", str(tmp_path / "results")],  # no --web-host: the default must be loopback
        cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT), "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ui = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(ui, proc)
        assert listening_addresses(proc.pid, port) == [f"127.0.0.1:{port}"]
        page = requests.get(ui, timeout=5).text
        assert str(inside / "demo.yaml") in page and "scenarios/https.yaml" not in page  # the folder's files
        form = {"user_count": "1", "spawn_rate": "1", "host": "", "policy": "", "run_time": "2s"}
        for value, reason in (("/etc/passwd", "is outside that folder"), ("../x.yaml", "contains '..'"),
                              (str(outside / "evil.yaml"), "is outside that folder"),
                              (str(inside / "link.yaml"), "is outside that folder")):
            answer = requests.post(f"{ui}/swarm", data={**form, "scenario": value}, timeout=10).json()
            assert answer["success"] is False and answer["message"] == _problem(inside, value, reason)
        answer = requests.post(f"{ui}/swarm", data={**form, "scenario": "demo.yaml"}, timeout=10).json()
        assert answer["success"] is True, answer
        requests.get(f"{ui}/stop", timeout=10)
    finally:
        stop_process(proc)


def _template_args(page: str) -> dict:
    start = page.index("window.templateArgs = ") + len("window.templateArgs = ")
    return json.loads(page[start:page.index("</script>", start)])


def _poll(read, ok, timeout: float = 15.0):
    deadline, value = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        value = read()
        if ok(value):
            return value
        time.sleep(0.5)
    raise AssertionError(f"still {value!r} after {timeout:.0f} s")


@pytest.mark.slow
def test_form_offers_each_scenarios_policies_and_the_tab_speaks_in_words(tmp_path, demo_target):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", MAIN, "--web-port", str(port), "--results-dir", str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    ui = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(ui, proc)
        page = requests.get(ui, timeout=5).text
        assert '<script src="./workload/webui.js" defer></script></head>' in page
        assert "openCustomParameters" in requests.get(f"{ui}/workload/webui.js", timeout=5).text
        args = _template_args(page)
        policies = args["workload_form"]["policies"]
        assert policies["scenarios/demo.yaml"] == ["shared", "close", "fresh", "recycle"]
        assert policies["scenarios/https.yaml"] == ["shared", "close", "fresh", "close-untuned", "close-resume"]
        policy = args["extra_options"]["policy"]
        assert policy["choices"][:4] == ["shared", "close", "fresh", "recycle"]  # a <select>, demo's first
        assert {"close-untuned", "pool10"} <= set(policy["choices"])

        form = {"user_count": "2", "spawn_rate": "2", "host": "", "scenario": "scenarios/demo.yaml",
                "policy": "close", "run_time": "20s"}
        assert requests.post(f"{ui}/swarm", data=form, timeout=10).json()["success"] is True

        def rows() -> dict:
            data = requests.get(f"{ui}/stats/requests", timeout=5).json()["extended_stats"][0]["data"]
            return {row["metric"]: row for row in data}
        seen = _poll(rows, lambda r: r.get("TCP connects", {}).get("value", "0 connections") != "0 connections")
        assert seen["Policy"]["value"] == "close"
        expected = seen["Connections: expected vs measured"]
        assert expected["expected"] == "1 connection per request (closed after it)"
        assert expected["value"].startswith("close: expected 1 connection per request (closed after it) — measured ")
        assert not any("_" in metric and "TIME_WAIT" not in metric for metric in seen)  # words, not keys

        def points() -> list:
            return requests.get(f"{ui}/workload/connections/history.json", timeout=5).json()["points"]
        first = _poll(points, lambda p: len(p) >= 2)
        grown = _poll(points, lambda p: len(p) > len(first))
        assert any((p["connects_per_s"] or 0) > 0 for p in grown), grown  # close: new connections all along
        assert any(p["time_wait_client"] is not None for p in grown), grown
        csv_text = requests.get(f"{ui}/workload/connections.csv", timeout=5).text
        assert csv_text.startswith("metric,value,expected\r\nPolicy,close,\r\n"), csv_text
        requests.get(f"{ui}/stop", timeout=10)
        report = requests.get(f"{ui}/stats/report", timeout=10).text
        assert "window.templateArgs" in report and "workload/webui.js" not in report  # the index page only
    finally:
        stop_process(proc)


def test_tab_rows_charts_and_csv_are_redacted(tmp_path):
    secret = "s3cret-" + os.urandom(4).hex()
    register(secret)
    app = Flask("webui-redaction")
    app.add_url_rule("/stats/requests", "stats", lambda: jsonify(stats=[]))
    environment = SimpleNamespace(web_ui=SimpleNamespace(app=app, template_args={}), host=None, parsed_options=None)
    live = {"policy": f"p-{secret}", "connections": {"note": secret}}
    webui.install(environment, lambda: live, lambda *a: None, ScenarioField(tmp_path, ""))
    client = app.test_client()
    for path in ("/stats/requests", "/workload/connections.csv", "/workload/connections/history.json"):
        body = client.get(path).get_data(as_text=True)
        assert secret not in body, (path, body)
    assert MASK in client.get("/workload/connections.csv").get_data(as_text=True)
