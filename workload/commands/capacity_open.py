"""Open-model capacity: `workload capacity --model open` steps the arrival rate per policy.

Per policy, a ladder of arrival rates (`rate_ladder`: `--start-rate`, `--step-rate` up to
`--max-rate`, the open counterpart of `workload.engine.shapes.ladder`) is run one step at a time,
each step (and each of its `--repeat` repeats) as one headless Locust child with
``--arrival '{"rate": R, "duration": ...}'`` (`workload.scenario.arrival_override`, with the
scenario's own `load.arrival` settings but its rate), into
`runs/<policy>-r<R>-<n>/`.  Between steps the command waits `--pause` seconds, and longer while
client TIME_WAIT sockets hold more than `DEFAULT_TIME_WAIT_SHARE` of the ephemeral port range
(a close or fresh policy at a high rate), so one step's sockets do not starve the next.  A
policy's ladder stops after two steps in a row past the knee.  `workload.report.openknee`
finds the knee; `workload.report.capacity_open` writes the report.  No locust import.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from workload import scrub
from workload.commands.compare import MAIN, ChildRuns, Interrupted, run_against_target, run_policies
from workload.demo.launcher import DemoTarget
from workload.errors import ExitCode, RunError
from workload.report.capacity_open import describe_open, write_open_capacity
from workload.report.openknee import DEFAULT_BREACH_STEPS, OpenSlo, analyse_open, combine, step_of, turned
from workload.report.runs import load_run
from workload.results import paths
from workload.results.thresholds import run_thresholds
from workload.scenario.loader import LoadedScenario

OPEN_SCHEMA = "workload.commands.capacity-open/1"
DEFAULT_START_RATE = 25.0
DEFAULT_STEP_RATE = 25.0
DEFAULT_MAX_RATE = 250.0
DEFAULT_REPEAT = 1
DEFAULT_PAUSE_S = 1.0
DEFAULT_MAX_IN_FLIGHT = 500  # generous: a step past the knee should queue (and show it), not drop at once
DEFAULT_SLO_P99_MS = 1000.0
DEFAULT_SLO_DROPPED = 0.01
DEFAULT_SLO_LATE = 0.05
DEFAULT_SLO_FAILURES = 0.01
DEFAULT_TIME_WAIT_SHARE = 0.25
MAX_DRAIN_S = 70.0  # TIME_WAIT lasts 60 s on Linux
CHILD_GRACE_S = 30.0


@dataclass(frozen=True)
class OpenPlan:
    loaded: LoadedScenario
    policies: list[str]
    rates: list[float]
    step_s: float
    repeat: int
    pause_s: float
    slos: dict[str, OpenSlo]
    out: Path


def rate_ladder(start: float, step: float, maximum: float) -> list[float]:
    """Rates from `start` in steps of `step` up to `maximum` (at least one)."""
    count = max(1, math.floor((maximum - start) / step + 1e-9) + 1)
    return [round(start + i * step, 3) for i in range(count)]


def open_slo(loaded: LoadedScenario, policy: str, p99_ms: float | None, failures: float | None) -> OpenSlo:
    """The flags, else the scenario's (or policy's) open-model thresholds, else the defaults."""
    t = run_thresholds(loaded.model, policy)

    def pick(flag: float | None, key: str, default: float) -> float:
        value = flag if flag is not None else getattr(t, key, None) if t is not None else None
        return float(value) if value is not None else default

    return OpenSlo(response_p99_ms=pick(p99_ms, "response_p99_ms", DEFAULT_SLO_P99_MS),
                   dropped_ratio=pick(None, "max_dropped_ratio", DEFAULT_SLO_DROPPED),
                   late_ratio=pick(None, "max_late_ratio", DEFAULT_SLO_LATE),
                   failure_ratio=pick(failures, "max_failure_ratio", DEFAULT_SLO_FAILURES))


def step_id(policy: str, rate: float, repeat: int) -> str:
    return f"{policy}-r{rate:g}-{repeat + 1}"


def arrival_json(loaded: LoadedScenario, rate: float, step_s: float) -> str:
    """`--arrival` for one step: the scenario's own open-model settings (max_in_flight, poisson,
    identities...) at this rate, or for a closed scenario room for a backlog past the knee."""
    own = loaded.model.load.arrival
    kept = own.model_dump(mode="json", exclude_none=True, exclude={"rate", "stages"}) if own is not None \
        else {"max_in_flight": DEFAULT_MAX_IN_FLIGHT}
    return json.dumps({**kept, "rate": rate, "duration": f"{step_s:g}s"})


def locust_command(plan: OpenPlan, policy: str, rate: float, run_id: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--only-summary",
            "--scenario", plan.loaded.path, "--policy", policy,
            "--arrival", arrival_json(plan.loaded, rate, plan.step_s),
            "--results-dir", str(plan.out / "runs"), "--run-id", run_id, "--stop-timeout", "2"]


def client_time_wait() -> int | None:
    """TIME_WAIT sockets in this network namespace (/proc/net/sockstat; None if unreadable)."""
    try:
        for line in Path("/proc/net/sockstat").read_text().splitlines():
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("tw") + 1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def drain(pause_s: float, port_range: int, interrupted: Interrupted) -> None:
    """Wait `pause_s`, then while TIME_WAIT holds too much of the port range (at most ~70 s)."""
    time.sleep(pause_s)
    deadline = time.monotonic() + MAX_DRAIN_S
    while not interrupted.flag and time.monotonic() < deadline:
        held = client_time_wait()
        if held is None or held < DEFAULT_TIME_WAIT_SHARE * port_range:
            return
        time.sleep(1.0)


def _port_range() -> int:
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return high - low + 1
    except (OSError, ValueError):
        return 28232


Runner = Callable[[str, float, str], Path | None]


def run_ladder(plan: OpenPlan, policy: str, run_one: Runner, interrupted: Interrupted) -> list[dict[str, Any]]:
    """One policy's steps (repeats combined), stopping two turned steps in a row past the knee."""
    steps: list[dict[str, Any]] = []
    base: float | None = None
    in_a_row, ports = 0, _port_range()
    for rate in plan.rates:
        repeats = []
        for n in range(plan.repeat):
            if interrupted.flag:
                return steps
            run_dir = run_one(policy, rate, step_id(policy, rate, n))
            figures = step_of(load_run(run_dir)) if run_dir is not None else None
            if figures is not None:
                repeats.append(figures)
            drain(plan.pause_s, ports, interrupted)
        if not repeats:
            continue
        step = combine(repeats)
        step["breaches"] = plan.slos[policy].breaches(step)
        base = base if base is not None else step.get("response_p99_ms")
        steps.append(step)
        in_a_row = in_a_row + 1 if turned(step, base) else 0
        if in_a_row >= DEFAULT_BREACH_STEPS:
            break
    return steps


