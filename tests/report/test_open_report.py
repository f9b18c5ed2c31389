"""The comparison report of open-model runs: offered vs achieved, dropped, late, both latencies."""

from __future__ import annotations

from tests.factories import make_run
from workload.report.render import render_markdown
from workload.report.summary import build_summary

ARRIVAL = {"rate": 50.0, "offered_rate": 50.0, "achieved_rate": 44.5, "scheduled": 500, "started": 445,
           "dropped": 55, "late": 12, "dropped_ratio": 0.11, "late_ratio": 0.027,
           "lag_ms": {"p50": 1.0, "p99": 9.5, "max": 30.0},
           "response_time_ms": {"count": 445, "mean": 90.0, "p50": 41.0, "p90": 300.0, "p95": 700.0, "p99": 1900.0,
                                "p99_9": 2050.0, "max": 2100.0},
           "service_time_ms": {"count": 445, "mean": 8.0, "p50": 4.0, "p90": 9.0, "p95": 11.0, "p99": 14.0,
                               "p99_9": 20.0, "max": 22.0}}


def test_open_runs_get_the_open_model_table_and_their_latency_from_the_intended_start():
    summary = build_summary([make_run(arrival=ARRIVAL), make_run(arrival=ARRIVAL, policy__name="close")])
    shared = summary["policies"][0]
    assert (shared["p50_ms"], shared["p95_ms"], shared["p99_ms"]) == (41.0, 700.0, 1900.0)  # not Locust's 3/9/14
    assert shared["arrival"]["dropped"] == 55 and shared["arrival"]["service_p99_ms"] == 14.0
    text = render_markdown(summary)
    assert "## Open model (offered vs achieved; latency from the intended start)" in text
    assert "| shared | 50.0 | 44.5 | 500 | 55 | 12 | 9.5 | 41 | 1,900 | 2,050 | 4.0 | 14 |" in text


def test_closed_runs_have_no_open_model_table():
    summary = build_summary([make_run()])
    assert summary["policies"][0]["arrival"] is None
    assert summary["policies"][0]["p95_ms"] == 9
    assert "Open model" not in render_markdown(summary)


def test_the_html_report_charts_an_open_runs_response_p99_per_second():
    from workload.report.render import render_html
    from workload.results.run import RunResult

    rows = [{"t": t, "completed": 50, "response_p99_ms": 2000.0 if t == 4 else 20.0} for t in range(8)]
    opened = make_run(arrival={**ARRIVAL, "series": rows})
    closed = make_run(policy__name="close")
    summary = build_summary([opened, closed])
    html = render_html(summary, [RunResult.model_validate(opened), RunResult.model_validate(closed)])
    assert "Open model: response time p99 per second (from the intended start)" in html
    closed_only = render_html(build_summary([closed]), [RunResult.model_validate(closed)])
    assert "Open model" not in closed_only
