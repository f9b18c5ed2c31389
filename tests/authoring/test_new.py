"""`workload new`: the written scenario validates, passes `workload check` and runs as written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workload.cli import main
from workload.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_url_it_targets_the_demo_and_passes_check(tmp_path, capsys):
    out = tmp_path / "first.yaml"
    assert main(["new", "-o", str(out)]) == ExitCode.OK
    assert capsys.readouterr().err == f"wrote {out}; next: workload check {out} && workload compare {out}\n"
    scenario = yaml.safe_load(out.read_text())
    assert scenario["target"] == "demo" and list(scenario["policies"]) == ["shared", "close", "fresh"]
    assert scenario["endpoints"] == [{"name": "health", "path": "/", "expect": {"status": 200}}]
    assert "# thresholds:\n#   p95_ms: 500\n" in out.read_text()  # offered, commented out
    assert main(["check", "--strict", str(out)]) == ExitCode.OK


def test_a_url_gives_the_target_and_its_health_path(capsys):
    assert main(["new", "http://127.0.0.1:8080/healthz", "-o", "-"]) == ExitCode.OK
    scenario = yaml.safe_load(capsys.readouterr().out)
    assert scenario["target"] == "http://127.0.0.1:8080" and scenario["endpoints"][0]["path"] == "/healthz"


def test_an_existing_file_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "mine.yaml"
    out.write_text("precious\n")
    assert main(["new", "-o", str(out)]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err == (f"workload: {out}: error: the file already exists; it was left as it is\n"
                                       "    fix: give another file with -o FILE, or delete it first\n")
    assert out.read_text() == "precious\n"


def test_a_url_that_is_not_http_is_refused(tmp_path, capsys):
    assert main(["new", "localhost:8080", "-o", str(tmp_path / "x.yaml")]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err == (
        "workload: URL: error: 'localhost:8080' is not an http(s) URL\n"
        "    fix: give a URL such as http://127.0.0.1:8080 (or no URL for the demo target)\n")
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.slow
def test_the_new_scenario_runs_as_written(tmp_path, demo_target):
    out = tmp_path / "first.yaml"
    assert main(["new", "-o", str(out)]) == ExitCode.OK
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "workload" / "main.py"), "--headless", "--only-summary",
         "--scenario", str(out), "-u", "2", "-r", "2", "-t", "3s", "--results-dir", str(tmp_path / "results"),
         "--run-id", "first", "--json-file", str(tmp_path / "stats")],
        cwd=ROOT, env={**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = {s["name"]: s for s in json.loads((tmp_path / "stats.json").read_text())}
    assert stats["health"]["num_requests"] >= 4 and stats["health"]["num_failures"] == 0
