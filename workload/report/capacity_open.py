"""Open-model capacity report: capacity.json, capacity.md and capacity.html of `--model open`.

The result (built by `workload.commands.capacity_open`) holds per policy the combined rate steps
and the knee (`workload.report.openknee`).  Markdown and HTML show the same tables; the HTML adds
per policy a pygal chart of offered vs achieved rate (left axis) and both latencies, response
time from the intended start and service time from the send (p99, right axis), the knee marked,
as inline SVG (`workload.report.charts`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pygal
from jinja2 import Environment
from markupsafe import Markup

from workload.report.capacity import CapacityPaths, _show, write_capacity
from workload.report.charts import DEFAULT_DASHES, _config, inline_svg
from workload.report.openknee import DEFAULT_MIN_ACHIEVED, DEFAULT_TURN_FACTOR
from workload.report.render import CSS

COLORS = ("#1f77b4", "#9ecae1", "#2ca02c", "#d62728", "#ff7f0e")  # offered, achieved, knee | response, service
NOTES = (
    "Open model: each step starts iterations at a fixed arrival rate, whether or not earlier ones have "
    "finished, so a slow target builds a queue instead of slowing the load (no coordinated omission).",
    "Response time counts from each iteration's intended start (it includes waiting for a slot and any "
    "backlog); service time counts from the actual send.  Their gap is the queueing the target caused.",
    f"The knee is the highest rate before the curve turns upward: response p99 above {DEFAULT_TURN_FACTOR:g}x the "
    f"lowest rate's, an SLO breach (response p99, dropped, late, failures), or less than "
    f"{DEFAULT_MIN_ACHIEVED:.0%} of the offered rate achieved.  Two such steps in a row end the ladder.",
    "A step marked 'generator saturated' measured the load generator as much as the target "
    "(run.json generator): its latencies are flagged.  Repeats show min..max of p99 and achieved rate.",
)
Row = dict[str, Any]
Column = tuple[str, Callable[[Row], Any]]


def _spread(key: str) -> Callable[[Row], Any]:
    def show(step: Row) -> Any:
        spread = step.get(f"{key}_spread")
        return f"{_show(step.get(key))} ({_show(spread[0])}..{_show(spread[1])})" if spread else step.get(key)
    return show


def _pct(key: str) -> Callable[[Row], Any]:
    return lambda s: f"{s[key]:.2%}" if isinstance(s.get(key), int | float) else None


KNEE_COLUMNS: tuple[Column, ...] = (
    ("policy", lambda p: p["policy"]), ("knee rate /s", lambda p: p["knee"]["rate"]),
    ("achieved /s", lambda p: p["knee"]["achieved_rate"]), ("response p99 ms", lambda p: p["knee"]["response_p99_ms"]),
    ("service p99 ms", lambda p: p["knee"]["service_p99_ms"]), ("ended by", lambda p: p["knee"]["ended_by"]),
    ("steps", lambda p: len(p["steps"])), ("generator saturated", lambda p: p["generator_saturated"]),
)
STEP_COLUMNS: tuple[Column, ...] = (
    ("rate /s", lambda s: s["rate"]), ("offered /s", lambda s: s.get("offered_rate")),
    ("achieved /s", _spread("achieved_rate")), ("dropped", _pct("dropped_ratio")), ("late", _pct("late_ratio")),
    ("response p50 ms", lambda s: s.get("response_p50_ms")), ("response p99 ms", _spread("response_p99_ms")),
    ("service p50 ms", lambda s: s.get("service_p50_ms")), ("service p99 ms", lambda s: s.get("service_p99_ms")),
    ("failures", _pct("failure_ratio")),
    ("generator", lambda s: "saturated" if s.get("generator_saturated") else "ok"),
    ("turned", lambda s: "; ".join(s.get("turned") or []) or "no"),
)


def tables(result: dict[str, Any]) -> list[dict[str, Any]]:
    def table(title: str, columns: tuple[Column, ...], rows: list[Row]) -> dict[str, Any]:
        return {"title": title, "headers": [name for name, _ in columns],
                "rows": [[_show(read(row)) for _, read in columns] for row in rows]}

    found = [table("Knee per policy (open model)", KNEE_COLUMNS, result["policies"])]
    return found + [table(f"Steps: {p['policy']}", STEP_COLUMNS, p["steps"]) for p in result["policies"]]


def _headline(result: dict[str, Any]) -> str:
    plan = result["plan"]
    rates = ", ".join(f"{r:g}" for r in plan["rates"])
    return (f"Scenario {result['scenario']} · open model · arrival rates {rates} /s, "
            f"{plan['step_duration_s']:g} s each, {plan['repeat']}x · generated {result['generated_at']}")


def render_markdown(result: dict[str, Any]) -> str:
    lines = [f"# Capacity (open model): {result['scenario']}", ""]
    if result.get("incomplete"):
        lines += ["> **INCOMPLETE**: interrupted, or a step's run did not finish.", ""]
    lines += [_headline(result), ""]
    for t in tables(result):
        lines += [f"## {t['title']}", "", "| " + " | ".join(t["headers"]) + " |",
                  "|" + "|".join("---" for _ in t["headers"]) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in t["rows"]]
        lines.append("")
    return "\n".join([*lines, "## How to read this", "", *(f"{n}\n" for n in NOTES)])


def open_chart(policy: dict[str, Any]) -> str | None:
    """Offered and achieved rate (left) and response/service p99 (right) against the offered rate."""
    steps = policy["steps"]
    if not steps:
        return None
    chart = pygal.XY(**_config(f"{policy['policy']}: offered vs achieved, and both latencies", COLORS,
                               x_title="offered arrivals/s", y_title="per second", show_dots=True, dots_size=3,
                               include_x_axis=True, value_formatter=lambda v: f"{v:,.0f}"))
    chart.add("offered", [(s["rate"], s.get("offered_rate")) for s in steps])
    chart.add("achieved", [(s["rate"], s.get("achieved_rate")) for s in steps])
    knee = policy["knee"]
    if knee.get("rate") is not None:
        chart.add(f"knee: {knee['rate']:g}/s", [(knee["rate"], 0), (knee["rate"], knee.get("achieved_rate") or 0)],
                  stroke_style={"width": 3, "dasharray": DEFAULT_DASHES})
    else:
        chart.add("no knee within the SLO", [])
    chart.add("response p99 ms (right axis)", [(s["rate"], s.get("response_p99_ms")) for s in steps], secondary=True)
    chart.add("service p99 ms (right axis)", [(s["rate"], s.get("service_p99_ms")) for s in steps], secondary=True)
    return inline_svg(chart)


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Capacity (open model): {{ r.scenario }}</title>
<style>{{ css }}</style></head><body>
{% if r.incomplete %}<div class="incomplete" role="alert"><strong>⚠ INCOMPLETE: interrupted, or a step's
run did not finish.</strong></div>{% endif %}
<header><h1>Capacity (open model): {{ r.scenario }}</h1><p class="meta">{{ headline }}</p></header>
{% for t in tables %}<section><h2>{{ t.title }}</h2><div class="scroll"><table>
<thead><tr>{% for h in t.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in t.rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</tbody>
</table></div></section>{% endfor %}
<section><h2>Offered vs achieved, and both latencies</h2>
{% for c in charts %}{% if c.svg %}<figure>{{ c.svg }}</figure>{% endif %}{% endfor %}</section>
<section class="note"><h2>How to read this</h2>{% for p in notes %}<p>{{ p }}</p>{% endfor %}</section>
</body></html>
"""
_TEMPLATE = Environment(autoescape=True, keep_trailing_newline=True).from_string(HTML_TEMPLATE)


