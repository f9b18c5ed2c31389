"""Report rendering: the policy summary as report.md and as a self-contained report.html.

Both show the same tables (columns chosen here, never whole dicts from the runs, so nothing
unexpected such as credentials can leak in), the findings and a note on TIME_WAIT.  The HTML
has inline CSS and inline SVG charts (see `workload.report.charts`) and no external reference;
all text is escaped by Jinja2's autoescape.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from workload.redaction import redact
from workload.report import charts, workers
from workload.report.numbers import DEFAULT_MISSING, cell, decimal, percent
from workload.results.run import RunResult

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], str]]

DEFAULT_UNOBSERVABLE = "not observable"
DEFAULT_NOT_APPLICABLE = "does not apply"
# Columns holding words rather than figures: left-aligned.
TEXT_COLUMNS = frozenset({"policy", "type", "run id", "target", "complete", "ended by"})
NO_CLIENT_TIME_WAIT = ("server TIME_WAIT", "reset")
KERNEL_COUNTERS = ("ActiveOpens", "PassiveOpens", "EstabResets", "TCPAbortOnData", "TCPAbortOnClose")

INCOMPLETE_TEXT = ("INCOMPLETE REPORT: the comparison was cut short or a run did not complete; "
                   "figures cover only what was measured.")
TIME_WAIT_NOTE = (
    "TIME_WAIT is not a connection count. It counts sockets of connections that have already "
    "closed and are waiting out a timer (about 60 seconds on Linux) so that stray packets of an "
    "old connection cannot be mistaken for a new one.",
    "Whichever side closes a connection first holds its TIME_WAIT socket: the client when it "
    "closes after each request, the server when it answers with Connection: close. A connection "
    "ended by a reset (RST) leaves no TIME_WAIT on either side; one kept open leaves none until "
    "it is closed.",
    "On the client, each TIME_WAIT socket ties up one ephemeral port towards that server; when "
    "the range runs out, new connections fail (cause ports_exhausted). Peak is the most seen at "
    "once during the run, end is what was left when it finished. The forecast is how many the "
    "client would hold at this connection rate if it closed first (rate x TIME_WAIT seconds); "
    "it does not apply where the server closes first or connections are reset.",
    "\"Ended by\" is derived from the figures: kept open when the client held about all its "
    "connections open at once; client or server TIME_WAIT when that side's peak accounts for "
    "most connections (as many as the 60-second timer lets exist at once); reset when the "
    "kernel's reset counters do; n/a when the figures do not tell.",
)


def _field(key: str) -> Callable[[Row], str]:
    return lambda row: cell(row.get(key))


def _nested(section: str, key: str) -> Callable[[Row], str]:
    return lambda row: cell((row.get(section) or {}).get(key))


def _server_side(cell: Callable[[Row], str]) -> Callable[[Row], str]:
    """A server-side figure: "not observable" for a remote target rather than n/a or 0."""
    return lambda row: DEFAULT_UNOBSERVABLE if row.get("server_side_observable") is False else cell(row)


def _decimal(key: str) -> Callable[[Row], str]:
    return lambda row: DEFAULT_MISSING if row.get(key) is None else decimal(row[key])


def _forecast(render: Callable[[Any], str], key: str) -> Callable[[Row], str]:
    """A ports-forecast figure; it assumes the client closes first, so where the server
    closes first or connections are reset (no client TIME_WAIT) it does not apply."""
    def cell(row: Row) -> str:
        if row.get("ended_by") in NO_CLIENT_TIME_WAIT:
            return DEFAULT_NOT_APPLICABLE
        value = (row.get("ports") or {}).get(key)
        return DEFAULT_MISSING if value is None else render(value)
    return cell


def _target(row: Row) -> str:
    sides: dict[object, str] = {True: "local", False: "remote"}
    where = sides.get(row.get("target_local"), DEFAULT_MISSING)
    return f"{where} ({', '.join(row['endpoints'])})" if row.get("endpoints") else where


POLICY: Column = ("policy", _field("label"))
TABLES: tuple[tuple[str, tuple[Column, ...]], ...] = (
    ("Runs", (POLICY, ("type", _field("policy_type")), ("engine", _field("engine")), ("run id", _field("run_id")),
              ("users", _field("users")), ("duration s", _field("duration_s")), ("target", _target),
              ("complete", _field("complete")))),
    ("Throughput and latency", (POLICY, ("requests", _field("requests")), ("failures", _field("failures")),
                                ("requests/s", _decimal("rps")), ("p50 ms", _field("p50_ms")),
                                ("p95 ms", _field("p95_ms")), ("p99 ms", _field("p99_ms")))),
    ("Connections", (POLICY, ("opened", _field("connections_opened")),
                     ("requests/connection", _field("requests_per_connection")),
                     ("TLS handshakes", _field("tls_handshakes")), ("TLS failed", _field("tls_failures")),
                     ("TLS resumed", _field("tls_resumed")),
                     ("pool discards", _field("pool_discards")), ("pool waits", _field("pool_waits")),
                     ("setup ms (avg)", _field("connection_setup_ms")),
                     ("server accepted", _server_side(_nested("server", "connections_accepted"))),
                     ("ended by", _field("ended_by")))),
    ("Sockets", (POLICY, ("TIME_WAIT client peak", _field("time_wait_client_peak")),
                 ("TIME_WAIT client end", _field("time_wait_client_end")),
                 ("TIME_WAIT server peak", _server_side(_field("time_wait_server_peak"))),
                 ("TIME_WAIT server end", _server_side(_field("time_wait_server_end"))),
                 ("established client peak", _field("established_client_peak")),
                 ("client TIME_WAIT forecast", _forecast(cell, "forecast_time_wait")),
                 ("share of port range", _forecast(percent, "forecast_share")))),
    ("Kernel counters (deltas over the run, whole network namespace)",
     (POLICY, *((name, _nested("kernel", name)) for name in KERNEL_COUNTERS))),
)

def _rate(key: str) -> Callable[[Row], str]:
    """An open-model rate to one decimal: offered 50.0 against achieved 44.5 must not read as 50 vs 44."""
    return lambda row: DEFAULT_MISSING if (row.get("arrival") or {}).get(key) is None else \
        f"{row['arrival'][key]:,.1f}"


# Open-model runs only (`load.arrival`): offered vs achieved load and both latencies.
OPEN_TABLE: tuple[str, tuple[Column, ...]] = (
    "Open model (offered vs achieved; latency from the intended start)",
    (POLICY, ("offered/s", _rate("offered_rate")), ("achieved/s", _rate("achieved_rate")),
     ("scheduled", _nested("arrival", "scheduled")), ("dropped", _nested("arrival", "dropped")),
     ("late", _nested("arrival", "late")), ("lag p99 ms", _nested("arrival", "lag_p99_ms")),
     ("response p50 ms", _nested("arrival", "response_p50_ms")),
     ("response p99 ms", _nested("arrival", "response_p99_ms")),
     ("response p99.9 ms", _nested("arrival", "response_p99_9_ms")),
     ("service p50 ms", _nested("arrival", "service_p50_ms")),
     ("service p99 ms", _nested("arrival", "service_p99_ms"))))


def _tables(summary: dict[str, Any]) -> tuple[tuple[str, tuple[Column, ...]], ...]:
    """The tables this summary shows: the open-model one when any run used `load.arrival`."""
    is_open = any(row.get("arrival") for row in summary["policies"])
    return (*TABLES[:2], OPEN_TABLE, *TABLES[2:]) if is_open else TABLES


def table_rows(summary: dict[str, Any], columns: tuple[Column, ...]) -> list[list[str]]:
    return [[cell(row) for _, cell in columns] for row in summary["policies"]]


def _md_text(text: str) -> str:
    """Text safe in a Markdown table cell or list item (no raw HTML, no column breaks)."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def _md_table(title: str, columns: tuple[Column, ...], summary: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", "", "| " + " | ".join(name for name, _ in columns) + " |",
             "|" + "|".join("---" if name in TEXT_COLUMNS else "---:" for name, _ in columns) + "|"]
    lines += ["| " + " | ".join(_md_text(c) for c in cells) + " |" for cells in table_rows(summary, columns)]
    return [*lines, ""]


