"""Requested rate: requests/s from users, wait kind and requests per task (no run needed)."""

from __future__ import annotations

import pytest

from workload.plan.reqrate import describe_wait, requested_rps, requests_per_task
from workload.scenario.loader import load_text
from workload.scenario.schema import Scenario

TASKS = ("target: demo\nendpoints: [{path: /a, weight: 3}]\n"
         "flows: [{name: f, steps: [{path: /b}, {path: /c}, {path: /d}]}]\n")


def scenario(wait: str, tasks: str = TASKS) -> Scenario:
    return load_text(f"{tasks}wait: {wait}\n", "s.yaml").model


def test_requests_per_task_weighs_flows_by_their_steps():
    assert requests_per_task(scenario("{constant: 0}")) == pytest.approx((3 * 1 + 1 * 3) / 4)


@pytest.mark.parametrize(("wait", "rps"), [
    ("{constant: 0.09}", 10 / (0.09 + 0.01)),       # users / (wait + latency)
    ("{between: [0.05, 0.15]}", 10 / (0.1 + 0.01)),  # the mean wait
    ("{pacing: 2}", 10 / 2),                          # one task every 2 s
    ("{pacing: 0.001}", 10 / 0.01),                   # pacing cannot beat the task's own time
    ("{throughput: 3}", 10 * 3),                      # users x throughput
])
def test_requested_rps_per_wait_kind(wait, rps):
    one_request_per_task = "target: demo\nendpoints: [{path: /a}]\n"
    assert requested_rps(scenario(wait, one_request_per_task), users=10) == pytest.approx(rps)


def test_no_users_or_no_weight_means_no_rate():
    assert requested_rps(scenario("{constant: 0}"), users=0) == 0
    # Weight 0 sends nothing: a 3-step flow of weight 0 does not raise the requests per task.
    zero_flow = "target: demo\nendpoints: [{path: /}]\nflows: [{name: f, weight: 0, steps: [{path: /a}, {path: /b}]}]\n"
    assert requests_per_task(scenario("{constant: 0}", zero_flow)) == 1.0


def test_describe_wait():
    assert describe_wait(scenario("{between: [0.5, 1.5]}").wait) == "wait between 0.5 and 1.5 s"
    assert describe_wait(scenario("{throughput: 2}").wait) == "throughput 2 tasks/s per user"
