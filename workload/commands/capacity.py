"""Capacity planning: how much load a target takes under each connection policy, and at what cost.

`workload capacity SCENARIO` runs, per policy, one headless Locust child (the machinery of
`workload.commands.compare`) driven by a step shape passed as `--shape` (`workload.plan.stages.ladder`):
users rise by `--step-users` every `--step-duration` up to `--max-users` or `--max-duration`,
and the child stops by itself once two steps in a row breach the SLO.  Each run's exact
per-step figures are analysed by `workload.report.knee` (the knee, and with `--target-rps` the
connection, TIME_WAIT, port, file-descriptor and pool forecast) and written by
`workload.report.capacity`.  The SLO is, in order: the command line's flags, the scenario's
(or the policy's) `thresholds:` p95_ms and max_failure_ratio, the defaults below.
No locust import here.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from workload import scrub
from workload.commands import capacity_open
from workload.commands.compare import MAIN, ChildRuns, run_against_target, run_policies
from workload.errors import ExitCode, RunError
from workload.plan.stages import DEFAULT_STOP_AFTER, ladder
from workload.report.capacity import CAPACITY_SCHEMA, describe, write_capacity
from workload.report.knee import Slo, analyse
from workload.report.runs import load_run
from workload.results import paths, verdict
from workload.results.thresholds import run_thresholds
from workload.scenario.loader import LoadedScenario, load_scenario
from workload.scenario.timespan import seconds

DEFAULT_MAX_USERS = 120
DEFAULT_STEP_USERS = 10
DEFAULT_STEP_DURATION_S = 5.0
DEFAULT_MAX_DURATION_S = 60.0
DEFAULT_SLO_P95_MS = 500.0
DEFAULT_SLO_FAILURE_RATIO = 0.01
DEFAULT_OUT_ROOT = Path("results")
MIN_STEP_S = 2.0  # one shape tick changes the users, the next starts measuring
STEP_RISE_S = 1.0  # each step's new users start within about this long
CHILD_GRACE_S = 30.0  # a child's start-up and shutdown beyond its shape, before it is stopped


@dataclass(frozen=True)
class CapacityRequest:
    scenario: str
    policies: list[str] | None = None
    target_rps: float | None = None
    max_users: int | None = None
    step_users: int | None = None
    step_duration: str | None = None
    max_duration: str | None = None
    slo_p95_ms: float | None = None
    slo_failure_ratio: float | None = None
    out: str | None = None
    replace: bool = False
    model: str = "open"  # "closed": the user ladder below; "open": workload.commands.capacity_open
    start_rate: float | None = None
    step_rate: float | None = None
    max_rate: float | None = None
    repeat: int | None = None
    pause: str | None = None
    slo_p99_ms: float | None = None


@dataclass(frozen=True)
class CapacityPlan:
    loaded: LoadedScenario
    policies: list[str]
    stages: list[dict[str, Any]]
    step_users: int
    step_s: float
    max_users: int
    max_s: float
    slos: dict[str, Slo]
    target_rps: float | None
    out: Path

    @property
    def shape_s(self) -> float:
        return sum(float(stage["duration"]) for stage in self.stages)


def _span(value: str | None, default: float, flag: str) -> float:
    try:
        return seconds(value) if value is not None else default
    except ValueError as exc:
        raise RunError(f"{flag}: {exc}") from exc


def _positive(value: float | None, flag: str) -> None:
    if value is not None and value <= 0:
        raise RunError(f"{flag} must be positive, got {value:g}", fix="pass a number above 0")


def slo_for(loaded: LoadedScenario, policy: str, request: CapacityRequest) -> Slo:
    """The flags, else the scenario's thresholds for this policy, else the defaults."""
    limits = run_thresholds(loaded.model, policy)
    p95 = request.slo_p95_ms or (limits.p95_ms if limits else None) or DEFAULT_SLO_P95_MS
    ratio = request.slo_failure_ratio
    if ratio is None:
        ratio = limits.max_failure_ratio if limits and limits.max_failure_ratio is not None \
            else DEFAULT_SLO_FAILURE_RATIO
    return Slo(p95_ms=p95, failure_ratio=ratio)


def plan_of(request: CapacityRequest) -> CapacityPlan:
    loaded = load_scenario(request.scenario)
    policies = [loaded.check_policy(p) for p in request.policies] if request.policies else loaded.policy_names()
    step_s = _span(request.step_duration, DEFAULT_STEP_DURATION_S, "--step-duration")
    max_s = _span(request.max_duration, DEFAULT_MAX_DURATION_S, "--max-duration")
    for value, flag in ((request.max_users, "--max-users"), (request.step_users, "--step-users"),
                        (request.target_rps, "--target-rps"), (request.slo_p95_ms, "--slo-p95-ms")):
        _positive(value, flag)
    if step_s < MIN_STEP_S:
        raise RunError(f"--step-duration {step_s:g}s is too short to measure", fix=f"use at least {MIN_STEP_S:g}s")
    if max_s < step_s:
        raise RunError(f"--max-duration {max_s:g}s is shorter than one step ({step_s:g}s)", fix="raise it")
    if request.slo_failure_ratio is not None and not 0 <= request.slo_failure_ratio <= 1:
        raise RunError("--slo-failure-ratio must be between 0 and 1", fix="e.g. 0.01 for 1%")
    step_users = request.step_users or DEFAULT_STEP_USERS
    max_users = max(request.max_users or DEFAULT_MAX_USERS, step_users)
    out = paths.output_dir(request.out, DEFAULT_OUT_ROOT, "capacity", request.replace)
    return CapacityPlan(loaded, policies, ladder(step_users, step_s, max_users, max_s, STEP_RISE_S), step_users,
                        step_s, max_users, max_s, {p: slo_for(loaded, p, request) for p in policies},
                        request.target_rps, out)


