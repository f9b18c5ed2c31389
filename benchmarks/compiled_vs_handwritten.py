"""Benchmark: a compiled scenario user vs a hand-written Locust HttpUser, in one run.

Both make the same request (GET /status/200 on the embedded demo target, keep-alive, one
user, no wait) in alternating rounds so drift on a busy machine hits both alike; the
figure is the median throughput ratio compiled / hand-written (target >= 0.97).  A
second figure: the `close` policy over HTTPS with the policy's shared SSL context vs
per-connection contexts (what requests/urllib3 do by default), twice: with `verify: false`,
where urllib3 loads the system's default CA store into every new context (expect >= 10x), and
with `verify:` the demo's one-certificate CA file, where a new context costs little (the
README's "when it hardly matters" figure).

    python benchmarks/compiled_vs_handwritten.py [--requests 2000] [--rounds 7]

Traffic goes only to the demo target on 127.0.0.1; every loop is bounded.
"""

import locust  # noqa: F401  (first: it monkey-patches)
from locust import HttpUser, constant, task
from locust.env import Environment

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from workload.demo.launcher import DemoTarget, start_demo_target
from workload.engine.user import compile_user
from workload.scenario import targets
from workload.scenario.loader import load_text

SCENARIO = """
name: bench
target: {host: "%s", verify: %s}
endpoints:
  - {name: status, path: /status/200}
policies:
  shared: {}
  close: {}
  close-untuned: {type: close, ssl_context: per_connection}
"""


def compiled_user(demo: DemoTarget, host: str, policy: str, verify: str = "false") -> Any:
    loaded = load_text(SCENARIO % (host, verify), "bench.yaml")
    cls = compile_user(loaded, policy, targets.resolve(loaded, demo))
    env = Environment(user_classes=[cls])
    env.create_local_runner()
    user = cls(env)
    return user, user.tasks[0]


def handwritten_user(demo: DemoTarget) -> Any:
    class HandWritten(HttpUser):
        host = demo.http_url
        wait_time = constant(0)

        @task
        def status(self) -> None:
            self.client.get("/status/200", name="status", timeout=(5.0, 30.0))

    env = Environment(user_classes=[HandWritten])
    env.create_local_runner()
    user = HandWritten(env)
    return user, HandWritten.status


def rate(user: Any, step: Callable[[Any], None], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        step(user)
    return count / (time.perf_counter() - start)


def failures(user: Any) -> int:
    return user.environment.stats.total.num_failures


def overhead_ratio(demo: DemoTarget, count: int, rounds: int) -> tuple[float, float, float]:
    compiled, compiled_step = compiled_user(demo, "demo", "shared")
    hand, hand_step = handwritten_user(demo)
    rate(compiled, compiled_step, 200)  # warm up both: connections, code paths
    rate(hand, hand_step, 200)
    ratios, compiled_rates, hand_rates = [], [], []
    for _ in range(rounds):
        hand_rates.append(rate(hand, hand_step, count))
        compiled_rates.append(rate(compiled, compiled_step, count))
        ratios.append(compiled_rates[-1] / hand_rates[-1])
    assert failures(compiled) == failures(hand) == 0, "requests failed: the figures would be meaningless"
    return statistics.median(ratios), statistics.median(compiled_rates), statistics.median(hand_rates)


def ssl_context_ratio(demo: DemoTarget, count: int, verify: str = "false") -> tuple[float, float]:
    tuned, tuned_step = compiled_user(demo, "https://demo", "close", verify)
    untuned, untuned_step = compiled_user(demo, "https://demo", "close-untuned", verify)
    shared_rate = rate(tuned, tuned_step, count)
    per_connection_rate = rate(untuned, untuned_step, max(20, count // 10))
    assert failures(tuned) == failures(untuned) == 0
    return shared_rate, per_connection_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and user kind")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with start_demo_target() as demo:
        ratio, compiled, hand = overhead_ratio(demo, args.requests, args.rounds)
        print(f"compiled scenario user: {compiled:,.0f} req/s; hand-written HttpUser: {hand:,.0f} req/s")
        print(f"throughput ratio compiled / hand-written (median of {args.rounds} rounds): {ratio:.3f}"
              f"  [target >= 0.97: {'met' if ratio >= 0.97 else 'NOT met'}]")
        shared, per_conn = ssl_context_ratio(demo, max(200, args.requests // 4))
        print(f"close over HTTPS, default CA store: shared SSL context {shared:,.0f} req/s; per-connection "
              f"contexts {per_conn:,.0f} req/s; ratio {shared / per_conn:.1f}x  [expect >= 10x]")
        shared, per_conn = ssl_context_ratio(demo, max(200, args.requests // 4), f'"{demo.ca_path}"')
        print(f"close over HTTPS, one-certificate private CA: shared SSL context {shared:,.0f} req/s; "
              f"per-connection contexts {per_conn:,.0f} req/s; ratio {shared / per_conn:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
