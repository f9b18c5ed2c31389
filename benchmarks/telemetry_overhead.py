"""Benchmark: connection telemetry on vs off, in one run (target: throughput ratio >= 0.98).

"On" is what every run does: urllib3 connection classes that count and time each connect,
the pool-discard log filter, and the kernel socket-table sampler at 1 sample/s (in its child
process by default; ``--mode thread`` samples on an OS thread in this process, as before).
"Off" swaps in urllib3's stock connection pools and runs no sampler.  Rounds alternate on/off
so machine drift hits both; figures are medians.  Run for `shared` (keep-alive) and `close`
(one connect per request, the counters' worst case).

    python benchmarks/telemetry_overhead.py [--seconds 3] [--rounds 5] [--mode process|thread]

Traffic goes only to the embedded demo target on 127.0.0.1; every loop is bounded.
"""

import locust  # noqa: F401  (first: it monkey-patches)
from locust.env import Environment

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout, not an installed copy
from urllib3.poolmanager import pool_classes_by_scheme as STOCK_POOLS

from workload.demo.launcher import DemoTarget, start_demo_target
from workload.engine.recorder import target_endpoints
from workload.engine.user import compile_user
from workload.scenario import targets
from workload.scenario.loader import load_text
from workload.telemetry import SocketSampler
from workload.telemetry.connections import COUNTING_POOL_CLASSES

SCENARIO = """
name: telemetry-bench
target: demo
endpoints: [{name: status, path: /status/200}]
policies: {shared: {}, close: {}}
"""


def make_user(demo: DemoTarget, policy: str) -> tuple[Any, Any, list[str]]:
    loaded = load_text(SCENARIO, "bench.yaml")
    target = targets.resolve(loaded, demo)
    cls = compile_user(loaded, policy, target)
    env = Environment(user_classes=[cls])
    env.create_local_runner()
    user = cls(env)
    return user, user.tasks[0], target.urls()


def set_counting(user: Any, on: bool) -> None:
    for adapter in user.client.adapters.values():
        adapter.poolmanager.clear()  # new pools pick up the classes
        adapter.poolmanager.pool_classes_by_scheme = COUNTING_POOL_CLASSES if on else STOCK_POOLS


def measure(user: Any, step: Any, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        step(user)
        count += 1
    return count / (time.perf_counter() - start)


def one_round(user: Any, step: Any, urls: list[str], seconds: float, on: bool, mode: str) -> float:
    set_counting(user, on)
    sampler = SocketSampler(target_endpoints(urls), mode=mode) if on else None
    if sampler is not None:
        sampler.start()
    try:
        return measure(user, step, seconds)
    finally:
        if sampler is not None:
            sampler.stop()


def ratio_for(demo: DemoTarget, policy: str, seconds: float, rounds: int, mode: str) -> tuple[float, float, float]:
    user, step, urls = make_user(demo, policy)
    measure(user, step, 0.5)  # warm-up
    on_rates, off_rates = [], []
    for index in range(rounds):
        # Alternate which mode goes first: TIME_WAIT piles up during a close run, and the
        # later mode of a round would otherwise always face the fuller socket table.
        for on in ((False, True) if index % 2 == 0 else (True, False)):
            (on_rates if on else off_rates).append(one_round(user, step, urls, seconds, on=on, mode=mode))
    assert user.environment.stats.total.num_failures == 0, "requests failed: figures meaningless"
    on, off = statistics.median(on_rates), statistics.median(off_rates)
    return on / off, on, off


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per round and mode")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=("process", "thread"), default="process", help="where the sampler runs")
    args = parser.parse_args()
    with start_demo_target() as demo:
        for policy in ("shared", "close"):
            ratio, on, off = ratio_for(demo, policy, args.seconds, args.rounds, args.mode)
            verdict = "met" if ratio >= 0.98 else "NOT met"
            print(f"{policy:6} ({args.mode}): telemetry on {on:,.0f} req/s, off {off:,.0f} req/s, ratio {ratio:.3f}"
                  f"  [target >= 0.98: {verdict}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
