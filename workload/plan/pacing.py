"""Target request rate: `load: {rps: N}` paces every user so that all of them together send N/s.

Locust runs a *closed* model: a user sends its next request only after the previous one
returned.  The nearest it gets to an open model (requests arriving at a fixed rate whatever
the latency) is pacing each user like `constant_throughput(N / users)`, counting the
requests of one task run (a flow's steps) so that N is requests, not task runs.  Limits:

* a user never has more than one request in flight, so N is only reached while
  ``users >= N x latency`` (Little's law); slower responses lower the rate instead of
  queueing arrivals (coordinated omission) — give enough users;
* the per-user rate is fixed from the planned user count (the peak of the stages, `-u`, the
  web UI's users, else `load.users`): while a shape runs fewer users, the rate is lower.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from workload.plan.reqrate import requests_per_task
from workload.scenario.schema import Scenario

if TYPE_CHECKING:  # types only: the plan stays importable without locust
    from locust import User
    from locust.env import Environment


def planned_users(environment: Environment, fallback: int) -> int:
    """The user count the rate is spread over (see the module docstring)."""
    shape = getattr(environment, "shape_class", None)
    peak = getattr(shape, "peak_users", None)
    if peak:
        return int(peak)
    options = getattr(environment, "parsed_options", None)
    return int(getattr(options, "num_users", None) or fallback)


def target_rate_wait(rps: float, per_iteration: float, fallback_users: int) -> Callable[[User], float]:
    """A Locust `wait_time` pacing each user to its share of `rps` requests per second."""

    paced_at: weakref.WeakKeyDictionary[User, float] = weakref.WeakKeyDictionary()  # a stopped user goes

    def wait_time(user: User) -> float:
        interval = planned_users(user.environment, fallback_users) * per_iteration / rps
        now = time.perf_counter()
        # Like constant_pacing: the interval counts from the previous task's start, so the task's
        # own duration is subtracted; a task slower than the interval leaves no wait at all.
        last = paced_at.get(user)
        busy = max(0.0, now - last) if last is not None else 0.0
        wait = max(0.0, interval - busy)
        paced_at[user] = now + wait
        return wait

    return wait_time


def rate_wait_time(model: Scenario) -> Callable[[User], float] | None:
    """The wait time for `load.rps`, or None when the scenario sets no target rate."""
    load = model.load
    if load.rps is None:
        return None
    peaks = [s.spike.users if s.spike else s.users or 0 for s in load.stages or []]
    return target_rate_wait(load.rps, requests_per_task(model), max(peaks, default=load.users))
