"""CI gate outputs: threshold results rendered as a terminal table, JUnit XML and Markdown.

One `Suite` is one run of one policy.  JUnit gets one `<testsuite>` per suite and one
`<testcase>` per threshold (classname = the policy, name = `scope: metric`, stable across
runs so CI can track a test's history); Markdown is for `$GITHUB_STEP_SUMMARY` and pull
requests.  A run that cannot be judged (incomplete, or empty) says so first everywhere: the
verdict reads INCOMPLETE / EMPTY, never "N of N thresholds passed", and JUnit gets a failed
`run` test case.  Pure rendering: nothing here reads run.json or writes files.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from workload.redaction import redact
from workload.results.thresholds import ThresholdResult, show

JUNIT_SUITES_NAME = "workload thresholds"
FAILURE_TYPE = "threshold"
PASS_MARK, FAIL_MARK = "✅", "❌"
SYMBOLS = {"<=": "≤", ">=": "≥"}
DEFAULT_LOG_WIDTH = 120  # rich assumes 80 columns off a terminal: too narrow for metric names


@dataclass(frozen=True)
class Suite:
    """The threshold results of one run (one policy)."""

    scenario: str
    policy: str
    results: list[ThresholdResult]
    duration_s: float = 0.0
    properties: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why this run cannot pass (workload.results.verdict.problem), or None

    @property
    def failed(self) -> list[ThresholdResult]:
        return [r for r in self.results if not r.passed]


def case_name(result: ThresholdResult) -> str:
    return f"{result.scope}: {result.metric}"


def limit_text(result: ThresholdResult) -> str:
    return f"{SYMBOLS[result.comparison]} {show(result.limit, result.unit)}"


def verdict(suites: list[Suite]) -> str:
    total = sum(len(s.results) for s in suites)
    failed = sum(len(s.failed) for s in suites)
    unjudged = [s for s in suites if s.problem]
    if unjudged:
        kinds = sorted({s.problem.split(" ", 1)[0] for s in unjudged if s.problem})
        return (f"{' and '.join(kinds)}: {len(unjudged)} of {len(suites)} run{'s' if len(suites) != 1 else ''} "
                f"cannot pass ({failed} of {total} thresholds failed on partial figures)")
    if total == 0:
        return "no thresholds defined"
    return f"{total - failed} of {total} thresholds passed" + (f", {failed} failed" if failed else "")


# -- terminal -------------------------------------------------------------------------------
def table(suites: list[Suite]) -> Table:
    grid = Table(title=f"Thresholds: {verdict(suites)}", title_justify="left")
    for column in ("policy", "scope", "metric", "limit", "actual", "result"):
        grid.add_column(column, justify="right" if column in ("limit", "actual") else "left")
    for suite in suites:
        for r in suite.results:
            mark = "[green]pass[/green]" if r.passed else "[bold red]FAIL[/bold red]"
            grid.add_row(r.policy, r.scope, r.metric, limit_text(r), show(r.actual, r.unit), mark)
    return grid


def print_table(suites: list[Suite], console: Console | None = None) -> None:
    if console is None or not console.is_terminal:  # a log file or CI: no terminal width to respect
        console = Console(file=console.file if console else sys.stderr, width=DEFAULT_LOG_WIDTH)
    if not any(s.results for s in suites):
        console.print("Thresholds: none defined in the scenario (nothing to gate on)")
        _print_problems(suites, console)
        return
    console.print(table(suites))
    for suite in suites:
        for r in suite.failed:
            console.print(f"[red]FAIL[/red] {r.policy}: {r.message}", highlight=False)
    _print_problems(suites, console)


def _print_problems(suites: list[Suite], console: Console) -> None:
    for suite in suites:
        if suite.problem:
            console.print(f"[bold red]FAIL[/bold red] {suite.policy}: {suite.problem}", highlight=False)


# -- JUnit XML --------------------------------------------------------------------------------
def junit_xml(suites: list[Suite]) -> str:
    root = ET.Element("testsuites", {"name": JUNIT_SUITES_NAME, **_counts(suites)})
    for suite in suites:
        root.append(_testsuite(suite))
    ET.indent(root)
    return redact('<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")


def _counts(suites: list[Suite]) -> dict[str, str]:
    unjudged = sum(1 for s in suites if s.problem)
    return {"tests": str(sum(len(s.results) for s in suites) + unjudged),
            "failures": str(sum(len(s.failed) for s in suites) + unjudged), "errors": "0",
            "time": f"{sum(s.duration_s for s in suites):.3f}"}


def _testsuite(suite: Suite) -> ET.Element:
    element = ET.Element("testsuite", {"name": f"{suite.scenario}: {suite.policy}", "skipped": "0",
                                       **_counts([suite])})
    if suite.properties:
        properties = ET.SubElement(element, "properties")
        for key, value in suite.properties.items():
            ET.SubElement(properties, "property", name=key, value=value)
    if suite.problem:  # first, and failed: CI must not read this run as passing
        kind = suite.problem.split(" ", 1)[0].lower()
        case = ET.SubElement(element, "testcase", classname=suite.policy, name=f"run: {kind}", time="0")
        ET.SubElement(case, "failure", type=kind, message=suite.problem).text = suite.problem
    for result in suite.results:
        case = ET.SubElement(element, "testcase", classname=suite.policy, name=case_name(result), time="0")
        if not result.passed:
            failure = ET.SubElement(case, "failure", type=FAILURE_TYPE, message=result.message)
            failure.text = (f"{result.metric} {limit_text(result)}: actual {show(result.actual, result.unit)} "
                            f"(policy {result.policy}, scope {result.scope})")
    return element


# -- Markdown ---------------------------------------------------------------------------------
def markdown(suites: list[Suite], title: str) -> str:
    failed = any(s.failed or s.problem for s in suites)
    head = f"### {FAIL_MARK if failed else PASS_MARK} {title}: {verdict(suites)}\n"
    problems = [f"- **{_cell(s.policy)}**: {_cell(s.problem)}" for s in suites if s.problem]
    if problems:
        head += "\n" + "\n".join(problems) + "\n"
    if not any(s.results for s in suites):
        return head
    lines = [head, "| policy | scope | threshold | actual | result |", "|---|---|---|---:|---|"]
    for suite in suites:
        for r in suite.results:
            mark = f"{PASS_MARK} pass" if r.passed else f"{FAIL_MARK} **fail**"
            lines.append(f"| {_cell(r.policy)} | {_cell(r.scope)} | `{r.metric}` {limit_text(r)} "
                         f"| {show(r.actual, r.unit)} | {mark} |")
    problems = [f"- **{_cell(r.policy)}**: {_cell(r.message)}" for s in suites for r in s.failed]
    if problems:
        lines += ["", "Failed:", *problems]
    return redact("\n".join(lines) + "\n")  # also what goes to $GITHUB_STEP_SUMMARY


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
