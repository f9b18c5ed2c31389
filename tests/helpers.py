"""Test helpers: compile a scenario from YAML text and drive its users against the demo target."""

from __future__ import annotations

import random
import textwrap
from dataclasses import dataclass
from typing import Any

import gevent
from locust.env import Environment

from workload import targets
from workload.compiler import WorkloadUser, compile_user
from workload.connstats import STATS
from workload.loader import load_text


@dataclass
class Harness:
    env: Environment
    user_class: type[WorkloadUser]

    def users(self, count: int) -> list[WorkloadUser]:
        return [self.user_class(self.env) for _ in range(count)]

    def failures(self) -> dict[str, int]:
        return {f"{e.method} {e.name}": e.num_failures for e in self.env.stats.entries.values() if e.num_failures}

    def errors(self) -> list[str]:
        return [f"{e.name}: {e.error}" for e in self.env.stats.errors.values()]

    def requests(self) -> int:
        return self.env.stats.total.num_requests


def harness(yaml_text: str, policy: str, demo: Any, file: str = "/tmp/test-scenario.yaml") -> Harness:
    loaded = load_text(textwrap.dedent(yaml_text), file)
    target = targets.resolve(loaded, demo)
    user_class = compile_user(loaded, policy, target)
    env = Environment(user_classes=[user_class])
    env.create_local_runner()  # registers the listener that records requests into env.stats
    STATS.reset()
    return Harness(env, user_class)


def run_tasks(users: list[WorkloadUser], iterations: int, login: bool = True) -> None:
    """Each user logs in, then runs `iterations` tasks; users run concurrently as greenlets."""

    def drive(user: WorkloadUser) -> None:
        if login:
            user.on_start()
        for _ in range(iterations):
            random.choice(user.tasks)(user)  # Locust expands weights into this list

    jobs = [gevent.spawn(drive, u) for u in users]
    gevent.joinall(jobs, timeout=60, raise_error=True)


def accepted(demo: Any) -> int:
    return int(demo.stats()["connections_accepted"])
