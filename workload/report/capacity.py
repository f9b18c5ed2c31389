"""Capacity report: a `workload capacity` result as capacity.json, capacity.md and capacity.html.

The result (schema ``workload.commands.capacity/1``, built by `workload.commands.capacity`) holds one analysis
per policy (`workload.report.knee.analyse`).  The same tables are rendered to Markdown and HTML; the
HTML adds, per policy, a pygal chart of throughput and p95 against users with the knee
marked, as inline SVG without scripts or external URLs (`workload.report.charts`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygal
from jinja2 import Environment
from markupsafe import Markup

from workload.report import _out_dir, _write
from workload.report.charts import DEFAULT_DASHES, _config, inline_svg
from workload.report.render import CSS

CAPACITY_SCHEMA = "workload.commands.capacity/1"
DEFAULT_JSON_NAME = "capacity.json"
DEFAULT_MARKDOWN_NAME = "capacity.md"
DEFAULT_HTML_NAME = "capacity.html"
MISSING = "n/a"
RPS_COLOR, P95_COLOR, KNEE_COLOR, SLO_COLOR = "#1f77b4", "#d62728", "#2ca02c", "#ff9896"
NOTES = (
    "The knee is the highest step whose p95 and failure ratio stay within the SLO and whose throughput "
    "still grew (by 5%, or half the relative user increase if smaller) over the previous knee. "
    "Scanning stops at two breaching steps in a row; one breaching step alone is treated as noise.",
    "Ended by: 'saturated' means more users stopped buying throughput before the SLO broke (a CPU, "
    "worker or pool limit); 'slo' means latency or failures broke the SLO first; 'bound' means the last "
    "step was still fine: raise --max-users or --max-duration to find the knee.",
    "The forecast scales the step nearest the target rate: new connections/s = rate x measured "
    "connections per request; TIME_WAIT = new connections/s x 60 s (upper bound, every connection "
    "closed by the client), then scaled by the measured client share of TIME_WAIT; concurrent requests "
    "= rate x mean latency (Little's law). Users are Locust's closed model: one request in flight each.",
)

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], Any]]


@dataclass(frozen=True)
class CapacityPaths:
    json: Path
    markdown: Path
    html: Path


def _show(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ratio(value: Any) -> str | None:
    return f"{value:.2%}" if isinstance(value, int | float) else None


def _knee(key: str) -> Callable[[Row], Any]:
    return lambda p: p["knee"].get(key)


def _forecast(key: str) -> Callable[[Row], Any]:
    return lambda p: (p.get("forecast") or {}).get(key)


def _percent(key: str) -> Callable[[Row], Any]:
    return lambda p: _ratio((p.get("forecast") or {}).get(key))


KNEE_COLUMNS: tuple[Column, ...] = (
    ("policy", lambda p: p["policy"]), ("type", lambda p: p["type"]),
    ("knee users", _knee("users")), ("knee RPS", _knee("rps")), ("p95 at knee (ms)", _knee("p95_ms")),
    ("max RPS within SLO", _knee("max_rps_within_slo")), ("max users within SLO", _knee("max_users_within_slo")),
    ("ended by", _knee("ended_by")), ("steps measured", lambda p: len(p["steps"])),
    ("stopped early", lambda p: p["stopped_early"]),
)
FORECAST_COLUMNS: tuple[Column, ...] = (
    ("policy", lambda p: p["policy"]), ("within SLO", _forecast("reachable")),
    ("new conn/s", _forecast("new_connections_per_s")), ("TIME_WAIT client (steady)", _forecast("time_wait_client")),
    ("TIME_WAIT upper bound", _forecast("time_wait_upper_bound")), ("port range share", _percent("port_range_share")),
    ("requests in flight", _forecast("in_flight")), ("users needed", _forecast("users_needed")),
    ("file descriptors", _forecast("file_descriptors")), ("pool_maxsize", _forecast("pool_maxsize")),
    ("pool_connections", _forecast("pool_connections")), ("pool note", _forecast("pool_note")),
    ("ports", lambda p: (p.get("forecast") or {}).get("port_note") or "ok"),
)
def _step(key: str) -> Callable[[Row], Any]:
    return lambda step: step.get(key)


STEP_COLUMNS: tuple[Column, ...] = tuple((title, _step(key)) for title, key in (
    ("users", "users"), ("reached", "users_reached"), ("RPS", "rps"), ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms"),
    ("p99 ms", "p99_ms"), ("connections", "connections"),
    ("TIME_WAIT client", "time_wait_client"), ("TIME_WAIT server", "time_wait_server"),
    ("new conn/s", "connects_per_s"), ("conn/request", "connections_per_request"),
)) + (("failures", lambda s: _ratio(s.get("failure_ratio"))),
       ("SLO", lambda s: "; ".join(s.get("breaches") or []) or "ok"))
TEXT_COLUMNS = frozenset({"policy", "type", "ended by", "pool note", "ports", "SLO"})


def tables(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's tables: title, headers and rendered cells."""
    def table(title: str, columns: tuple[Column, ...], rows: list[Row]) -> dict[str, Any]:
        return {"title": title, "headers": [name for name, _ in columns],
                "rows": [[_show(read(row)) for _, read in columns] for row in rows]}

    policies = result["policies"]
    found = [table("Knee per policy", KNEE_COLUMNS, policies)]
    if result["plan"].get("target_rps"):
        found.append(table(f"At {result['plan']['target_rps']:g} requests/s", FORECAST_COLUMNS, policies))
    found += [table(f"Steps: {p['policy']}", STEP_COLUMNS, p["steps"]) for p in policies]
    return found


