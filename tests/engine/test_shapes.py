"""Load shapes in YAML (workload.engine.shapes, workload.telemetry.stages, workload.plan.pacing): the pure tick
logic, the schema's checks, per-stage figures, target-rate pacing, and one real headless run
whose two stages each reach their user count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from workload.engine.shapes import (
    DEFAULT_SPIKE_RISE_S,
    Step,
    compile_stages,
    ladder,
    parse_spec,
    peak_users,
    tick_at,
    total_seconds,
)
from workload.errors import RunError, ScenarioError
from workload.plan import pacing
from workload.plan.pacing import rate_wait_time, target_rate_wait
from workload.plan.reqrate import requests_per_task
from workload.scenario.loader import load_text
from workload.scenario.schema import Stage
from workload.telemetry.stages import StageMeter, percentile

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "workload" / "main.py")
BASE = """
name: shaped
target: {host: "http://127.0.0.1:9"}
endpoints: [{path: /a}]
"""


def stages(*specs: dict) -> list[Stage]:
    return [Stage.model_validate(spec) for spec in specs]


# -- the tick ---------------------------------------------------------------------------------
def test_step_stages_tick_users_and_rates_then_stop():
    steps = compile_stages(stages({"duration": "10s", "users": 20, "spawn_rate": 5},
                                  {"duration": 5, "users": 50, "spawn_rate": 30}))
    assert steps == (Step(10.0, 20, 5.0), Step(15.0, 50, 30.0))
    assert tick_at(steps, 0.0) == (20, 5.0)
    assert tick_at(steps, 9.99) == (20, 5.0)
    assert tick_at(steps, 10.0) == (50, 30.0)
    assert tick_at(steps, 14.9) == (50, 30.0)
    assert tick_at(steps, 15.0) is None
    assert tick_at(steps, 100.0) is None
    assert total_seconds(steps) == 15.0 and peak_users(steps) == 50


def test_plain_stages_ramp_linearly_over_the_stage():
    steps = compile_stages(stages({"duration": "20s", "users": 40}, {"duration": "10s", "users": 10},
                                  {"duration": "5s", "users": 10}))
    assert [s.spawn_rate for s in steps] == [2.0, 3.0, 1.0]  # 40/20 up, 30/10 down, no change: any rate
    assert tick_at(steps, 25.0) == (10, 3.0)


def test_spike_bursts_then_falls_back_to_the_previous_level():
    steps = compile_stages(stages({"duration": "10s", "users": 10, "spawn_rate": 10},
                                  {"spike": {"users": 50, "duration": "5s"}},
                                  {"duration": "10s", "users": 10, "spawn_rate": 10}))
    rise = 40 / DEFAULT_SPIKE_RISE_S
    assert steps[1] == Step(15.0, 50, rise)
    assert steps[2] == Step(15.0 + DEFAULT_SPIKE_RISE_S, 10, rise)
    assert tick_at(steps, 12.0) == (50, rise)
    assert tick_at(steps, 15.5) == (10, rise)
    assert tick_at(steps, 20.0) == (10, 10.0)
    assert tick_at(steps, total_seconds(steps)) is None


def test_ladder_is_bounded_by_users_and_by_time():
    assert [s["users"] for s in ladder(10, 5, 35, 60)] == [10, 20, 30, 35]
    assert [s["users"] for s in ladder(10, 5, 1000, 20)] == [10, 20, 30, 40]
    assert ladder(10, 5, 5, 1) == [{"users": 5, "duration": 5, "spawn_rate": 10.0}]  # always one step


def test_shape_option_is_checked():
    spec = parse_spec('{"stages": [{"users": 2, "duration": "3s", "spawn_rate": 4}], "stop_p95_ms": 80}')
    assert spec.stop_p95_ms == 80 and spec.stages[0].users == 2
    for bad in ("not json", '{"stages": []}', '{"stages": [{"users": 2}]}', '{"stages": [], "typo": 1}'):
        with pytest.raises(RunError, match="--shape"):
            parse_spec(bad)


# -- the schema -------------------------------------------------------------------------------
@pytest.mark.parametrize(("load", "message"), [
    ("load: {stages: [{users: 5}]}", "a stage needs 'duration' and 'users'"),
    ("load: {stages: [{users: 5, duration: soon}]}", "invalid duration 'soon'"),
    ("load: {stages: [{users: -1, duration: 5s}]}", "load.stages[0].users"),
    ("load: {stages: [{spike: {users: 5, duration: 2s}, users: 3}]}", "a spike stage takes only"),
    ("load: {stages: [{users: 5, duration: 5s}], users: 10}", "load.users cannot be combined with load.stages"),
    ("load: {stages: []}", "at least 1 item"),
    ("load: {rps: 0}", "greater than 0"),
    ("load: {rps: 50}\nwait: {constant: 1}", "load.rps paces the users itself"),
])
def test_bad_load_is_a_located_validation_error(load: str, message: str):
    with pytest.raises(ScenarioError) as caught:
        load_text(BASE + load)
    assert message in str(caught.value)


def test_stages_and_rate_validate():
    loaded = load_text(BASE + "load:\n  rps: 40\n  stages:\n    - {duration: 5s, users: 4}\n"
                              "    - {spike: {users: 8, duration: 2s}}\n")
    assert loaded.model.load.rps == 40 and len(loaded.model.load.stages) == 2


# -- per-stage figures ------------------------------------------------------------------------
def test_percentile_of_a_histogram():
    assert percentile({}, 0.95) is None
    histogram = {10: 90, 50: 9, 200: 1}
    assert (percentile(histogram, 0.5), percentile(histogram, 0.95), percentile(histogram, 0.999)) == (10, 50, 200)


def _total(requests: int, failures: int, histogram: dict[int, int]) -> SimpleNamespace:
    return SimpleNamespace(num_requests=requests, num_failures=failures, response_times=dict(histogram),
                           total_response_time=sum(ms * n for ms, n in histogram.items()))


def test_stage_meter_measures_each_stage_from_its_second_tick():
    clock = iter([0.0, 1.0, 3.0, 4.0, 6.0])
    meter = StageMeter((Step(3, 2, 10), Step(6, 4, 10)), clock=lambda: next(clock), connects=lambda: 0)
    assert meter.observe(0, _total(0, 0, {}), 0) is None            # t=0: stage 0 starts
    assert meter.observe(0, _total(10, 0, {20: 10}), 2) is None     # t=1: measuring starts
    first = meter.observe(1, _total(50, 2, {20: 40, 90: 10}), 2)    # t=3: stage 1 starts
    assert first is not None and first["stage"] == 0 and first["users_reached"] == 2
    assert (first["requests"], first["rps"], first["failure_ratio"], first["p95_ms"]) == (40, 20.0, 0.05, 90)
    assert meter.observe(1, _total(60, 2, {20: 50, 90: 10}), 4) is None  # t=4
    last = meter.observe(None, _total(100, 2, {20: 90, 90: 10}), 4)       # t=6: the shape ended
    assert last is not None and (last["users"], last["requests"], last["rps"], last["p95_ms"]) == (4, 40, 20.0, 20)
    assert [r["stage"] for r in meter.results] == [0, 1]


# -- target request rate ----------------------------------------------------------------------
def test_rate_counts_the_requests_of_a_flow():
    loaded = load_text(BASE + "flows: [{name: f, weight: 1, steps: [{path: /x}, {path: /y}, {path: /z}]}]\n"
                              "load: {rps: 40, users: 4}")
    assert requests_per_task(loaded.model) == 2.0  # endpoint (1 request) and flow (3), equal weights
    assert rate_wait_time(load_text(BASE).model) is None
    assert rate_wait_time(loaded.model) is not None


class FakeUser:
    """What the wait time reads of a Locust user: its environment (hashable, like a real user)."""

    def __init__(self, options: object = None, shape: object = None):
        self.environment = SimpleNamespace(shape_class=shape, parsed_options=options)


def test_rate_wait_paces_each_user_to_its_share(monkeypatch):
    wait = target_rate_wait(rps=40, per_iteration=2.0, fallback_users=4)  # 4 users x 5 runs/s x 2 = 40/s
    assert wait(FakeUser()) == pytest.approx(0.2)
    assert wait(FakeUser(SimpleNamespace(num_users=8))) == pytest.approx(0.4)  # -u 8: each user half as often
    assert wait(FakeUser(shape=SimpleNamespace(peak_users=2))) == pytest.approx(0.1)  # a shape's peak wins
    now = [1000.0]
    monkeypatch.setattr(pacing.time, "perf_counter", lambda: now[0])
    busy = FakeUser()
    assert wait(busy) == pytest.approx(0.2)
    now[0] += 0.2 + 0.15  # slept its 0.2 s, then its task took 0.15 s
    assert wait(busy) == pytest.approx(0.05)
    now[0] += 0.05 + 0.5  # a task slower than the interval: no wait at all
    assert wait(busy) == 0.0


# -- a real run -------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_stage_shape_reaches_each_stage_user_count(tmp_path, demo_target):
    scenario = tmp_path / "stages.yaml"
    scenario.write_text("name: stages\ntarget: {host: demo}\n"
                        "endpoints: [{name: slow, path: /slow, query: {ms: 20}}]\nwait: {constant: 0.05}\n"
                        "policies: {shared: {}}\nload:\n  stages:\n"
                        "    - {duration: 3s, users: 2, spawn_rate: 10}\n"
                        "    - {duration: 3s, users: 4, spawn_rate: 10}\n")
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--only-summary", "--scenario", str(scenario),
         "--results-dir", str(tmp_path), "--run-id", "shaped"],
        cwd=ROOT, env={**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads((tmp_path / "shaped" / "run.json").read_text())
    assert run["complete"] is True
    assert run["load"]["stages"] == [{"end_s": 3.0, "users": 2, "spawn_rate": 10.0},
                                     {"end_s": 6.0, "users": 4, "spawn_rate": 10.0}]
    history = run["stats"]["history"]
    first = [h["users"] for h in history if h["t"] < 3.0]
    second = [h["users"] for h in history if 3.5 <= h["t"] < 6.0]
    assert first and max(first) == 2, history
    assert second and max(second) == 4, history
    assert [(s["users"], s["users_reached"]) for s in run["stages"]] == [(2, 2), (4, 4)]
    assert all(s["requests"] > 0 and s["failures"] == 0 for s in run["stages"])
    # Twice the users at the same pace: about twice the throughput.
    assert 1.5 < run["stages"][1]["rps"] / run["stages"][0]["rps"] < 2.5
