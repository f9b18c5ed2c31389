"""Capacity planning (workload.report.knee, workload.commands.capacity, workload.report.capacity): knee finding
and the target-rate forecast on canned data, the plan's SLO and bounds, the report files, and
one short real `workload capacity` run on the demo target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_run
from workload.commands.capacity import DEFAULT_SLO_FAILURE_RATIO, DEFAULT_SLO_P95_MS, CapacityRequest, plan_of
from workload.errors import RunError
from workload.report.capacity import describe, write_capacity
from workload.report.knee import ENDED_BOUND, ENDED_NO_KNEE, ENDED_SATURATED, ENDED_SLO, Slo, analyse, find_knee
from workload.results.run import RunResult

ROOT = Path(__file__).resolve().parents[2]
SLO = Slo(p95_ms=100, failure_ratio=0.01)


def step(users: int, rps: float, p95: int = 60, failure_ratio: float = 0.0) -> dict[str, Any]:
    return {"users": users, "rps": rps, "p95_ms": p95, "failure_ratio": failure_ratio}


def knee_of(*steps: dict[str, Any]) -> dict[str, Any]:
    return find_knee(list(steps), SLO)


# -- the knee ---------------------------------------------------------------------------------
def test_knee_where_throughput_stops_growing():
    knee = knee_of(step(10, 180), step(20, 360), step(30, 540), step(40, 560), step(50, 555, p95=95))
    assert (knee["users"], knee["rps"], knee["ended_by"]) == (30, 540, ENDED_SATURATED)
    assert knee["max_rps_within_slo"] == 560 and knee["max_users_within_slo"] == 50


def test_knee_before_a_sustained_slo_breach():
    knee = knee_of(step(10, 180), step(20, 360), step(30, 540, p95=120), step(40, 700, p95=300), step(50, 900))
    assert (knee["users"], knee["ended_by"]) == (20, ENDED_SLO)
    assert knee["max_rps_within_slo"] == 360  # the step after the breach does not count


def test_one_breaching_step_is_noise():
    knee = knee_of(step(10, 180), step(20, 360, p95=130), step(30, 540), step(40, 720))
    assert (knee["users"], knee["ended_by"]) == (40, ENDED_BOUND)  # still growing at the last step


def test_failures_breach_the_slo():
    knee = knee_of(step(10, 180), step(20, 360, failure_ratio=0.05), step(30, 540, failure_ratio=0.2))
    assert (knee["users"], knee["ended_by"]) == (10, ENDED_SLO)


def test_no_knee_when_the_first_steps_breach():
    knee = knee_of(step(10, 180, p95=400), step(20, 200, p95=800))
    assert knee["users"] is None and knee["ended_by"] == ENDED_NO_KNEE


def test_small_steps_need_proportionally_smaller_gains():
    # +1 user on 20 is +5% users: +3% RPS is still linear growth, not saturation.
    knee = knee_of(step(20, 400), step(21, 412), step(22, 424))
    assert (knee["users"], knee["ended_by"]) == (22, ENDED_BOUND)


# -- steps and forecast from a run ------------------------------------------------------------
def canned_run(policy: str, policy_type: str, per_request: float, scope: str = "user") -> RunResult:
    """A capacity run.json: 4 steps of 10 users, 5 s each, measured from second 1 to 5."""
    t0, stages, series = 1000.0, [], []
    for i, (rps, p95) in enumerate([(180, 55), (360, 58), (540, 70), (560, 150)]):
        users, start = 10 * (i + 1), t0 + 5 * i
        requests = int(rps * 4)
        stages.append({"stage": i, "users": users, "users_reached": users, "started_at": start,
                       "measured_from": start + 1, "ended_at": start + 5, "requests": requests, "failures": 0,
                       "rps": rps, "failure_ratio": 0.0, "avg_ms": 50.0, "p50_ms": 50, "p95_ms": p95, "p99_ms": p95,
                       "tcp_connects": int(requests * per_request), "connects_per_s": rps * per_request})
        series += [{"t": 5 * i + s, "tw_client": 10 * (i + 1) * s, "tw_server": 30 * (i + 1) * s,
                    "est_client": users, "est_server": users} for s in range(1, 6)]
    return make_run(run_id=policy, started_at=t0,
                    policy={"name": policy, "type": policy_type, "settings": {"scope": scope}},
                    target={"urls": ["http://127.0.0.1:8080"], "local": True}, ports={"size": 28232},
                    stages=stages, sockets={"series": series})


def test_steps_read_sockets_in_each_measured_window():
    result = analyse(canned_run("close", "close", 1.0), SLO)
    first = result["steps"][0]
    assert (first["users"], first["connections"], first["time_wait_client"], first["time_wait_server"]) == \
        (10, 10.0, 50, 150)
    assert first["connections_per_request"] == 1.0
    assert result["knee"]["users"] == 30 and result["forecast"] is None


def test_forecast_for_a_connection_per_request_policy():
    forecast = analyse(canned_run("close", "close", 1.0), SLO, target_rps=300)["forecast"]
    assert forecast["scaled_from_users"] == 20  # the first step that reached 300/s
    assert forecast["reachable"] is True
    assert forecast["new_connections_per_s"] == 300
    assert forecast["time_wait_upper_bound"] == 18_000  # 300/s x 60 s
    assert forecast["time_wait_client_share"] == 0.25  # the client held a quarter of TIME_WAIT
    assert forecast["time_wait_client"] == 4_500
    assert forecast["port_range_share"] == round(4_500 / 28232, 4)
    assert forecast["in_flight"] == 15.0  # 300/s x 50 ms
    assert forecast["users_needed"] == 17  # 18 RPS per user
    assert forecast["pool_maxsize"] is None and "does not apply" in forecast["pool_note"]
    assert forecast["ports_exhausted"] is False and forecast["port_note"] is None
    crowded = analyse(canned_run("close", "close", 1.0), SLO, target_rps=2000)["forecast"]
    assert crowded["time_wait_client"] == 30_000 and crowded["ports_exhausted"] is True  # > 28,232 ports
    assert "EADDRNOTAVAIL" in crowded["port_note"]


def test_forecast_for_a_pooled_policy_and_beyond_the_knee():
    forecast = analyse(canned_run("pool", "shared", 0.0, scope="process"), SLO, target_rps=1000)["forecast"]
    assert forecast["reachable"] is False and forecast["scaled_from_users"] == 30  # from the knee
    assert forecast["new_connections_per_s"] == 0 and forecast["time_wait_client"] == 0
    assert forecast["in_flight"] == 50.0
    assert (forecast["pool_maxsize"], forecast["pool_connections"]) == (50, 1)


# -- plan and report --------------------------------------------------------------------------
def test_slo_comes_from_flags_then_thresholds_then_defaults(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("target: {host: 'http://127.0.0.1:9'}\nendpoints: [{path: /}]\n"
                        "thresholds: {p95_ms: 80}\npolicies:\n  shared: {}\n"
                        "  close: {thresholds: {max_failure_ratio: 0.1}}\n")
    plan = plan_of(CapacityRequest(str(scenario), step_duration="3s", max_duration="9s", step_users=5))
    assert plan.slos["shared"] == Slo(80, DEFAULT_SLO_FAILURE_RATIO)
    assert plan.slos["close"] == Slo(80, 0.1)
    assert [s["users"] for s in plan.stages] == [5, 10, 15] and plan.shape_s == 9
    flags = plan_of(CapacityRequest(str(scenario), slo_p95_ms=300, slo_failure_ratio=0.0))
    assert flags.slos["close"] == Slo(300, 0.0)
    bare = tmp_path / "bare.yaml"
    bare.write_text("target: {host: 'http://127.0.0.1:9'}\nendpoints: [{path: /}]\n")
    assert plan_of(CapacityRequest(str(bare))).slos["shared"] == Slo(DEFAULT_SLO_P95_MS, DEFAULT_SLO_FAILURE_RATIO)


@pytest.mark.parametrize(("request_kwargs", "message"), [
    ({"step_duration": "1s"}, "too short to measure"),
    ({"step_duration": "10s", "max_duration": "5s"}, "shorter than one step"),
    ({"max_users": 0}, "--max-users must be positive"),
    ({"slo_failure_ratio": 2.0}, "between 0 and 1"),
    ({"max_duration": "soon"}, "--max-duration"),
])
def test_bad_bounds_are_refused(request_kwargs: dict[str, Any], message: str):
    with pytest.raises(RunError, match=message):
        plan_of(CapacityRequest(str(ROOT / "scenarios" / "capacity.yaml"), **request_kwargs))


def test_report_files_are_self_contained(tmp_path):
    policies = [analyse(canned_run("close", "close", 1.0), SLO, 300),
                analyse(canned_run("shared", "shared", 0.0), SLO, 300)]
    result = {"schema": "workload.commands.capacity/1", "scenario": "canned", "scenario_path": "x.yaml",
              "generated_at": "now", "incomplete": False, "slo": {"close": SLO.to_dict(), "shared": SLO.to_dict()},
              "plan": {"step_users": 10, "step_duration_s": 5, "max_users": 40, "max_duration_s": 20, "steps": 4,
                       "target_rps": 300}, "policies": policies}
    paths = write_capacity(result, tmp_path)
    assert json.loads(paths.json.read_text())["policies"][0]["knee"]["users"] == 30
    markdown = paths.markdown.read_text()
    assert "## Knee per policy" in markdown and "## At 300 requests/s" in markdown and "## Steps: close" in markdown
    html = paths.html.read_text()
    assert html.count("<svg") == 2 and "knee: 30 users, 540 RPS" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert "knee at 30 users: 540 RPS" in describe(result, paths)


# -- a real capacity run ----------------------------------------------------------------------
@pytest.mark.slow
def test_capacity_run_on_the_demo_target_finds_the_knee(tmp_path, demo_target):
    # pool10: one process-wide pool of 10 blocking connections, so at most 10 requests are in flight
    # (~190/s at 50 ms) on any machine: throughput grows up to 10 users, then users only queue.
    out = tmp_path / "capacity"
    done = subprocess.run(
        [sys.executable, "-m", "workload.cli", "capacity", "scenarios/capacity.yaml", "--model", "closed",
         "--policies", "pool10", "--step-users", "5", "--step-duration", "3s", "--max-users", "30",
         "--max-duration", "18s", "--target-rps", "150", "--out", str(out)],
        cwd=ROOT, env={**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "capacity.json").read_text())
    (policy,) = result["policies"]
    knee, steps = policy["knee"], policy["steps"]
    assert result["slo"]["pool10"] == {"p95_ms": 100.0, "failure_ratio": 0.01}  # the scenario's thresholds
    assert knee["ended_by"] in (ENDED_SATURATED, ENDED_SLO), steps
    assert knee["users"] in (10, 15) and 120 < knee["rps"] < 220, steps
    assert max(s["connections"] for s in steps) <= 10.5  # the pool never opened more
    assert len(steps) < 6 and policy["stopped_early"]  # two breaching steps in a row ended the run
    forecast = policy["forecast"]
    assert forecast["reachable"] and forecast["new_connections_per_s"] < 5
    assert 6 <= forecast["pool_maxsize"] <= 10 and forecast["pool_connections"] == 1  # 150/s x ~55 ms
    assert (out / "capacity.md").is_file() and "<svg" in (out / "capacity.html").read_text()
    assert "pool10     knee at" in done.stdout


# -- the open model -------------------------------------------------------------------------------
@pytest.mark.slow
def test_open_capacity_on_the_demo_target_finds_the_knee_from_the_intended_start(tmp_path, demo_target):
    # pool10 serves ~190 requests/s at 50 ms whatever the offered rate: at 400/s arrivals queue
    # for the pool, so the response time from the intended start climbs while 50/s stays flat.
    out = tmp_path / "open"
    done = subprocess.run(
        [sys.executable, "-m", "workload.cli", "capacity", "scenarios/capacity.yaml", "--policies", "pool10",
         "--start-rate", "50", "--step-rate", "350", "--max-rate", "400", "--step-duration", "2s",
         "--pause", "0.5s", "--out", str(out)],
        cwd=ROOT, env={**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env()},
        capture_output=True, text=True, timeout=240)  # two children; each one's start-up dominates
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "capacity.json").read_text())
    assert result["model"] == "open" and result["plan"]["rates"] == [50, 400]
    (policy,) = result["policies"]
    low, high = policy["steps"]
    assert policy["knee"]["rate"] == 50 and policy["knee"]["ended_by"] in ("latency turned up", "slo"), low
    assert high["response_p99_ms"] > 2 * low["response_p99_ms"] and high["turned"], high
    assert low["offered_rate"] == pytest.approx(50, rel=0.05) and low["dropped_ratio"] == 0
    assert (out / "runs" / "pool10-r50-1" / "run.json").is_file()
    html = (out / "capacity.html").read_text()
    assert "<svg" in html and "offered vs achieved" in html and "<script" not in html
    assert "pool10     knee at 50/s offered" in done.stdout


def test_user_ladder_flags_belong_to_the_closed_model(tmp_path):
    done = subprocess.run([sys.executable, "-m", "workload.cli", "capacity", "scenarios/capacity.yaml",
                           "--step-users", "5", "--out", str(tmp_path / "x")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--step-users: only for the closed model (users)" in done.stderr
    assert "fix: add --model closed, or use --start-rate/--step-rate/--max-rate for the open model" in done.stderr


def test_the_closed_model_runs_an_open_scenario_as_users_and_the_open_model_keeps_its_settings():
    from workload.commands import capacity_open
    from workload.commands.capacity import locust_command
    from workload.scenario.loader import load_scenario

    open_scenario = str(ROOT / "scenarios" / "open.yaml")
    command = locust_command(plan_of(CapacityRequest(open_scenario, model="closed")), "shared")
    assert command[command.index("--arrival") + 1] == "closed"
    step = json.loads(capacity_open.arrival_json(load_scenario(open_scenario), 80, 3))
    assert step == {"poisson": False, "max_in_flight": 100, "identities": 20, "rate": 80, "duration": "3s"}
    shipped = json.loads(capacity_open.arrival_json(load_scenario(ROOT / "scenarios" / "capacity.yaml"), 80, 3))
    assert shipped == {"poisson": False, "max_in_flight": 500, "rate": 80, "duration": "3s"}  # open by default
    closed = json.loads(capacity_open.arrival_json(load_scenario(ROOT / "scenarios" / "demo.yaml"), 80, 3))
    assert closed == {"max_in_flight": capacity_open.DEFAULT_MAX_IN_FLIGHT, "rate": 80, "duration": "3s"}
