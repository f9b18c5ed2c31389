"""The hiccup greenlet on a real gevent loop, and the `generator` section of a real headless run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import gevent
import pytest

from workload.engine import hiccup
from workload.errors import ExitCode
from workload.telemetry.generator import GeneratorHealth

ROOT = Path(__file__).resolve().parents[2]


def _measured(seconds: float, block_s: float = 0.0) -> dict:
    health = GeneratorHealth()
    meter = hiccup.start(health)
    gevent.sleep(seconds / 2)
    end = time.perf_counter() + block_s
    while time.perf_counter() < end:  # CPU work that never yields: the whole loop stalls
        pass
    gevent.sleep(seconds / 2)
    health.stop()
    meter.join(timeout=1)
    assert meter.dead, "the hiccup greenlet must end by itself once the run stops"
    return health.summary()


def test_a_blocked_loop_shows_as_lag_and_saturation() -> None:
    blocked = _measured(0.4, block_s=0.3)
    assert blocked["loop_lag_max_ms"] >= 250 and blocked["saturated"] is True
    assert blocked["loop_lag_samples"] >= 10


def test_an_idle_loop_has_little_lag() -> None:
    idle = _measured(0.4)
    # Other processes share the cores, so only the contrast with a blocked loop is asserted.
    assert idle["loop_lag_samples"] >= 10 and idle["loop_lag_max_ms"] < 150


@pytest.mark.slow
def test_a_headless_run_reports_its_generator_and_gates_on_its_lag(tmp_path: Path, demo_target) -> None:
    scenario = tmp_path / "lag.yaml"
    scenario.write_text("name: lag\ntarget: demo\nendpoints: [{path: /}]\npolicies: {shared: {}}\n"
                        "thresholds: {max_generator_lag_ms: 0.001}\n")  # no loop is that punctual
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "workload" / "main.py"), "--headless", "--only-summary",
         "--scenario", str(scenario), "-u", "2", "-r", "2", "-t", "2s", "--results-dir", str(tmp_path),
         "--run-id", "lag"], cwd=ROOT, env={**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        capture_output=True, text=True, timeout=90)
    assert done.returncode == ExitCode.THRESHOLDS, done.stderr[-2000:]
    run = json.loads((tmp_path / "lag" / "run.json").read_text())
    generator = run["generator"]
    assert generator["loop_lag_samples"] >= 50 and generator["loop_lag_p99_ms"] > 0
    assert 0 < generator["cpu_percent"] <= 100 * (os.cpu_count() or 1)
    assert isinstance(generator["saturated"], bool)
    row = run["thresholds"]["results"][0]
    assert row["metric"] == "max_generator_lag_ms" and row["actual"] == generator["loop_lag_p99_ms"]
    assert row["message"].startswith("generator event-loop lag p99 of the run is ")
