"""`workload import-har` as a command: convert, check with the loader, write, and say what happened."""

from __future__ import annotations

import sys
from pathlib import Path

from workload.authoring.harimport import Imported, dropped_summary, import_har
from workload.authoring.output import write_new
from workload.errors import ExitCode, ScenarioError, WorkloadError
from workload.scenario.loader import load_document, url_problem
from workload.scenario.source import interpolate_env, parse


def run_import(har: str, output: str | None, host_filter: list[str] | None, keep_static: bool = False,
               force: bool = False, target: str | None = None) -> int:
    file = output or Path(har).with_suffix(".yaml").name
    if target and (why := url_problem(target)):
        raise WorkloadError(why[0], why[1], where="--target")
    imported = import_har(har, host_filter, keep_static, target=target)
    check(imported, file)
    written = write_new(file, imported.text, force=force)
    _summary(imported, written)
    return ExitCode.OK


def check(imported: Imported, file: str) -> None:
    """Load the scenario as a run would, with placeholder values for its `${ENV}` secrets."""
    environ = {name: "placeholder-value" for name in imported.env}
    try:
        source, env_problems = interpolate_env(parse(imported.text, file), environ)
        load_document(source, env_problems)
    except ScenarioError as exc:
        raise WorkloadError(f"the imported scenario does not validate (a bug in the import):\n{exc}",
                            "report it with the HAR file's shape (not its secrets)") from exc


def _summary(imported: Imported, written: str) -> None:
    out = sys.stderr
    print(f"wrote {written}: {imported.steps} steps in one flow"
          f"{'; login: ' + imported.login if imported.login else ''}"
          f"{'; captures: ' + ', '.join(imported.captures) if imported.captures else ''}", file=out)
    for line in dropped_summary(imported.selection):
        print(f"  dropped: {line}", file=out)
    if imported.env:
        print(f"  set before running: {' '.join(f'{e}=...' for e in imported.env)}", file=out)
