"""Scenario lint: valid scenarios that will quietly measure the wrong thing, each with a fix.

Validation (`workload.scenario.loader`) rejects what cannot run; the lint warns about what runs but
never raises an error: a preset cookie that is never sent, a request header that replaces
the login's, pools too small for the concurrency, a read timeout longer than the run, and a
policy whose TIME_WAIT at the requested rate would not fit in the ephemeral port range.
Run by `workload check`, before `workload compare` and at locustfile start.  No locust import.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Iterable

from workload.errors import ExitCode, Problem, WorkloadError
from workload.lint.rules import RULES, LintContext
from workload.scenario.loader import LoadedScenario, load_each, load_scenario
from workload.scenario.schema import Scenario
from workload.scenario.source import Source
from workload.scenario.timespan import seconds


def lint(loaded: LoadedScenario, users: int | None = None, duration_s: float | None = None,
         policies: Iterable[str] | None = None, grace_s: float = 0.0) -> list[Problem]:
    """Warnings for a loaded scenario under its own load, or `users`/`duration_s` if given
    (the command line's -u/-t); policy rules cover `policies` (default: all).  `grace_s` is the
    time users get to finish after the run (--stop-timeout)."""
    planned_users, planned_s = planned_load(loaded.model)
    context = LintContext(
        loaded=loaded, source=source_of(loaded),
        users=int(users or planned_users), duration_s=float(duration_s or planned_s),
        policies=tuple(policies) if policies else tuple(loaded.model.policies), grace_s=grace_s,
    )
    found = [problem for rule in RULES for problem in rule(context)]
    return by_cause(sorted(found, key=lambda p: (p.line or 0, p.key)))


def by_cause(problems: list[Problem]) -> list[Problem]:
    """One warning per cause: the same text at several keys (the default read timeout under
    every policy) becomes one warning naming every key, at the first one's line."""
    groups: dict[tuple[str, str, str], list[Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.what, problem.fix, problem.severity), []).append(problem)
    return [dataclasses.replace(group[0], key=", ".join(p.key for p in group)) for group in groups.values()]


def planned_load(model: Scenario) -> tuple[int, float]:
    """(peak users, run seconds) the scenario's `load:` asks for; stages count when present."""
    load = model.load
    stages = getattr(load, "stages", None) or []  # load shapes: peak users over the whole shape
    if not stages:
        return load.users, seconds(load.duration)
    users = [s.spike.users if s.spike else s.users for s in stages]
    spans = [seconds(s.spike.duration if s.spike else s.duration) for s in stages]
    return max([u or 0 for u in users] + [1]), sum(spans)


def lint_file(path: str) -> list[Problem]:
    """Load (raising `ScenarioError` when invalid) and lint one file."""
    return lint(load_scenario(path))


def source_of(loaded: LoadedScenario) -> Source:
    """The scenario's key lines, as the loader parsed them (none for a worker's forwarded copy)."""
    return Source(loaded.path, loaded.document, loaded.lines)


def render(problems: list[Problem], file: str) -> str:
    count = len(problems)
    head = f"{file}: {count} warning{'s' if count != 1 else ''}"
    return head + ":\n" + "\n".join(p.render() for p in problems)


def print_warnings(loaded: LoadedScenario, users: int | None, duration_s: float | None,
                   policies: Iterable[str] | None = None, grace_s: float = 0.0) -> int:
    """Print the lint's warnings to stderr before runs (`workload compare`); how many there were."""
    problems = lint(loaded, users, duration_s, policies, grace_s)
    if problems:
        print(render(problems, loaded.path) + "\n", file=sys.stderr)
    return len(problems)


def log_warnings(loaded: LoadedScenario, users: int | None, duration_s: float | None,
                 policies: Iterable[str] | None = None, logger: logging.Logger | None = None,
                 grace_s: float = 0.0) -> int:
    """Log the lint's warnings before a run (never fatal); how many there were."""
    logger = logger or logging.getLogger("workload")
    try:
        problems = lint(loaded, users, duration_s, policies, grace_s)
    except (WorkloadError, OSError, ValueError) as exc:  # a lint must never stop a run
        logger.warning("workload check could not run: %s", exc)
        return 0
    if problems:
        logger.warning("%s\n(workload check: warnings only, the run goes on)", render(problems, loaded.path))
    return len(problems)


def render_brief(problems: list[Problem]) -> str:
    """`--quiet`: one line per warning (where, key, what), no fix: for CI logs."""
    return "\n".join(f"{p.file}:{p.line or 0}: {p.severity}: {p.what} [{p.key}]" for p in problems)


def run_check(paths: list[str], strict: bool = False, quiet: bool = False) -> int:
    """`workload check`: 0, or `ExitCode.BAD_INPUT` for an invalid file or (with --strict) any warning.

    `quiet` prints nothing for a clean file and one line per warning; invalid files in full."""
    loaded, invalid = load_each(paths)
    warned = 0
    for scenario in loaded:
        problems = lint(scenario)
        warned += bool(problems)
        if problems:
            print(render_brief(problems) if quiet else render(problems, scenario.path) + "\n")
        elif not quiet:
            print(f"{scenario.path}: ok (no warnings)")
    return ExitCode.BAD_INPUT if invalid or (strict and warned) else ExitCode.OK
