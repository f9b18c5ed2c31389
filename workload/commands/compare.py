"""Policy comparison: the same scenario and load, run once per policy, then one report.

Each policy runs in its own headless Locust process (`locust -f workload/main.py`), so no
policy inherits another's pools, SSL contexts or counters.  The demo target, when the
scenario asks for it, is started once here and shared with every run through
`WORKLOAD_DEMO_TARGET`, so the server-side counters cover all runs.  Ctrl-C or SIGTERM
stops the current run (which still writes what it measured) and reports what finished,
marked incomplete.  Results are never stale: `--out` must be new or empty (or `--replace`),
each child writes a folder it creates, and only a run.json written by that very child
counts.  A child dies with this process (SIGTERM from the kernel, `PR_SET_PDEATHSIG`), so a
killed compare leaves no load running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console

from workload import lint, scrub
from workload.commands.progress import ProgressView, progress_view
from workload.demo.launcher import DEMO_ENV_VAR, DemoTarget, running_or_new
from workload.errors import ExitCode, ResultsError, RunError
from workload.report import build_report, describe
from workload.results import gate, paths
from workload.results.progress import PROGRESS_ENV
from workload.results.run import RUN_FILE, read_run
from workload.scenario import targets
from workload.scenario.loader import LoadedScenario, load_scenario
from workload.scenario.timespan import seconds

MAIN = str(Path(__file__).parent.parent / "main.py")  # the locustfile, workload/main.py
DEFAULT_OUT_ROOT = Path("results")
STOP_GRACE_S = 20.0
POLL_S = 0.25
STOP_TIMEOUT_S = 5.0  # --stop-timeout of each child: in-flight requests finish (or time out) and count
EXIT_CODES_WITH_RESULTS = (ExitCode.OK, ExitCode.LOCUST_FAILURES, ExitCode.THRESHOLDS, ExitCode.INCOMPLETE,
                           ExitCode.NO_REQUESTS)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
CLOCK_SLACK_S = 1.0  # a child's run may not start before the child was launched (wall clocks)


@dataclass(frozen=True)
class CompareRequest:
    scenario: str
    policies: list[str] | None = None
    users: int | None = None
    spawn_rate: float | None = None
    duration: str | None = None
    out: str | None = None
    workers: int = 0
    replace: bool = False


@dataclass(frozen=True)
class Plan:
    loaded: LoadedScenario
    policies: list[str]
    users: int
    spawn_rate: float
    duration_s: float
    out: Path
    workers: int


def plan_of(request: CompareRequest) -> Plan:
    loaded = load_scenario(request.scenario)
    policies = [loaded.check_policy(p) for p in request.policies] if request.policies else loaded.policy_names()
    load = loaded.model.load
    try:
        duration = seconds(request.duration if request.duration is not None else load.duration)
    except ValueError as exc:
        raise RunError(f"--duration: {exc}") from exc
    if duration != int(duration):  # Locust's -t takes whole seconds only
        raise RunError(f"--duration {duration:g}s is not a whole number of seconds",
                       fix=f"use e.g. {max(int(duration), 1)}s")
    out = paths.output_dir(request.out, DEFAULT_OUT_ROOT, "compare", request.replace)
    return Plan(loaded, policies, request.users or load.users, request.spawn_rate or load.spawn_rate,
                duration, out, request.workers)


def locust_command(plan: Plan, policy: str) -> list[str]:
    command = [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--only-summary",
               "--scenario", plan.loaded.path, "--policy", policy,
               "-u", str(plan.users), "-r", str(plan.spawn_rate), "-t", f"{plan.duration_s:g}s",
               "--results-dir", str(plan.out / "runs"), "--run-id", policy, "--stop-timeout", f"{STOP_TIMEOUT_S:g}"]
    if plan.workers:
        # Master + N forked workers, on a free loopback port (not Locust's default 5557, which
        # another run may hold); the workers connect to --master-port, so both are given.
        port = str(free_port())
        command += ["--processes", str(plan.workers), "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    return command


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Interrupted:
    """Turns SIGINT/SIGTERM into a flag, so the current run can be stopped cleanly."""

    def __init__(self) -> None:
        self.flag = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> Interrupted:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.flag = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def run_against_target(loaded: LoadedScenario, runs_dir: Path,
                       run: Callable[[DemoTarget | None, Interrupted], list[Path]]) -> tuple[list[Path], bool]:
    """Run child Locust processes with the demo target started once (when the scenario asks
    for it) and stopped afterwards; Ctrl-C/SIGTERM only stops the current child.  Returns the
    finished run directories and whether the user interrupted."""
    demo = demo_for(loaded)
    try:
        with Interrupted() as interrupted:
            finished = run(demo, interrupted)
    finally:
        if demo is not None and getattr(demo, "_process", None) is not None:
            demo.stop()
    if not finished:
        error = RunError(f"{'interrupted: ' if interrupted.flag else ''}no run finished; see the logs in {runs_dir}")
        error.exit_code = ExitCode.INTERRUPTED if interrupted.flag else ExitCode.INCOMPLETE  # not bad input
        raise error
    return finished, interrupted.flag


def run_compare(request: CompareRequest, console: Console | None = None) -> int:
    scrub.install_console()
    console = console or Console(stderr=True)
    plan = plan_of(request)
    lint.print_warnings(plan.loaded, plan.users, plan.duration_s, plan.policies, STOP_TIMEOUT_S)  # workload check
    paths.fresh_dir(plan.out, "runs")
    finished, interrupted = run_against_target(
        plan.loaded, plan.out / "runs", lambda demo, flag: _run_all(plan, demo, flag, console))
    missing = len(finished) < len(plan.policies)
    report = build_report(finished, plan.out, incomplete=interrupted or missing)
    print(describe(report))
    code = gate.judge_compare(finished, plan.loaded.model, plan.out, console)  # 0, 3, 4 or 5
    scrub.scrub_tree(plan.out)  # reports, logs and every child's files: no secret left
    if interrupted:
        return ExitCode.INTERRUPTED
    if missing:
        console.print(f"[bold red]INCOMPLETE[/bold red]: {len(plan.policies) - len(finished)} of "
                      f"{len(plan.policies)} policies have no run; see the logs in {plan.out / 'runs'}")
        return ExitCode.INCOMPLETE
    return code


def demo_for(loaded: LoadedScenario) -> DemoTarget | None:
    """The demo target a scenario needs, shared by all its runs: a named or a new one; None if not needed."""
    if not targets.needs_demo(loaded):
        return None
    return running_or_new()[0]


def _run_all(plan: Plan, demo: DemoTarget | None, interrupted: Interrupted, console: Console) -> list[Path]:
    runs = ChildRuns(plan.policies, lambda policy: locust_command(plan, policy), plan.out / "runs", plan.duration_s)
    return run_policies(runs, demo, interrupted, console)


@dataclass(frozen=True)
class ChildRuns:
    """Locust children run one after the other, one per policy, into `runs_dir/<policy>/`."""

    policies: list[str]
    command: Callable[[str], list[str]]
    runs_dir: Path
    expected_s: float  # one run's length, for the progress bar
    deadline_s: float | None = None  # a child still running after this long is stopped


def run_policies(runs: ChildRuns, demo: DemoTarget | None, interrupted: Interrupted,
                 console: Console) -> list[Path]:
    """Run each policy's child, showing progress; the run directories that hold a run.json."""
    env = dict(os.environ)
    env.pop(gate.STEP_SUMMARY_ENV, None)  # the combined summary is appended once, by judge_compare
    if demo is not None:
        env[DEMO_ENV_VAR] = demo.to_env()
    finished: list[Path] = []
    with progress_view(console, runs.policies, runs.expected_s) as view:
        for policy in runs.policies:
            if interrupted.flag:
                break
            run_dir = _run_one(runs, policy, env, interrupted, view)
            if run_dir is not None:
                finished.append(run_dir)
    return finished


