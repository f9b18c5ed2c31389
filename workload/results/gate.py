"""CI gate: a finished run (or a policy comparison) judged against its thresholds.

After a headless run the controller has the run judged (`judged`: the results go into the
run's `thresholds`, before its run.json is written, once) and calls `after_run`: `junit.xml`
and `summary.md` are written next to run.json, the table goes to
stderr and the Markdown is appended to `$GITHUB_STEP_SUMMARY` when that is set.  A breach
means exit code `ExitCode.THRESHOLDS` (3), distinct from Locust's 1 for failed requests.  An
incomplete run (4) or an empty one (5) never passes, whatever its thresholds say
(`workload.results.verdict`): the outputs say INCOMPLETE / EMPTY instead of "N of N passed".
`judge_compare` does the same once for all the policies of a `workload compare`, reading
what each child run stored.  No locust import.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from workload.errors import ExitCode
from workload.results import paths, verdict
from workload.results.ci_outputs import Suite, junit_xml, markdown, print_table
from workload.results.paths import write_atomic
from workload.results.run import RUN_FILE, RunResult, read_run, write_run
from workload.results.thresholds import ThresholdResult, evaluate, results_of, summary_of
from workload.scenario.schema import Scenario

log = logging.getLogger("workload")
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
JUNIT_FILE = "junit.xml"
SUMMARY_FILE = "summary.md"


def judged(scenario: Scenario, run: RunResult) -> tuple[RunResult, list[ThresholdResult]]:
    """`run` with its `thresholds` section (a copy: the model is frozen), and the results."""
    results = evaluate(scenario, run)
    return run.model_copy(update={"thresholds": summary_of(results)}), results


def judge_run(scenario: Scenario, run: RunResult, out_dir: Path,
              console: Console | None = None) -> tuple[RunResult, list[ThresholdResult]]:
    """Judge a saved run again: run.json rewritten with its thresholds, then the CI files."""
    run, results = judged(scenario, run)
    write_run(out_dir, run)
    ci_files(run, results, out_dir, console)
    return run, results


def ci_files(run: RunResult, results: list[ThresholdResult], out_dir: Path,
             console: Console | None = None) -> None:
    """junit.xml and summary.md of one judged run, and its table printed."""
    suite = suite_of(run, results)
    write_outputs(out_dir, [suite], f"Thresholds of {suite.scenario} ({suite.policy})")
    print_table([suite], console)


def after_run(environment: Any, run: RunResult, results: list[ThresholdResult], out_dir: Path) -> None:
    """The controller's hook, once run.json (judged by `judged`) is written: the CI files and,
    for an unattended run, the exit code.

    Only headless (or --autostart) runs set `process_exit_code`, which Locust then uses over
    its own: one failing run in an interactive web UI session must not decide how a later
    quit exits.  When every threshold passes, Locust's own code (0, or 1 on errors) stands."""
    ci_files(run, results, out_dir)
    options = getattr(environment, "parsed_options", None)
    unattended = bool(getattr(options, "headless", False) or getattr(options, "autostart", False))
    code = exit_code(results, run)
    problem = verdict.problem(run)
    if problem is not None:
        log.error("workload: %s", problem)
    if code is not None and unattended:
        environment.process_exit_code = code


def exit_code(results: list[ThresholdResult], run: RunResult | None = None) -> int | None:
    """Incomplete (4) or empty (5) first, then `ExitCode.THRESHOLDS` on any breach; None leaves
    Locust's own exit code (0, or 1 on errors)."""
    code = verdict.exit_code(run) if run is not None else None
    if code is not None:
        return code
    return ExitCode.THRESHOLDS if any(not r.passed for r in results) else None


def judge_compare(run_dirs: list[Path], scenario: Scenario, out_dir: Path,
                  console: Console | None = None) -> int:
    """The combined gate of a comparison: 0; else the first run's incomplete (4) or empty (5)
    code; else `ExitCode.THRESHOLDS` if any policy breached."""
    runs = [read_run(paths.inside(path, RUN_FILE)) for path in run_dirs]
    suites = [suite_of(run, _stored_or_evaluated(scenario, run)) for run in runs]
    write_outputs(out_dir, suites, f"Thresholds of {suites[0].scenario if suites else 'the comparison'}")
    print_table(suites, console)
    codes = [c for c in (verdict.exit_code(run) for run in runs) if c is not None]
    if codes:
        return min(codes)  # incomplete before empty
    return ExitCode.THRESHOLDS if any(s.failed for s in suites) else ExitCode.OK


def _stored_or_evaluated(scenario: Scenario, run: RunResult) -> list[ThresholdResult]:
    # A child that died before judging (or an older run.json) is judged here instead.
    stored = results_of(run)
    return stored if stored is not None else evaluate(scenario, run)


def suite_of(run: RunResult, results: list[ThresholdResult]) -> Suite:
    properties = {"run_id": run.run_id or "", "complete": str(run.complete).lower()}
    return Suite(run.scenario.name, run.policy.name, results, float(run.duration_s or 0.0), properties,
                 problem=verdict.problem(run))


def write_outputs(out_dir: Path, suites: list[Suite], title: str) -> tuple[Path, Path]:
    """junit.xml and summary.md in `out_dir`; the Markdown also goes to the step summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown(suites, title)
    junit, summary = paths.inside(out_dir, JUNIT_FILE), paths.inside(out_dir, SUMMARY_FILE)
    write_atomic(junit, junit_xml(suites))
    write_atomic(summary, text)
    append_step_summary(text)
    return junit, summary


def append_step_summary(text: str, environ: dict[str, str] | None = None) -> None:
    """Append to the file named by `$GITHUB_STEP_SUMMARY` (GitHub Actions' job summary)."""
    target = (os.environ if environ is None else environ).get(STEP_SUMMARY_ENV)
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as exc:  # a CI convenience: the gate's verdict must not depend on it
        log.warning("could not append to $%s (%s): %s", STEP_SUMMARY_ENV, target, exc)
