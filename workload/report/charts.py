"""Report charts: pygal charts rendered as self-contained inline SVG.

pygal's default config loads a tooltip script from an external URL and stamps its own URLs
into comments; charts here set ``js=[]`` and `inline_svg` strips comments, scripts and XML
namespace declarations so the SVG can sit inside report.html with no external reference.
Each chart function returns None when the runs hold no data for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import fmean
from typing import Any

import pygal
from pygal.graph.graph import Graph
from pygal.style import Style

from workload.report.numbers import finite
from workload.results.run import RunResult, Sockets

Point = tuple[float, float | None]

DEFAULT_WIDTH = 900
DEFAULT_HEIGHT = 380
DEFAULT_MAX_POINTS = 600
DEFAULT_X_LABELS = 12
DEFAULT_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
DEFAULT_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                  "#7f7f7f", "#bcbd22", "#17becf")

LATENCY_COLORS = ("#9ecae1", "#4292c6", "#08306b")
# Throughputs spreading wider than this ratio are drawn on a log scale.
DEFAULT_LOG_RATIO = 20
DEFAULT_DASHES = "7,5"
STYLE_SETTINGS: dict[str, Any] = {
    "background": "#ffffff", "plot_background": "#ffffff", "foreground": "#333333",
    "foreground_strong": "#111111", "foreground_subtle": "#dddddd", "font_family": DEFAULT_FONT,
    "label_font_size": 12, "major_label_font_size": 12, "legend_font_size": 13, "title_font_size": 16,
}


@dataclass(frozen=True)
class Line:
    """One line of a time chart: its legend, points, colour and whether it is dashed."""

    name: str
    points: list[Point]
    color: str
    dashed: bool = False


_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>|<script\b[^>]*/>", re.DOTALL)
_XMLNS = re.compile(r"\s+xmlns(?::[\w-]+)?=\"[^\"]*\"")


def inline_svg(chart: Graph) -> str:
    """The chart as an <svg> element to embed in HTML: no XML declaration, comments, scripts
    or namespace URLs (the HTML parser puts <svg> in the SVG namespace by itself)."""
    svg = _SCRIPT.sub("", _COMMENT.sub("", chart.render(is_unicode=True)))
    root_end = svg.index(">") + 1  # namespaces are declared on the root <svg> tag only
    return _XMLNS.sub("", svg[:root_end]) + svg[root_end:]


def _config(title: str, colors: tuple[str, ...] = DEFAULT_COLORS, **extra: Any) -> dict[str, Any]:
    style = Style(**{**STYLE_SETTINGS, "colors": colors})
    return {"title": title, "js": [], "disable_xml_declaration": True, "width": DEFAULT_WIDTH,
            "height": DEFAULT_HEIGHT, "style": style, "legend_at_bottom": True,
            "truncate_legend": -1, "show_dots": False, "stroke_style": {"width": 2}, **extra}


def policy_color(index: int) -> str:
    """The colour of the index-th policy, the same in every chart."""
    return DEFAULT_COLORS[index % len(DEFAULT_COLORS)]


def _series_of(samples: list[dict[str, Any]] | None, key: str) -> list[Point]:
    points: list[Point] = []
    for sample in samples or []:
        t = finite(sample.get("t"))
        if t is not None:
            points.append((t, finite(sample.get(key))))
    return points


def _log_scale(lines: list[Line]) -> bool:
    values = [v for line in lines for _, v in line.points if v is not None]
    return bool(values) and min(values) > 0 and max(values) / min(values) >= DEFAULT_LOG_RATIO


def _on_grid(lines: list[Line]) -> tuple[list[float], list[list[float | None]]]:
    """Put the lines on one time axis: buckets of whole seconds (wider on long runs, so at
    most DEFAULT_MAX_POINTS), each holding the mean of a line's samples in it."""
    times = [t for line in lines for t, _ in line.points]
    step = max(1, math.ceil(max(times) / DEFAULT_MAX_POINTS))
    keys = sorted({round(t / step) for t in times})
    values: list[list[float | None]] = []
    for line in lines:
        buckets: dict[int, list[float]] = {}
        for t, value in line.points:
            if value is not None:
                buckets.setdefault(round(t / step), []).append(value)
        values.append([fmean(buckets[k]) if k in buckets else None for k in keys])
    return [k * step for k in keys], values


def _time_chart(title: str, y_title: str, lines: list[Line], *, log: bool = False) -> str | None:
    drawn = [line for line in lines if any(v is not None for _, v in line.points)]
    if not drawn:
        return None
    log = log and _log_scale(drawn)
    times, values = _on_grid(drawn)
    chart = pygal.Line(**_config(title, tuple(line.color for line in drawn), x_title="seconds since start",
                                 y_title=f"{y_title} (log scale)" if log else y_title, logarithmic=log,
                                 allow_interruptions=True, show_minor_x_labels=False,
                                 x_labels_major_every=max(1, len(times) // DEFAULT_X_LABELS)))
    chart.x_labels = [f"{t:,.0f}" for t in times]
    for line, points in zip(drawn, values, strict=True):
        dashes = {"dasharray": DEFAULT_DASHES} if line.dashed else {}
        chart.add(line.name, points, stroke_style={"width": 2, **dashes})
    return inline_svg(chart)


def rps_chart(runs: list[tuple[str, RunResult]]) -> str | None:
    """Requests per second over time, one line per policy (from stats.history); on a log
    scale when the policies differ by more than DEFAULT_LOG_RATIO."""
    lines = [Line(label, [(p.t, finite(p.rps)) for p in run.stats.history], policy_color(i))
             for i, (label, run) in enumerate(runs)]
    return _time_chart("Throughput over time", "requests/s", lines, log=True)


def time_wait_chart(runs: list[tuple[str, RunResult]]) -> str | None:
    """TIME_WAIT sockets over time per policy (one colour) and side (server dashed), from
    sockets.series.  The server side is left out where it is not observable (remote target)."""
    lines: list[Line] = []
    for i, (label, run) in enumerate(runs):
        sockets = run.sockets if run.sockets is not None else Sockets()
        lines.append(Line(f"{label} · client", _series_of(sockets.series, "tw_client"), policy_color(i)))
        if sockets.server_side_observable is not False:
            lines.append(Line(f"{label} · server", _series_of(sockets.series, "tw_server"), policy_color(i), True))
    return _time_chart("TIME_WAIT sockets over time (server dashed)", "sockets in TIME_WAIT", lines)


def open_response_chart(runs: list[tuple[str, RunResult]]) -> str | None:
    """Open-model runs: response time p99 per second, from the intended start (arrival.series), so
    a stall shows where it happened; a closed run has no such line."""
    lines = [Line(label, [(row.t, finite(row.response_p99_ms)) for row in run.arrival.series], policy_color(i))
             for i, (label, run) in enumerate(runs) if run.arrival is not None]
    return _time_chart("Open model: response time p99 per second (from the intended start)", "milliseconds",
                       lines, log=True)


def latency_chart(rows: list[dict[str, Any]]) -> str | None:
    """Latency percentiles p50/p95/p99 per policy (bars grouped by policy)."""
    keys = ("p50_ms", "p95_ms", "p99_ms")
    if not any(row.get(key) is not None for row in rows for key in keys):
        return None
    chart = pygal.Bar(**_config("Latency percentiles", LATENCY_COLORS, y_title="milliseconds"))
    chart.x_labels = [row["label"] for row in rows]
    for key in keys:
        chart.add(key.removesuffix("_ms"), [row.get(key) for row in rows])
    return inline_svg(chart)