def _child_runner(plan: OpenPlan, demo: DemoTarget | None, interrupted: Interrupted, console: Console) -> Runner:
    def run_one(policy: str, rate: float, run_id: str) -> Path | None:
        runs = ChildRuns([run_id], lambda _: locust_command(plan, policy, rate, run_id), plan.out / "runs",
                         plan.step_s, deadline_s=plan.step_s + 2 * CHILD_GRACE_S)
        finished = run_policies(runs, demo, interrupted, console)
        return finished[0] if finished else None
    return run_one


def run_open_capacity(plan: OpenPlan, console: Console) -> int:
    paths.fresh_dir(plan.out, "runs")
    results: list[dict[str, Any]] = []

    def run_all(demo: DemoTarget | None, interrupted: Interrupted) -> list[Path]:
        run_one = _child_runner(plan, demo, interrupted, console)
        for policy in plan.policies:
            if interrupted.flag:
                break
            steps = run_ladder(plan, policy, run_one, interrupted)
            if steps:
                results.append(analyse_open(policy, plan.loaded.model.policies[policy].type, steps, plan.slos[policy]))
        return [plan.out / "runs"] if results else []

    _, was_interrupted = run_against_target(plan.loaded, plan.out / "runs", run_all)
    result = build_open_result(plan, results, incomplete=was_interrupted or len(results) < len(plan.policies))
    print(describe_open(result, write_open_capacity(result, plan.out)))
    scrub.scrub_tree(plan.out)
    if was_interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.INCOMPLETE if result["incomplete"] else ExitCode.OK


def build_open_result(plan: OpenPlan, policies: list[dict[str, Any]], incomplete: bool) -> dict[str, Any]:
    return {
        "schema": OPEN_SCHEMA, "model": "open", "scenario": plan.loaded.name, "scenario_path": plan.loaded.path,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "incomplete": incomplete or any(not p["complete"] for p in policies),
        "plan": {"rates": plan.rates, "step_duration_s": plan.step_s, "repeat": plan.repeat, "pause_s": plan.pause_s},
        "slo": {name: slo.to_dict() for name, slo in plan.slos.items()},
        "policies": policies,
    }


def check_rates(start: float, step: float, maximum: float, repeat: int) -> None:
    if min(start, step, maximum) <= 0:
        raise RunError("--start-rate, --step-rate and --max-rate must be positive", fix="e.g. --start-rate 25")
    if maximum < start:
        raise RunError(f"--max-rate {maximum:g} is below --start-rate {start:g}", fix="raise --max-rate")
    if repeat < 1:
        raise RunError("--repeat must be at least 1", fix="e.g. --repeat 3")