def render_html(result: dict[str, Any]) -> str:
    charts = [{"svg": Markup(svg) if (svg := open_chart(p)) else None} for p in result["policies"]]
    return _TEMPLATE.render(r=result, css=CSS, headline=_headline(result), tables=tables(result), charts=charts,
                            notes=NOTES)


def write_open_capacity(result: dict[str, Any], out_dir: str | Path) -> CapacityPaths:
    return write_capacity(result, out_dir, render_markdown, render_html)


def describe_open(result: dict[str, Any], paths: CapacityPaths) -> str:
    lines = ["Capacity, open model (INCOMPLETE):" if result.get("incomplete") else "Capacity, open model:"]
    for p in result["policies"]:
        knee = p["knee"]
        if knee["rate"] is None:
            lines.append(f"  {p['policy']:<10} no step before the knee ({knee['ended_by']})")
            continue
        flag = " [generator saturated: latencies flagged]" if p["generator_saturated"] else ""
        lines.append(f"  {p['policy']:<10} knee at {knee['rate']:g}/s offered ({_show(knee['achieved_rate'])}/s "
                     f"achieved): response p99 {_show(knee['response_p99_ms'])} ms, service p99 "
                     f"{_show(knee['service_p99_ms'])} ms (ended by {knee['ended_by']}){flag}")
    lines += [f"  json      {paths.json}", f"  markdown  {paths.markdown}", f"  html      {paths.html}"]
    return "\n".join(lines)
