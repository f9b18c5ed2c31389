"""The report's coordinated-omission finding: an open-model run next to a closed one."""

from __future__ import annotations

from tests.factories import make_run
from workload.report.summary import build_summary

OPEN = {"rate": 100, "offered_rate": 100.0, "achieved_rate": 100.0, "scheduled": 1000, "started": 1000,
        "response_time_ms": {"count": 1000, "mean": 212.0, "p50": 3.0, "p90": 1010.0, "p99": 1950.0},
        "service_time_ms": {"count": 1000, "mean": 200.0, "p50": 3.0, "p90": 990.0, "p99": 1940.0}}


def test_an_open_run_far_above_a_closed_one_says_coordinated_omission() -> None:
    summary = build_summary([make_run(arrival=OPEN, policy__name="open"),
                             make_run(policy__name="closed", stats__total__avg_ms=21.0, stats__total__p95_ms=4)])
    rows = {p["label"]: p for p in summary["policies"]}
    assert rows["open"]["model"] == "open" and rows["closed"]["model"] == "closed"
    assert rows["open"]["response_p90_ms"] == 1010.0 and rows["closed"]["response_mean_ms"] is None
    (found,) = [f for f in summary["findings"] if "coordinated omission" in f]
    assert found == ("open (open model): response time from the intended start mean 212 ms, p90 1,010 ms, "
                     "10× the mean of closed (closed model: mean 21 ms, p95 4.0 ms): closed users stop sending "
                     "while the target is slow, so their latency leaves the wait out (coordinated omission); "
                     "the open figures are the honest ones")


def test_no_finding_when_the_models_agree_or_only_one_model_ran() -> None:
    agree = build_summary([make_run(arrival=OPEN, policy__name="open"),
                           make_run(policy__name="closed", stats__total__avg_ms=150.0)])
    alone = build_summary([make_run(arrival=OPEN, policy__name="open")])
    assert not [f for s in (agree, alone) for f in s["findings"] if "coordinated omission" in f]