def render_markdown(summary: dict[str, Any]) -> str:
    """report.md: title, incomplete marker, findings, tables and the TIME_WAIT note."""
    lines = [f"# Connection policy comparison: {_md_text(summary['scenario'])}", ""]
    if summary["incomplete"]:
        lines += [f"> **⚠ {_md_text(INCOMPLETE_TEXT)}**", ""]
    lines += [f"Generated {summary['generated_at']} from {len(summary['policies'])} run(s).", "",
              "## Findings", ""]
    lines += [f"- {_md_text(f)}" for f in summary["findings"]] or ["- (no findings: too little data)"]
    lines.append("")
    for title, columns in _tables(summary):
        lines += _md_table(title, columns, summary)
    lines += workers.markdown(summary, _md_text)  # distributed runs only
    lines += ["## What TIME_WAIT means", ""]
    for paragraph in TIME_WAIT_NOTE:
        lines += [_md_text(paragraph), ""]
    return redact("\n".join(lines))


CSS = Markup("""
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#222;
 max-width:1100px;margin:0 auto;padding:24px;line-height:1.45;background:#fff}
h1{font-size:1.6em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd}
.meta{color:#666;margin:0}
.incomplete{background:#fff3cd;border:2px solid #d39e00;color:#6b4e00;padding:12px 16px;
 border-radius:6px;font-size:1.05em;margin:0 0 16px}
.findings li{margin:.3em 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.92em;min-width:60%}
th,td{padding:5px 10px;border-bottom:1px solid #e5e5e5;white-space:nowrap}
th{background:#f5f6f8;text-align:right;font-weight:600;white-space:normal;vertical-align:bottom}td{text-align:right;font-variant-numeric:tabular-nums}
th.text,td.text{text-align:left}td:first-child{font-weight:600}
tbody tr:hover{background:#fafbfc}
figure{margin:16px 0}figure svg{width:100%;height:auto;border:1px solid #eee;border-radius:4px}
.empty{color:#888;font-style:italic}
.note p{max-width:820px;color:#333}
""")

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connection policy comparison: {{ s.scenario }}</title>
<style>{{ css }}</style></head>
<body>
{% if s.incomplete %}<div class="incomplete" role="alert"><strong>⚠ {{ incomplete }}</strong></div>{% endif %}
<header><h1>Connection policy comparison</h1>
<p class="meta">Scenario <strong>{{ s.scenario }}</strong> · {{ s.policies|length }} run(s) ·
generated {{ s.generated_at }}</p></header>
<section><h2>Findings</h2>
{% if s.findings %}<ul class="findings">{% for f in s.findings %}<li>{{ f }}</li>{% endfor %}</ul>
{% else %}<p class="empty">No findings: too little data.</p>{% endif %}</section>
{% for t in tables %}<section><h2>{{ t.title }}</h2><div class="scroll"><table>
<thead><tr>{% for h in t.headers %}<th{{ t.align[loop.index0] }}>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>{% for r in t.rows %}<tr>{% for c in r %}<td{{ t.align[loop.index0] }}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table></div></section>
{% endfor %}<section><h2>Charts</h2>
{% for c in charts %}{% if c.svg %}<figure>{{ c.svg }}</figure>
{% else %}<p class="empty">{{ c.title }}: no data recorded.</p>{% endif %}{% endfor %}</section>
<section class="note"><h2>What TIME_WAIT means</h2>
{% for p in note %}<p>{{ p }}</p>{% endfor %}</section>
</body></html>
"""

_ENV = Environment(autoescape=True, keep_trailing_newline=True)
_TEMPLATE = _ENV.from_string(HTML_TEMPLATE)


def _charts(summary: dict[str, Any], runs: list[RunResult]) -> list[dict[str, Any]]:
    labelled = [(row["label"], run) for row, run in zip(summary["policies"], runs, strict=True)]
    drawn = [("Throughput over time", charts.rps_chart(labelled)),
             ("TIME_WAIT sockets over time", charts.time_wait_chart(labelled)),
             ("Latency percentiles", charts.latency_chart(summary["policies"]))]
    if any(run.arrival is not None for run in runs):  # a closed-only report: no empty open-model chart
        drawn.append(("Open model: response time p99 per second", charts.open_response_chart(labelled)))
    return [{"title": title, "svg": Markup(svg) if svg else None} for title, svg in drawn]


def render_html(summary: dict[str, Any], runs: list[RunResult]) -> str:
    """report.html for `summary` and the runs it was built from (same order: for the charts)."""
    tables = [{"title": title, "headers": [name for name, _ in columns], "rows": table_rows(summary, columns),
               "align": [Markup(' class="text"') if name in TEXT_COLUMNS else "" for name, _ in columns]}
              for title, columns in _tables(summary)] + workers.html_tables(summary)
    return redact(_TEMPLATE.render(s=summary, css=CSS, incomplete=INCOMPLETE_TEXT, tables=tables,
                                   charts=_charts(summary, runs), note=TIME_WAIT_NOTE))
