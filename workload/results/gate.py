"""CI gate: a finished run (or a policy comparison) judged against its thresholds.

After a headless run the controller calls `judge_run`: the results are stored into run.json
under `thresholds`, `junit.xml` and `summary.md` are written next to it, the table goes to
stderr and the Markdown is appended to `$GITHUB_STEP_SUMMARY` when that is set.  A breach
means exit code `EXIT_THRESHOLDS` (3), distinct from Locust's 1 for failed requests.  An
incomplete run (4) or an empty one (5) never passes, whatever its thresholds say
(`workload.results.verdict`): the outputs say INCOMPLETE / EMPTY instead of "N of N passed".
`judge_compare` does the same once for all the policies of a `workload compare`, reading
what each child run stored.  No locust import.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from workload.errors import EXIT_THRESHOLDS
from workload.results import paths, verdict
from workload.results.ci_outputs import Suite, junit_xml, markdown, print_table
from workload.results.paths import write_atomic
from workload.results.thresholds import ThresholdResult, evaluate, results_of, summary_of
from workload.scenario.schema import Scenario

log = logging.getLogger("workload")
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
JUNIT_FILE = "junit.xml"
SUMMARY_FILE = "summary.md"
RUN_FILE = "run.json"


def judge_run(scenario: Scenario, run: dict[str, Any], out_dir: Path,
              console: Console | None = None) -> list[ThresholdResult]:
    """Evaluate, store into `run` and run.json, write the CI files, print the table."""
    results = evaluate(scenario, run)
    run["thresholds"] = summary_of(results)
    write_atomic(paths.inside(out_dir, RUN_FILE), json.dumps(run, indent=2) + "\n")
    suite = suite_of(run, results)
    title = f"Thresholds of {suite.scenario} ({suite.policy})"
    write_outputs(out_dir, [suite], title)
    print_table([suite], console)
    return results


def after_run(environment: Any, scenario: Scenario, run: dict[str, Any], out_dir: Path) -> None:
    """The controller's hook: judge the run and, for an unattended run, set the exit code.

    Only headless (or --autostart) runs set `process_exit_code`, which Locust then uses over
    its own: one failing run in an interactive web UI session must not decide how a later
    quit exits.  When every threshold passes, Locust's own code (0, or 1 on errors) stands."""
    results = judge_run(scenario, run, out_dir)
    options = getattr(environment, "parsed_options", None)
    unattended = bool(getattr(options, "headless", False) or getattr(options, "autostart", False))
    code = exit_code(results, run)
    problem = verdict.problem(run)
    if problem is not None:
        log.error("workload: %s", problem)
    if code is not None and unattended:
        environment.process_exit_code = code


def exit_code(results: list[ThresholdResult], run: dict[str, Any] | None = None) -> int | None:
    """Incomplete (4) or empty (5) first, then `EXIT_THRESHOLDS` on any breach; None leaves
    Locust's own exit code (0, or 1 on errors)."""
    code = verdict.exit_code(run) if run is not None else None
    if code is not None:
        return code
    return EXIT_THRESHOLDS if any(not r.passed for r in results) else None


def judge_compare(run_dirs: list[Path], scenario: Scenario, out_dir: Path,
                  console: Console | None = None) -> int:
    """The combined gate of a comparison: 0; else the first run's incomplete (4) or empty (5)
    code; else `EXIT_THRESHOLDS` if any policy breached."""
    runs = [read_run(path) for path in run_dirs]
    suites = [suite_of(run, _stored_or_evaluated(scenario, run)) for run in runs]
    write_outputs(out_dir, suites, f"Thresholds of {suites[0].scenario if suites else 'the comparison'}")
    print_table(suites, console)
    codes = [c for c in (verdict.exit_code(run) for run in runs) if c is not None]
    if codes:
        return min(codes)  # incomplete before empty
    return EXIT_THRESHOLDS if any(s.failed for s in suites) else 0


def _stored_or_evaluated(scenario: Scenario, run: dict[str, Any]) -> list[ThresholdResult]:
    # A child that died before judging (or an older run.json) is judged here instead.
    stored = results_of(run)
    return stored if stored is not None else evaluate(scenario, run)


def suite_of(run: dict[str, Any], results: list[ThresholdResult]) -> Suite:
    policy = str((run.get("policy") or {}).get("name", ""))
    scenario = str((run.get("scenario") or {}).get("name", ""))
    properties = {"run_id": str(run.get("run_id", "")), "complete": str(bool(run.get("complete"))).lower()}
    return Suite(scenario, policy, results, float(run.get("duration_s") or 0.0), properties,
                 problem=verdict.problem(run))


def read_run(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((Path(run_dir) / RUN_FILE).read_text(encoding="utf-8")))


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
