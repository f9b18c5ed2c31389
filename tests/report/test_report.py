"""Tests of the policy-comparison report (workload.report) on canned run.json fixtures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.factories import run_data
from workload.errors import ResultsError
from workload.report import ReportPaths, build_report, build_summary, describe, load_run
from workload.report.summary import ended_by
from workload.results.run import validate_run

DURATION = 30


def _history(rps: float, failures_per_s: float = 0.0) -> list[dict[str, Any]]:
    return [{"t": float(t), "users": 10, "rps": rps * (0.9 + 0.1 * (t % 3) / 2),
             "failures_per_s": failures_per_s, "p50_ms": 3, "p95_ms": 9} for t in range(1, DURATION + 1)]


def _series(tw_client: int, tw_server: int | None, est: int) -> list[dict[str, Any]]:
    return [{"t": float(t), "tw_client": tw_client * t // DURATION,
             "tw_server": None if tw_server is None else tw_server * t // DURATION,
             "est_client": est, "est_server": est} for t in range(1, DURATION + 1)]


def run_doc(policy: str, policy_type: str, *, requests: int, rps: float, latency: tuple[int, int, int],
             connects: int, tw_client: int = 0, tw_server: int | None = 0, est_client: int = 10,
             tls: int = 0, resumed: int | None = None, discards: int = 0, resets: int = 0, accepted: int | None = None,
             errors: list[dict[str, Any]] | None = None, host: str = "http://127.0.0.1:8080",
             local: bool = True, complete: bool = True) -> dict[str, Any]:
    """A realistic run.json document (workload.run/1) for one policy of the scenario 'demo'."""
    failures = sum(e["occurrences"] for e in errors or [])
    rate = round(connects / DURATION, 1)
    p50, p95, p99 = latency
    return run_data(**{
        "run_id": f"20261121-105012-demo-{policy}", "complete": complete,
        "scenario": {"name": "demo", "path": "scenarios/demo.yaml"},
        "policy": {"name": policy, "type": policy_type,
                   "settings": {"pool_maxsize": 10, "auth": {"password": "hunter2-secret"},
                                **({} if resumed is None else {"tls_resumption": resumed > 0})}},
        "target": {"hosts": {"default": host.replace("://", "://admin:s3cret-pw@")}, "local": local},
        "load": {"users": 10, "spawn_rate": 10.0, "duration_s": float(DURATION)},
        "started_at": 1763722212.5, "ended_at": 1763722242.6, "duration_s": 30.1,
        "stats": {
            "total": {"requests": requests, "failures": failures, "rps": rps, "p50_ms": p50,
                      "p95_ms": p95, "p99_ms": p99, "avg_ms": p50 * 1.2, "max_ms": p99 * 3},
            "endpoints": [{"method": "GET", "name": "list items", "requests": requests,
                           "failures": failures, "rps": rps, "p50_ms": p50, "p95_ms": p95,
                           "p99_ms": p99, "avg_ms": p50 * 1.2, "max_ms": p99 * 3}],
            "errors": errors or [],
            "history": _history(rps),
        },
        "connections": {"tcp_connects": connects, "tls_handshakes": tls, "tls_failures": 0, "pool_discards": discards,
                        **({} if resumed is None else {"tls_resumed": resumed, "tls_full": tls - resumed}),
                        "requests_per_connection": round(requests / connects, 1),
                        "setup_ms": {"count": connects, "avg": 0.3, "p50": 0.2, "p95": 0.6, "max": 2.1}},
        "sockets": {
            "endpoints": [host.split("://")[1]], "server_side_observable": tw_server is not None,
            "time_wait_client": {"peak": tw_client, "end": tw_client},
            "time_wait_server": {"peak": tw_server, "end": tw_server},
            "established_client": {"peak": est_client, "end": 0},
            "established_server": {"peak": est_client if local else None, "end": 0},
            "samples": DURATION, "series": _series(tw_client, tw_server, est_client),
        },
        "kernel": {"ActiveOpens": connects, "PassiveOpens": connects if local else 0,
                   "EstabResets": resets, "TCPAbortOnData": 0, "TCPAbortOnClose": resets},
        "ports": {"range": [32768, 60999], "size": 28232, "tcp_tw_reuse": 2, "new_connections_per_s": rate,
                  "time_wait_seconds": 60, "forecast_time_wait": round(rate * 60),
                  "forecast_share": round(rate * 60 / 28232, 4)},
        "server": {"connections_accepted": accepted, "requests": requests} if local else None,
        "workers": [],
    })


SHARED = {"policy": "shared", "policy_type": "shared", "requests": 87_780, "rps": 2926.0,
          "latency": (3, 9, 14), "connects": 12, "tw_client": 2, "discards": 2, "accepted": 12}
FRESH = {"policy": "fresh", "policy_type": "fresh", "requests": 2298, "rps": 76.6, "latency": (11, 25, 41),
         "connects": 2298, "tw_client": 2298, "accepted": 2295,
         "errors": [{"method": "GET", "name": "list items", "error": "ReadTimeout()", "cause": "timeout",
                     "occurrences": 2},
                    {"method": "GET", "name": "list items", "error": "ConnectionResetError()",
                     "cause": "reset", "occurrences": 1}]}
CLOSE = {"policy": "close", "policy_type": "close", "requests": 2310, "rps": 77.0, "latency": (10, 24, 40),
         "connects": 2310, "tw_server": 2310, "accepted": 2310}
CLOSE_TLS = {"policy": "close-tls", "policy_type": "close", "requests": 1540, "rps": 51.3,
             "latency": (17, 38, 60), "connects": 1540, "tls": 1540, "resets": 1540, "accepted": 1540,
             "host": "https://127.0.0.1:8443"}
REMOTE = {"policy": "fresh", "policy_type": "fresh", "requests": 1200, "rps": 40.0, "latency": (48, 90, 130),
          "connects": 1200, "tw_client": 1200, "tw_server": None, "host": "https://api.example.test",
          "local": False}


def write_run(root: Path, name: str, run: dict[str, Any]) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return directory


@pytest.fixture()
def demo_dirs(tmp_path: Path) -> list[Path]:
    specs = (SHARED, CLOSE, FRESH)
    return [write_run(tmp_path / "results", spec["policy"], run_doc(**spec)) for spec in specs]


@pytest.fixture()
def demo_report(demo_dirs: list[Path], tmp_path: Path) -> ReportPaths:
    return build_report(demo_dirs, tmp_path / "report")


def _summary(paths: ReportPaths) -> dict[str, Any]:
    return json.loads(paths.summary.read_text(encoding="utf-8"))


def _policy(summary: dict[str, Any], label: str) -> dict[str, Any]:
    return next(p for p in summary["policies"] if p["label"] == label)


SUMMARY_KEYS = {"policy", "policy_type", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms",
                "connections_opened", "requests_per_connection", "tls_handshakes", "tls_failures", "pool_discards",
                "connection_setup_ms", "time_wait_client_peak", "time_wait_client_end",
                "time_wait_server_peak", "time_wait_server_end", "established_client_peak", "kernel",
                "ended_by", "failures_by_cause", "ports", "server", "complete", "workers"}


def test_report_writes_three_files(demo_report: ReportPaths, tmp_path: Path) -> None:
    assert demo_report.summary == tmp_path / "report" / "summary.json"
    assert demo_report.markdown.name == "report.md" and demo_report.html.name == "report.html"
    assert all(p.is_file() for p in (demo_report.summary, demo_report.markdown, demo_report.html))
    assert not list((tmp_path / "report").glob(".*partial"))


def test_summary_document(demo_report: ReportPaths) -> None:
    summary = _summary(demo_report)
    assert summary["schema"] == "workload.summary/1"
    assert summary["scenario"] == "demo" and summary["incomplete"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", summary["generated_at"])
    assert [p["policy"] for p in summary["policies"]] == ["shared", "close", "fresh"]
    for policy in summary["policies"]:
        assert policy.keys() >= SUMMARY_KEYS


def test_summary_figures(demo_report: ReportPaths) -> None:
    summary = _summary(demo_report)
    shared, close, fresh = (_policy(summary, name) for name in ("shared", "close", "fresh"))
    assert (shared["requests"], shared["rps"], shared["p99_ms"]) == (87_780, 2926.0, 14)
    assert (shared["connections_opened"], shared["requests_per_connection"]) == (12, 7315.0)
    assert shared["pool_discards"] == 2 and shared["connection_setup_ms"] == 0.3
    assert shared["ended_by"] == "kept open" and shared["established_client_peak"] == 10
    assert fresh["ended_by"] == "client TIME_WAIT"
    assert (fresh["time_wait_client_peak"], fresh["time_wait_client_end"]) == (2298, 2298)
    assert fresh["failures"] == 3 and fresh["failures_by_cause"] == {"timeout": 2, "reset": 1}
    assert close["ended_by"] == "server TIME_WAIT" and close["time_wait_server_peak"] == 2310
    assert close["server"] == {"connections_accepted": 2310, "requests": 2310}
    assert close["kernel"]["ActiveOpens"] == 2310
    assert fresh["ports"]["forecast_share"] == pytest.approx(0.1628, abs=1e-4)
    assert shared["workers"] == [] and shared["complete"] is True


def test_findings_text(demo_report: ReportPaths) -> None:
    findings = _summary(demo_report)["findings"]
    assert "shared: 38× the throughput of fresh" in findings
    assert "close left 2,310 TIME_WAIT sockets on the server; fresh left 2,298 on the client" in findings
    assert "at this rate fresh would hold 16% of the ephemeral port range in TIME_WAIT" in findings
    assert "shared reused each connection for 7,315 requests on average" in findings
    assert "shared discarded 2 connections because the pool was full (raise pool_maxsize)" in findings
    assert "shared, close: the server accepted as many connections as the client opened" in findings
    assert ("fresh: the client opened 2,298 connections but the server accepted 2,295 (3 fewer)"
            in findings)
    assert "fresh: 3 failures (2 timeout, 1 reset)" in findings
    assert not any("close would hold" in f for f in findings)  # server TIME_WAIT holds no client ports


def test_tls_close_ended_by_reset(tmp_path: Path) -> None:
    paths = build_report([write_run(tmp_path, "tls", run_doc(**CLOSE_TLS))], tmp_path / "out")
    policy = _summary(paths)["policies"][0]
    assert policy["ended_by"] == "reset" and policy["tls_handshakes"] == 1540
    assert policy["time_wait_client_peak"] == 0 and policy["time_wait_server_peak"] == 0
    findings = _summary(paths)["findings"]
    assert "close-tls: connections ended with a reset (no TIME_WAIT on either side)" in findings
    assert not any("throughput of" in f for f in findings)  # one run: nothing to compare


def test_tls_resumption_findings_state_the_throughput_difference(tmp_path: Path) -> None:
    resume = {**CLOSE_TLS, "policy": "close-resume", "rps": 82.1, "requests": 2463, "connects": 2463,
              "tls": 2463, "resumed": 2461, "accepted": 2463}
    full = {**CLOSE_TLS, "resumed": 0}
    dirs = [write_run(tmp_path / "results", spec["policy"], run_doc(**spec)) for spec in (resume, full)]
    paths = build_report(dirs, tmp_path / "report")
    summary = _summary(paths)
    assert (_policy(summary, "close-resume")["tls_resumed"], _policy(summary, "close-tls")["tls_full"]) == (2461, 1540)
    assert ("close-resume with TLS resumption: 1.6× the throughput of close-tls with full handshakes "
            "(82 vs 51 requests/s)") in summary["findings"]
    assert "close-resume resumed 100% of its TLS handshakes (2,461 of 2,463)" in summary["findings"]
    row = "| close-resume | 2,463 | 1.0 | 2,463 | 0 | 2,461 | 0 | n/a | 0.3 |"  # pool waits: n/a (not counted)
    assert row in paths.markdown.read_text(encoding="utf-8")


def test_a_target_that_resumes_nothing_is_said_so(tmp_path: Path) -> None:
    spec = {**CLOSE_TLS, "resumed": 0}
    doc = run_doc(**spec)
    doc["policy"]["settings"]["tls_resumption"] = True
    paths = build_report([write_run(tmp_path / "results", "close-tls", doc)], tmp_path / "report")
    assert ("close-tls offered TLS sessions but the target resumed none of its 1,540 handshakes "
            "(no session cache or tickets on the server?)") in _summary(paths)["findings"]


def test_remote_target_server_side_not_observable(tmp_path: Path) -> None:
    paths = build_report([write_run(tmp_path, "remote", run_doc(**REMOTE))], tmp_path / "out")
    summary = _summary(paths)
    policy = summary["policies"][0]
    assert policy["server_side_observable"] is False and policy["server"] is None
    assert policy["time_wait_server_peak"] is None and policy["time_wait_server_end"] is None
    assert ("fresh: the target is remote, so server-side TIME_WAIT is not observable "
            "(only the client side is reported)") in summary["findings"]
    assert not any("server accepted" in f for f in summary["findings"])
    assert "not observable" in paths.html.read_text(encoding="utf-8")
    assert "| not observable | not observable |" in paths.markdown.read_text(encoding="utf-8")


def test_html_is_self_contained(demo_report: ReportPaths) -> None:
    page = demo_report.html.read_text(encoding="utf-8")
    assert page.count("<svg") == 3  # rps over time, TIME_WAIT over time, latency bars
    assert "<script" not in page and "kozea" not in page.lower()
    assert "http://" not in page and "https://" not in page  # fixtures put no URL in user text
    assert "<link" not in page and "@import" not in page and "xmlns" not in page
    assert "fresh · client" in page and "close · server" in page
    assert "What TIME_WAIT means" in page and "not a connection count" in page
    assert "INCOMPLETE" not in page


def test_no_credentials_in_outputs(demo_report: ReportPaths) -> None:
    for path in (demo_report.summary, demo_report.markdown, demo_report.html):
        text = path.read_text(encoding="utf-8")
        assert "s3cret-pw" not in text and "hunter2" not in text and "admin:" not in text


def test_markdown_report(demo_report: ReportPaths) -> None:
    text = demo_report.markdown.read_text(encoding="utf-8")
    assert text.startswith("# Connection policy comparison: demo")
    assert "- shared: 38× the throughput of fresh" in text
    assert "| fresh | 2,298 | 3 | 76.6 | 11 | 25 | 41 |" in text
    # TLS resumed and pool waits: n/a, the canned run predates both counters
    assert "| close | 2,310 | 1.0 | 0 | 0 | n/a | 0 | n/a | 0.3 | 2,310 | server TIME_WAIT |" in text
    assert "| close | 0 | 0 | 2,310 | 2,310 | 10 | does not apply | does not apply |" in text
    assert "| fresh | 2,298 | 2,298 | 0 | 0 | 10 | 4,596 | 16% |" in text
    assert "TIME_WAIT is not a connection count" in text


def test_incomplete_flag_marks_report(demo_dirs: list[Path], tmp_path: Path) -> None:
    paths = build_report(demo_dirs, tmp_path / "cut", incomplete=True)
    assert _summary(paths)["incomplete"] is True
    assert "INCOMPLETE REPORT" in paths.html.read_text(encoding="utf-8")
    assert "INCOMPLETE REPORT" in paths.markdown.read_text(encoding="utf-8")
    assert describe(paths).startswith("Report (INCOMPLETE):")


def test_interrupted_run_marks_report(tmp_path: Path) -> None:
    run = validate_run(run_doc(**{**FRESH, "complete": False}))
    summary = build_summary([run])
    assert summary["incomplete"] is True and summary["policies"][0]["complete"] is False
    assert ("fresh: the run did not complete; its figures cover only what was measured before it stopped"
            in summary["findings"])


def test_missing_run_dir_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ResultsError) as raised:
        build_report([tmp_path / "nope"], tmp_path / "out")
    message = str(raised.value)
    assert str(tmp_path / "nope") in message and "no such directory" in message
    assert "run `workload compare` first or pass a directory that contains run.json" in message


def test_dir_without_run_json(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no run.json in this directory"):
        load_run(tmp_path / "empty")


def test_parent_of_run_dirs_names_them(demo_dirs: list[Path]) -> None:
    with pytest.raises(ResultsError) as raised:
        load_run(demo_dirs[0].parent)
    assert "subdirectories hold runs" in str(raised.value) and str(demo_dirs[0].parent / "close") in str(
        raised.value)


def test_corrupt_run_json(tmp_path: Path) -> None:
    directory = tmp_path / "bad"
    directory.mkdir()
    (directory / "run.json").write_text('{"schema": "workload.run/1",\n "complete": tru', encoding="utf-8")
    with pytest.raises(ResultsError, match=r"run\.json:2: ==> .*\n    error: not valid JSON"):
        load_run(directory)


@pytest.mark.parametrize(("change", "key"), [
    ({"schema": "workload.run/0"}, "schema"),
    ({"complete": "yes"}, "complete"),
    ({"policy": {"type": "fresh"}}, "policy.name"),
    ({"stats": {"total": {"requests": 1, "failures": 0}}}, "stats.total.rps"),
    ({"sockets": [1, 2]}, "sockets"),
])
def test_invalid_run_json_names_key(tmp_path: Path, change: dict[str, Any], key: str) -> None:
    directory = write_run(tmp_path, "run", {**run_doc(**SHARED), **change})
    with pytest.raises(ResultsError, match=f"At key: {re.escape(key)}\n"):
        load_run(directory / "run.json")


def test_nan_is_rejected(tmp_path: Path) -> None:
    directory = write_run(tmp_path, "run", run_doc(**SHARED))
    path = directory / "run.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"rps": 2926.0', '"rps": NaN', 1))
    with pytest.raises(ResultsError, match="NaN is not a JSON number"):
        load_run(directory)


def test_text_is_escaped(tmp_path: Path) -> None:
    evil = "<img src=x onerror=alert(1)>|x"
    run = run_doc(**{**SHARED, "policy": evil})
    paths = build_report([write_run(tmp_path, "evil", run), write_run(tmp_path, "fresh", run_doc(**FRESH))],
                         tmp_path / "out")
    page = paths.html.read_text(encoding="utf-8")
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert "<img" not in markdown and "&lt;img src=x onerror=alert(1)&gt;\\|x" in markdown


def test_duplicate_policies_get_run_ids(tmp_path: Path) -> None:
    first, second = run_doc(**SHARED), run_doc(**SHARED)
    second["run_id"] = "second"
    labels = [p["label"] for p in build_summary([validate_run(first), validate_run(second)])["policies"]]
    assert labels == ["shared (20261121-105012-demo-shared)", "shared (second)"]


def test_ended_by_rule() -> None:
    base = {"connections_opened": 1000, "ports": {"forecast_time_wait": 600}, "kernel": {},
            "established_client_peak": 10, "time_wait_client_peak": 0, "time_wait_server_peak": 0}
    assert ended_by({**base, "time_wait_client_peak": 590}) == "client TIME_WAIT"  # capped by forecast
    assert ended_by({**base, "time_wait_server_peak": 400}) == "server TIME_WAIT"
    assert ended_by({**base, "kernel": {"EstabResets": 990, "TCPAbortOnClose": 990}}) == "reset"
    assert ended_by({**base, "connections_opened": 10, "time_wait_client_peak": 10}) == "kept open"
    assert ended_by({**base, "time_wait_server_peak": None}) is None  # nothing explains them
    assert ended_by({**base, "connections_opened": 0}) is None


def test_describe_lists_files_and_findings(demo_report: ReportPaths) -> None:
    text = describe(demo_report)
    assert text.splitlines()[0] == "Report:"
    assert str(demo_report.html) in text and "  - shared: 38× the throughput of fresh" in text


def test_report_package_does_not_import_locust() -> None:
    code = "import sys, workload.report; assert 'locust' not in sys.modules, 'locust imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