def _run_one(runs: ChildRuns, policy: str, env: dict[str, str], interrupted: Interrupted,
             view: ProgressView) -> Path | None:
    run_dir, log_path = child_paths(runs.runs_dir, policy)
    figures = paths.inside(runs.runs_dir, f".{policy}.progress.json")
    launched = time.time()
    code = run_child(runs.command(policy), log_path, {**env, PROGRESS_ENV: str(figures)}, interrupted,
                     lambda elapsed: view.running(policy, elapsed, figures), runs.deadline_s)
    scrub.scrub_file(log_path)  # the child masks what it logs; this catches anything else
    ok = written_by_child(run_dir, policy, launched)
    note = "done" if ok and code in EXIT_CODES_WITH_RESULTS else f"failed (exit {code}, see {log_path})"
    view.done(policy, note)
    figures.unlink(missing_ok=True)
    if code == 2 and not ok:
        raise RunError(f"policy {policy}: Locust rejected the run; see {log_path}")
    return run_dir if ok else None


def child_paths(runs_dir: Path, policy: str) -> tuple[Path, Path]:
    """A policy's run folder and log, proven inside `runs_dir` (a policy name is not trusted
    to be a plain name, even after validation)."""
    return paths.inside(runs_dir, policy), paths.inside(runs_dir, f"{policy}.log")


def written_by_child(run_dir: Path, run_id: str, launched: float) -> bool:
    """Whether `run_dir` holds a run.json that the child launched at `launched` wrote: its
    run id, started after the launch.  Anything else (an earlier run's file) is not this run."""
    file = paths.inside(run_dir, RUN_FILE)
    try:
        run = read_run(file)
    except ResultsError:  # missing, or not a run.json (the child writes it whole, atomically)
        return False
    return run.run_id == run_id and float(run.started_at or 0) >= launched - CLOCK_SLACK_S


def _die_with_parent(parent: int) -> Callable[[], None]:
    """preexec_fn: the kernel sends the child SIGTERM when this process dies (even SIGKILLed),
    so Locust stops its users and writes what it measured.  prctl is looked up here, before
    the fork: the child only makes the call."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody would signal us
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def run_child(command: list[str], log_path: Path, env: dict[str, str], interrupted: Interrupted,
              on_poll: Callable[[float], object], deadline_s: float | None = None) -> int:
    """Run one Locust child process to its end, its output in `log_path`; its exit code.

    It is stopped (SIGTERM, then SIGKILL) when interrupted or once it runs past `deadline_s`
    seconds; `on_poll` gets the seconds elapsed, a few times a second.
    """
    with open(log_path, "xb") as log:  # exclusive: never truncates a file that is already there
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                 preexec_fn=_die_with_parent(os.getpid()))
        started = time.monotonic()
        while child.poll() is None:
            elapsed = time.monotonic() - started
            on_poll(elapsed)
            if interrupted.flag or (deadline_s is not None and elapsed > deadline_s):
                _stop(child)
                break
            time.sleep(POLL_S)
    return child.wait()


def _stop(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGTERM)  # Locust shuts down gracefully and writes run.json
    try:
        child.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        child.kill()