def locust_command(plan: CapacityPlan, policy: str) -> list[str]:
    slo = plan.slos[policy]
    shape = {"stages": plan.stages, "stop_p95_ms": slo.p95_ms, "stop_failure_ratio": slo.failure_ratio,
             "stop_after": DEFAULT_STOP_AFTER}
    # -t is only a safety net: the shape ends the run first.
    return [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--only-summary",
            "--scenario", plan.loaded.path, "--policy", policy, "--shape", json.dumps(shape),
            "-t", f"{math.ceil(plan.shape_s + CHILD_GRACE_S)}s", "--results-dir", str(plan.out / "runs"),
            "--run-id", policy, "--stop-timeout", "2",
            *(["--arrival", "closed"] if plan.loaded.model.load.arrival is not None else [])]  # users, not a rate


def open_plan_of(request: CapacityRequest) -> capacity_open.OpenPlan:
    """The open model's plan: the rate ladder, steps, repeats and per-policy SLOs."""
    closed_only = {"--max-users": request.max_users, "--step-users": request.step_users,
                   "--max-duration": request.max_duration, "--target-rps": request.target_rps,
                   "--slo-p95-ms": request.slo_p95_ms}
    given = [flag for flag, value in closed_only.items() if value is not None]
    if given:
        raise RunError(f"{', '.join(given)}: only for the closed model (users)",
                       fix="add --model closed, or use --start-rate/--step-rate/--max-rate for the open model")
    loaded = load_scenario(request.scenario)
    policies = [loaded.check_policy(p) for p in request.policies] if request.policies else loaded.policy_names()
    start = request.start_rate or capacity_open.DEFAULT_START_RATE
    step = request.step_rate or capacity_open.DEFAULT_STEP_RATE
    maximum = request.max_rate or capacity_open.DEFAULT_MAX_RATE
    repeat = request.repeat or capacity_open.DEFAULT_REPEAT
    capacity_open.check_rates(start, step, maximum, repeat)
    step_s = _span(request.step_duration, DEFAULT_STEP_DURATION_S, "--step-duration")
    if step_s < MIN_STEP_S:
        raise RunError(f"--step-duration {step_s:g}s is too short to measure", fix=f"use at least {MIN_STEP_S:g}s")
    out = paths.output_dir(request.out, DEFAULT_OUT_ROOT, "capacity", request.replace)
    slos = {p: capacity_open.open_slo(loaded, p, request.slo_p99_ms, request.slo_failure_ratio) for p in policies}
    return capacity_open.OpenPlan(loaded, policies, capacity_open.rate_ladder(start, step, maximum), step_s, repeat,
                                  _span(request.pause, capacity_open.DEFAULT_PAUSE_S, "--pause"), slos, out)


def run_capacity(request: CapacityRequest, console: Console | None = None) -> int:
    scrub.install_console()
    console = console or Console(stderr=True)
    if request.model == "open":
        return capacity_open.run_open_capacity(open_plan_of(request), console)
    plan = plan_of(request)
    paths.fresh_dir(plan.out, "runs")
    runs = ChildRuns(plan.policies, lambda policy: locust_command(plan, policy), plan.out / "runs", plan.shape_s,
                     deadline_s=plan.shape_s + 2 * CHILD_GRACE_S)
    finished, interrupted = run_against_target(
        plan.loaded, plan.out / "runs", lambda demo, flag: run_policies(runs, demo, flag, console))
    result = build_result(plan, finished, incomplete=interrupted or len(finished) < len(plan.policies))
    print(describe(result, write_capacity(result, plan.out)))
    scrub.scrub_tree(plan.out)  # capacity.json, reports, logs and every child's files
    if interrupted:
        return ExitCode.INTERRUPTED
    codes = [c for c in (verdict.exit_code(load_run(path)) for path in finished) if c is not None]
    if result["incomplete"]:
        return min(codes, default=ExitCode.INCOMPLETE)
    return min(codes, default=0)  # an empty run (5) is no capacity figure either


def build_result(plan: CapacityPlan, run_dirs: list[Path], incomplete: bool = False) -> dict[str, Any]:
    """capacity.json: the plan, the SLOs and one analysis per finished policy run."""
    runs = [load_run(path) for path in run_dirs]
    policies = [analyse(run, plan.slos[run.policy.name], plan.target_rps) for run in runs]
    return {
        "schema": CAPACITY_SCHEMA, "scenario": plan.loaded.name, "scenario_path": plan.loaded.path,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "incomplete": incomplete or any(not run.complete for run in runs),
        "plan": {"step_users": plan.step_users, "step_duration_s": plan.step_s, "max_users": plan.max_users,
                 "max_duration_s": plan.max_s, "steps": len(plan.stages), "target_rps": plan.target_rps},
        "slo": {name: slo.to_dict() for name, slo in plan.slos.items()},
        "policies": policies,
    }
