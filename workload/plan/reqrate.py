"""Requested rate (reqrate): the requests/s a scenario's load and wait time ask for, before any run.

Locust runs one greenlet per user; each picks a task (an endpoint: one request, a flow: one
request per step), runs it, then waits.  So one user sends about `requests per task` every
`wait + task time` seconds, where task time is `requests per task × expected latency`:

* `constant: c`, `between: [a, b]` (mean wait): users × r / (wait + r × latency)
* `pacing: p` (a task starts every p s, or as soon as the last one ends): users × r / max(p, r × latency)
* `throughput: t` (t tasks/s per user, at most as fast as tasks complete): users × r × min(t, 1 / (r × latency))

The expected latency is a guess (`DEFAULT_EXPECTED_LATENCY_S`, a fast local target), which
makes this an upper-end estimate for forecasts such as TIME_WAIT.  Pure: no locust import.
"""

from __future__ import annotations

from workload.scenario.schema import Arrival, Scenario, Wait

DEFAULT_EXPECTED_LATENCY_S = 0.01


def requests_per_task(scenario: Scenario) -> float:
    """The weighted mean number of requests one task sends."""
    weighted = [(e.weight, 1) for e in scenario.endpoints] + [(f.weight, len(f.steps)) for f in scenario.flows]
    total = sum(weight for weight, _ in weighted)
    return sum(weight * count for weight, count in weighted) / total if total else 0.0


def mean_wait_s(wait: Wait) -> float:
    if wait.between is not None:
        return (wait.between[0] + wait.between[1]) / 2
    return float(wait.constant or 0.0)


def peak_arrival_rate(arrival: Arrival) -> float:
    """The highest iterations/s an open-model load (`load.arrival`) asks for."""
    return arrival.rate if arrival.rate is not None else max(s.rate for s in arrival.stages or ())


def requested_rps(scenario: Scenario, users: int, latency_s: float = DEFAULT_EXPECTED_LATENCY_S) -> float:
    """Requests/s that `users` users of this scenario send (see the module docstring); for an
    open-model scenario, its peak arrival rate times the requests per iteration (users aside)."""
    per_task = requests_per_task(scenario)
    if scenario.load.arrival is not None:
        return peak_arrival_rate(scenario.load.arrival) * per_task
    if per_task == 0 or users <= 0:
        return 0.0
    busy_s = per_task * latency_s  # time one task takes when the target answers in latency_s
    wait = scenario.wait
    if wait.throughput is not None:
        tasks_per_s = min(wait.throughput, 1.0 / busy_s)
    elif wait.pacing is not None:
        tasks_per_s = 1.0 / max(wait.pacing, busy_s)
    else:
        tasks_per_s = 1.0 / (mean_wait_s(wait) + busy_s)
    return users * per_task * tasks_per_s


def describe_load(scenario: Scenario, users: int) -> str:
    """How the load is asked for, in words: users and their wait, or an arrival rate."""
    if scenario.load.arrival is not None:
        return f"arrival rate up to {peak_arrival_rate(scenario.load.arrival):g} iterations/s"
    return f"{users} users, {describe_wait(scenario.wait)}"


def describe_wait(wait: Wait) -> str:
    if wait.throughput is not None:
        return f"throughput {wait.throughput:g} tasks/s per user"
    if wait.pacing is not None:
        return f"pacing {wait.pacing:g} s"
    if wait.between is not None:
        return f"wait between {wait.between[0]:g} and {wait.between[1]:g} s"
    return f"constant wait {wait.constant or 0:g} s"