def _headline(result: dict[str, Any]) -> list[str]:
    plan, slo = result["plan"], result["slo"]
    limits = "; ".join(f"{name}: p95 ≤ {s['p95_ms']:g} ms, failures ≤ {s['failure_ratio']:.2%}"
                       for name, s in slo.items())
    return [f"Scenario **{result['scenario']}** · SLO per policy: {limits}",
            f"Steps of {plan['step_users']} users every {plan['step_duration_s']:g} s, up to {plan['max_users']} "
            f"users or {plan['max_duration_s']:g} s per policy · generated {result['generated_at']}"]


def render_markdown(result: dict[str, Any]) -> str:
    lines = [f"# Capacity: {result['scenario']}", ""]
    if result.get("incomplete"):
        lines += ["> **INCOMPLETE**: interrupted, or a policy's run did not finish.", ""]
    lines += [*(f"{line}  " for line in _headline(result)), ""]
    for t in tables(result):
        lines += [f"## {t['title']}", "", "| " + " | ".join(t["headers"]) + " |",
                  "|" + "|".join("---" for _ in t["headers"]) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in t["rows"]]
        lines.append("")
    lines += ["## How to read this", "", *(f"{note}\n" for note in NOTES)]
    return "\n".join(lines)


def knee_chart(policy: dict[str, Any]) -> str | None:
    """Throughput (left axis) and p95 (right axis) against users, the knee as a vertical line."""
    steps = policy["steps"]
    if not steps:
        return None
    knee, slo = policy["knee"], policy["slo"]
    # pygal colours primary-axis series first, then secondary ones: add them in that order.
    colors = (RPS_COLOR, KNEE_COLOR, P95_COLOR, SLO_COLOR)
    chart = pygal.XY(**_config(f"{policy['policy']}: throughput and p95 against users", colors,
                               x_title="users", y_title="requests/s", show_dots=True, dots_size=3,
                               include_x_axis=True, value_formatter=lambda v: f"{v:,.0f}"))
    chart.add("RPS", [(s["users"], s["rps"]) for s in steps])
    if knee.get("users") is not None:
        label = f"knee: {knee['users']} users, {knee['rps']:,.0f} RPS"
        chart.add(label, [(knee["users"], 0), (knee["users"], knee["rps"])],
                  stroke_style={"width": 3, "dasharray": DEFAULT_DASHES})
    else:
        chart.add("no knee within the SLO", [])
    chart.add("p95 ms (right axis)", [(s["users"], s["p95_ms"]) for s in steps], secondary=True)
    users = [s["users"] for s in steps]
    chart.add(f"SLO p95 {slo['p95_ms']:g} ms (right axis)",
              [(min(users), slo["p95_ms"]), (max(users), slo["p95_ms"])],
              secondary=True, show_dots=False, stroke_style={"width": 1, "dasharray": DEFAULT_DASHES})
    return inline_svg(chart)


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Capacity: {{ r.scenario }}</title>
<style>{{ css }}</style></head>
<body>
{% if r.incomplete %}<div class="incomplete" role="alert"><strong>⚠ INCOMPLETE: interrupted, or a policy's
run did not finish.</strong></div>{% endif %}
<header><h1>Capacity: {{ r.scenario }}</h1>
{% for line in headline %}<p class="meta">{{ line }}</p>{% endfor %}</header>
{% for t in tables %}<section><h2>{{ t.title }}</h2><div class="scroll"><table>
<thead><tr>{% for h in t.headers %}<th{{ t.align[loop.index0] }}>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in t.rows %}<tr>{% for c in row %}<td{{ t.align[loop.index0] }}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table></div></section>
{% endfor %}<section><h2>Throughput and latency against load</h2>
{% for c in charts %}{% if c.svg %}<figure>{{ c.svg }}</figure>
{% else %}<p class="empty">{{ c.policy }}: no step was measured.</p>{% endif %}{% endfor %}</section>
<section class="note"><h2>How to read this</h2>{% for p in notes %}<p>{{ p }}</p>{% endfor %}</section>
</body></html>
"""
_TEMPLATE = Environment(autoescape=True, keep_trailing_newline=True).from_string(HTML_TEMPLATE)


def render_html(result: dict[str, Any]) -> str:
    shown = tables(result)
    for t in shown:
        t["align"] = [Markup(' class="text"') if h in TEXT_COLUMNS else "" for h in t["headers"]]
    charts = [{"policy": p["policy"], "svg": Markup(svg) if (svg := knee_chart(p)) else None}
              for p in result["policies"]]
    headline = [line.replace("**", "") for line in _headline(result)]
    return _TEMPLATE.render(r=result, css=CSS, headline=headline, tables=shown, charts=charts, notes=NOTES)


def write_capacity(result: dict[str, Any], out_dir: str | Path,
                   markdown: Callable[[dict[str, Any]], str] | None = None,
                   html: Callable[[dict[str, Any]], str] | None = None) -> CapacityPaths:
    """Write capacity.json, capacity.md and capacity.html to `out_dir` (the open model's report
    passes its own renderers)."""
    out = _out_dir(out_dir)
    paths = CapacityPaths(out / DEFAULT_JSON_NAME, out / DEFAULT_MARKDOWN_NAME, out / DEFAULT_HTML_NAME)
    _write(paths.json, json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    _write(paths.markdown, (markdown or render_markdown)(result))
    _write(paths.html, (html or render_html)(result))
    return paths


def describe(result: dict[str, Any], paths: CapacityPaths) -> str:
    """What the CLI prints: the knee (and forecast) per policy, then the files."""
    lines = ["Capacity (INCOMPLETE):" if result.get("incomplete") else "Capacity:"]
    for p in result["policies"]:
        knee = p["knee"]
        if knee["users"] is None:
            lines.append(f"  {p['policy']:<10} no step within the SLO ({'; '.join(p['steps'][0]['breaches'])})"
                         if p["steps"] else f"  {p['policy']:<10} no step measured")
            continue
        lines.append(f"  {p['policy']:<10} knee at {knee['users']} users: {knee['rps']:,.0f} RPS, "
                     f"p95 {knee['p95_ms']} ms (ended by {knee['ended_by']})")
        f = p.get("forecast")
        if f and f.get("users_needed") is not None:
            lines.append(f"  {'':<10} at {f['target_rps']:g} RPS: {f['new_connections_per_s']:g} new conn/s, "
                         f"TIME_WAIT ~{_show(f['time_wait_client'])} ({_percent('port_range_share')(p) or MISSING} "
                         f"of ports), ~{f['file_descriptors']} fds, {f['users_needed']} users")
            warnings = [] if f["reachable"] else ["beyond the knee: not sustained within the SLO (extrapolated)"]
            warnings += [f["port_note"]] if f.get("port_note") else []
            lines += [f"  {'':<10} ! {warning}" for warning in warnings]
    lines += [f"  json      {paths.json}", f"  markdown  {paths.markdown}", f"  html      {paths.html}"]
    return "\n".join(lines)
