"""Policy-comparison report: run directories in, summary.json + report.md + report.html out.

`build_report` loads one run.json per run directory (typically one per connection policy of
the same scenario), summarises them (`workload.report.summary`) and renders the report
(`workload.report.render`).  `describe` is the text the CLI prints afterwards.  `knee` is the
capacity analysis (the knee and the forecast) that `capacity` writes.  This package does not
import locust; it may import `workload.telemetry`, `workload.errors` and `workload.redaction`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workload.errors import ResultsError
from workload.report.render import render_html, render_markdown
from workload.report.runs import load_run, load_runs
from workload.report.summary import SUMMARY_SCHEMA, build_summary

__all__ = ["ReportPaths", "build_report", "build_summary", "describe", "load_run", "SUMMARY_SCHEMA"]

DEFAULT_SUMMARY_NAME = "summary.json"
DEFAULT_MARKDOWN_NAME = "report.md"
DEFAULT_HTML_NAME = "report.html"


@dataclass(frozen=True)
class ReportPaths:
    """Where `build_report` wrote the report's three files."""

    summary: Path
    markdown: Path
    html: Path


def _write(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (via a temporary file and a rename)."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        raise ResultsError(f"{path}: cannot write the report ({exc.strerror or exc}); "
                           "pass an output directory you can write to") from exc


def _out_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"{out}: cannot create the report directory ({exc.strerror or exc}); "
                           "pass an output directory you can write to") from exc
    return out


def build_report(run_dirs: Iterable[str | Path], out_dir: str | Path, *,
                 incomplete: bool = False) -> ReportPaths:
    """Compare the runs in `run_dirs` and write summary.json, report.md, report.html to `out_dir`.

    `incomplete` marks the report as cut short (e.g. `workload compare` was interrupted before
    every policy ran); the report is also marked when any run did not complete.
    """
    runs = load_runs(run_dirs)
    summary = build_summary(runs, incomplete=incomplete)
    out = _out_dir(out_dir)
    paths = ReportPaths(out / DEFAULT_SUMMARY_NAME, out / DEFAULT_MARKDOWN_NAME, out / DEFAULT_HTML_NAME)
    _write(paths.summary, json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    _write(paths.markdown, render_markdown(summary))
    _write(paths.html, render_html(summary, runs))
    return paths


def _findings(summary_path: Path) -> tuple[list[str], bool]:
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        return [str(f) for f in summary.get("findings", [])], bool(summary.get("incomplete"))
    except (OSError, ValueError, AttributeError):
        return [], False


def describe(paths: ReportPaths) -> str:
    """What to print after `build_report`: the files written and the findings."""
    findings, incomplete = _findings(paths.summary)
    lines = ["Report (INCOMPLETE):" if incomplete else "Report:",
             f"  summary   {paths.summary}", f"  markdown  {paths.markdown}", f"  html      {paths.html}"]
    if findings:
        lines += ["Findings:", *(f"  - {finding}" for finding in findings)]
    return "\n".join(lines)
