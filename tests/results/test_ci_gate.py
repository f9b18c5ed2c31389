"""CI gate: JUnit/Markdown outputs, the run and compare gates, and real headless runs (exit 0 / 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.factories import make_run
from tests.helpers import free_port
from workload.errors import ExitCode
from workload.results import gate
from workload.results.ci_outputs import Suite, junit_xml, markdown
from workload.results.run import RunResult, write_run
from workload.results.thresholds import ThresholdResult
from workload.scenario.loader import load_scenario, load_text
from workload.scenario.schema import Scenario

ROOT = Path(__file__).resolve().parents[2]
CI_SCENARIO = ROOT / "scenarios" / "ci.yaml"
RUN_TIMEOUT_S = 60
SCENARIO = load_text("target: demo\nendpoints: [{name: list, path: /l, thresholds: {p95_ms: 100}}]\n"
                     "thresholds: {p95_ms: 500, min_rps: 5}\n", "s.yaml").model


def result(metric: str = "p95_ms", passed: bool = True, scope: str = "total", policy: str = "shared",
           actual: float | None = 40.0, limit: float = 500.0) -> ThresholdResult:
    return ThresholdResult(policy, scope, metric, limit, actual, passed, f"{metric} message")


def canned_run(policy: str = "shared", p95: int = 40, rps: float = 50.0, **overrides: Any) -> RunResult:
    row = {"requests": 100, "failures": 0, "rps": rps, "p50_ms": 5, "p95_ms": p95, "p99_ms": p95}
    return make_run(run_id=policy, duration_s=4.0, scenario={"name": "s"}, policy={"name": policy},
                    stats__total=row, stats__endpoints=[{"name": "list", "method": "GET", **row}],
                    connections={"tcp_connects": 5, "pool_discards": 0}, **overrides)


def after_run(environment: Any, scenario: Scenario, run: RunResult, out_dir: Path) -> None:
    """As the controller does it: judged, then the CI files and the exit code."""
    judged, results = gate.judged(scenario, run)
    gate.after_run(environment, judged, results, out_dir)


# -- outputs ------------------------------------------------------------------------------------
def test_junit_has_one_testcase_per_threshold_with_failures():
    suites = [Suite("s", "shared", [result(), result("min_rps", passed=False, actual=2, limit=5)], 4.0,
                    {"run_id": "r"}),
              Suite("s", "fresh", [result(policy="fresh", scope="list")], 3.5)]
    root = ET.fromstring(junit_xml(suites))
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("time")) == ("testsuites", "3", "1", "7.500")
    first, second = root.findall("testsuite")
    assert (first.get("name"), first.get("tests"), first.get("failures")) == ("s: shared", "2", "1")
    assert first.find("properties/property").attrib == {"name": "run_id", "value": "r"}
    cases = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert cases == [("shared", "total: p95_ms"), ("shared", "total: min_rps"), ("fresh", "list: p95_ms")]
    failure = first.findall("testcase")[1].find("failure")
    assert failure.attrib == {"type": "threshold", "message": "min_rps message"}
    assert failure.text == "min_rps ≥ 5: actual 2 (policy shared, scope total)"
    assert first.findall("testcase")[0].find("failure") is None


def test_junit_without_thresholds_is_an_empty_valid_suite():
    root = ET.fromstring(junit_xml([Suite("s", "shared", [])]))
    assert root.find("testsuite").get("tests") == "0"


def test_markdown_table_and_failures():
    text = markdown([Suite("s", "shared", [result(), result("min_rps", passed=False, actual=2, limit=5)])], "Gate")
    assert text == (
        "### ❌ Gate: 1 of 2 thresholds passed, 1 failed\n\n"
        "| policy | scope | threshold | actual | result |\n"
        "|---|---|---|---:|---|\n"
        "| shared | total | `p95_ms` ≤ 500 ms | 40 ms | ✅ pass |\n"
        "| shared | total | `min_rps` ≥ 5 | 2 | ❌ **fail** |\n\n"
        "Failed:\n"
        "- **shared**: min_rps message\n")
    assert markdown([Suite("s", "shared", [])], "Gate") == "### ✅ Gate: no thresholds defined\n"


# -- run gate -----------------------------------------------------------------------------------
def test_judge_run_stores_results_and_writes_the_ci_files(tmp_path, monkeypatch):
    step_summary = tmp_path / "step.md"
    monkeypatch.setenv(gate.STEP_SUMMARY_ENV, str(step_summary))
    run = canned_run(p95=700)
    _, results = gate.judge_run(SCENARIO, run, tmp_path)
    assert [(r.scope, r.metric, r.passed) for r in results] == [
        ("total", "p95_ms", False), ("total", "min_rps", True), ("list", "p95_ms", False)]
    stored = json.loads((tmp_path / "run.json").read_text())["thresholds"]
    assert (stored["passed"], stored["evaluated"], stored["failed"]) == (False, 3, 2)
    assert ET.parse(tmp_path / "junit.xml").getroot().get("failures") == "2"
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### ❌ Thresholds of s (shared): 1 of 3 thresholds passed, 2 failed\n")
    assert step_summary.read_text() == summary + "\n"
    assert gate.exit_code(results) == ExitCode.THRESHOLDS
    assert gate.exit_code(results[1:2]) is None  # passing: Locust's own exit code stands


@pytest.mark.parametrize(("headless", "p95", "expected"), [(True, 700, 3), (True, 40, None), (False, 700, None)])
def test_after_run_sets_the_exit_code_only_for_unattended_breaches(tmp_path, monkeypatch, headless, p95, expected):
    monkeypatch.delenv(gate.STEP_SUMMARY_ENV, raising=False)
    environment = SimpleNamespace(parsed_options=SimpleNamespace(headless=headless, autostart=False),
                                  process_exit_code=None)
    after_run(environment, SCENARIO, canned_run(p95=p95), tmp_path)
    assert environment.process_exit_code == expected


def test_compare_gate_combines_every_policy(tmp_path, monkeypatch):
    monkeypatch.delenv(gate.STEP_SUMMARY_ENV, raising=False)
    dirs = []
    for policy, p95 in (("shared", 40), ("fresh", 900)):
        run_dir = tmp_path / "runs" / policy
        run_dir.mkdir(parents=True)
        write_run(run_dir, canned_run(policy, p95=p95))  # never judged: judged here
        dirs.append(run_dir)
    gate.judge_run(SCENARIO, canned_run("shared", p95=40), dirs[0])  # judged by its child
    assert gate.judge_compare(dirs, SCENARIO, tmp_path) == ExitCode.THRESHOLDS
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert [s.get("name") for s in root.findall("testsuite")] == ["s: shared", "s: fresh"]
    assert [c.get("classname") for c in root.iter("testcase") if c.find("failure") is not None] == ["fresh", "fresh"]
    assert "| fresh | total | `p95_ms` ≤ 500 ms | 900 ms | ❌ **fail** |" in (tmp_path / "summary.md").read_text()
    assert gate.judge_compare(dirs[:1], SCENARIO, tmp_path / "one") == 0


# -- real headless runs against the demo target ----------------------------------------------------
def headless(scenario: Path, results: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "workload" / "main.py"), "--headless",
               "--only-summary", "--scenario", str(scenario), "-u", "5", "-r", "5", "-t", "4s",
               "--results-dir", str(results), "--run-id", "r", "--stop-timeout", "2"]
    with open(results.parent / f"{results.name}.log", "wb") as log:  # the child keeps its own copy
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_ci_scenario_passes_and_a_tightened_copy_exits_3(tmp_path, demo_target):
    tight = tmp_path / "tight.yaml"
    tight.write_text(CI_SCENARIO.read_text().replace("  min_rps: 5\n", "  min_rps: 100000\n"))
    assert load_scenario(tight).model.thresholds.min_rps == 100000
    env = {**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env(),
           gate.STEP_SUMMARY_ENV: str(tmp_path / "step.md")}
    # Both runs at once: each is 5 users for 4 s, well inside ci.yaml's limits on 2 cores.
    runs = {"pass": headless(CI_SCENARIO, tmp_path / "pass", env), "tight": headless(tight, tmp_path / "tight", env)}
    codes = {name: process.wait(timeout=RUN_TIMEOUT_S) for name, process in runs.items()}
    logs = {name: (tmp_path / f"{name}.log").read_text(errors="replace") for name in runs}
    assert codes == {"pass": 0, "tight": ExitCode.THRESHOLDS}, logs

    passed = tmp_path / "pass" / "r"
    junit = ET.parse(passed / "junit.xml").getroot()
    assert (junit.get("tests"), junit.get("failures")) == ("10", "0")
    assert json.loads((passed / "run.json").read_text())["thresholds"]["passed"] is True
    assert (passed / "summary.md").read_text().startswith("### ✅ Thresholds of ci (shared): 10 of 10 thresholds")
    assert "Thresholds: 10 of 10 thresholds passed" in logs["pass"]

    failed = tmp_path / "tight" / "r"
    cases = {c.get("name"): c.find("failure") for c in ET.parse(failed / "junit.xml").getroot().iter("testcase")}
    assert cases["total: min_rps"] is not None
    assert cases["total: min_rps"].get("message").endswith("below the limit 100,000")
    assert [name for name, failure in cases.items() if failure is not None] == ["total: min_rps"]
    assert "❌ **fail**" in (failed / "summary.md").read_text()
    assert "Shutting down (exit code 3)" in logs["tight"]
    assert (tmp_path / "step.md").read_text().count("### ") == 2  # both runs appended their summary


# -- runs that cannot pass: incomplete and empty ------------------------------------------------------
def test_an_incomplete_run_never_reads_as_passed(tmp_path, monkeypatch):
    monkeypatch.delenv(gate.STEP_SUMMARY_ENV, raising=False)
    reason = "interrupted after 1.20 s of the requested 4 s"
    run = canned_run(p95=40, complete=False, incomplete_reason=reason)
    _, results = gate.judge_run(SCENARIO, run, tmp_path)
    assert all(r.passed for r in results)  # the figures alone would pass...
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("### ❌ Thresholds of s (shared): INCOMPLETE: 1 of 1 run cannot pass "
                              "(0 of 3 thresholds failed on partial figures)\n\n- **shared**: INCOMPLETE run: "
                              "interrupted after 1.20 s of the requested 4 s; its figures cannot pass a gate\n")
    assert "thresholds passed" not in summary
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert (root.get("tests"), root.get("failures")) == ("4", "1")
    first = next(root.iter("testcase"))
    assert (first.get("name"), first.find("failure").get("type")) == ("run: incomplete", "incomplete")
    assert gate.exit_code(results, run) == ExitCode.INCOMPLETE  # ...the run does not


@pytest.mark.parametrize(("headless", "expected"), [(True, ExitCode.NO_REQUESTS), (False, None)])
def test_after_run_fails_an_empty_run(tmp_path, monkeypatch, headless, expected):
    monkeypatch.delenv(gate.STEP_SUMMARY_ENV, raising=False)
    run = canned_run(rps=0.0, stats__total__requests=0)
    environment = SimpleNamespace(parsed_options=SimpleNamespace(headless=headless, autostart=False),
                                  process_exit_code=None)
    after_run(environment, load_text("target: demo\nendpoints: [{name: list, path: /l}]\n", "e.yaml").model,
              run, tmp_path)
    assert environment.process_exit_code == expected
    assert (tmp_path / "summary.md").read_text() == (
        "### ❌ Thresholds of s (shared): EMPTY: 1 of 1 run cannot pass (0 of 0 thresholds failed on partial "
        "figures)\n\n- **shared**: EMPTY run: no request completed (the target never answered within the run)\n")


def test_compare_gate_fails_when_one_run_is_incomplete(tmp_path, monkeypatch):
    monkeypatch.delenv(gate.STEP_SUMMARY_ENV, raising=False)
    dirs = []
    for policy, complete in (("shared", True), ("fresh", False)):
        run_dir = tmp_path / "runs" / policy
        run_dir.mkdir(parents=True)
        write_run(run_dir, canned_run(policy, complete=complete))
        dirs.append(run_dir)
    assert gate.judge_compare(dirs, SCENARIO, tmp_path) == ExitCode.INCOMPLETE
    assert "INCOMPLETE: 1 of 2 runs cannot pass" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow
def test_an_interrupted_run_with_processes_fails_the_gate(tmp_path, demo_target):
    port = str(free_port())
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "workload" / "main.py"), "--headless",
               "--only-summary", "--scenario", str(CI_SCENARIO), "-u", "4", "-r", "4", "-t", "30s",
               "--results-dir", str(tmp_path), "--run-id", "cut", "--stop-timeout", "2", "--processes", "2",
               "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-host", "127.0.0.1",
               "--master-port", port]
    log = tmp_path / "master.log"
    env = {**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()}
    with open(log, "wb") as sink:
        master = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline and "Sending spawn jobs" not in log.read_text(errors="replace"):
        time.sleep(0.2)
    time.sleep(3)
    master.send_signal(signal.SIGTERM)
    assert master.wait(timeout=RUN_TIMEOUT_S) == ExitCode.INCOMPLETE, log.read_text(errors="replace")[-3000:]
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert run["complete"] is False and run["incomplete_reason"].startswith("interrupted after ")
    summary = (tmp_path / "cut" / "summary.md").read_text()
    assert "INCOMPLETE" in summary.splitlines()[0] and "thresholds passed" not in summary
