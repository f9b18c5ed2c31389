"""Test helpers: compile a scenario from YAML text and drive its users against the demo target."""

from __future__ import annotations

from locust.env import Environment

import dataclasses
import random
import signal
import socket
import subprocess
import textwrap
import time
from dataclasses import dataclass
from typing import Any

import gevent
import requests

from workload.engine.user import WorkloadUser, compile_user
from workload.scenario import targets
from workload.scenario.loader import LoadedScenario, load_text
from workload.scenario.schema import Policy
from workload.telemetry.connections import STATS


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


def harness(yaml_text: str, policy: str, demo: Any, file: str = "/tmp/test-scenario.yaml",
            engine: str | None = None) -> Harness:
    """`engine` runs every policy of the scenario on that engine (as `engine:` in each policy would)."""
    loaded = load_text(textwrap.dedent(yaml_text), file)
    if engine is not None:
        loaded = on_engine(loaded, engine)
    target = targets.resolve(loaded, demo)
    user_class = compile_user(loaded, policy, target)
    env = Environment(user_classes=[user_class])
    env.create_local_runner()  # registers the listener that records requests into env.stats
    STATS.reset()
    return Harness(env, user_class)


def on_engine(loaded: LoadedScenario, engine: str) -> LoadedScenario:
    policies = {name: Policy.model_validate({**p.model_dump(exclude_unset=True), "engine": engine})
                for name, p in loaded.model.policies.items()}
    return dataclasses.replace(loaded, model=loaded.model.model_copy(update={"policies": policies}))


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


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Poll `url` until it answers; fail early if `proc` (the server) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited with {proc.returncode} before {url} came up")
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM (Locust then writes its results), SIGKILL if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def listening_addresses(pid: int, port: int, timeout: float = 40.0) -> list[str]:
    """The local addresses `pid` listens on (TCP, from the kernel via `ss`), once `port` is among them."""
    deadline = time.monotonic() + timeout
    addresses: list[str] = []
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, timeout=10).stdout
        addresses = [line.split()[3] for line in out.splitlines() if f"pid={pid}," in line]
        if any(a.endswith(f":{port}") for a in addresses):
            return addresses
        time.sleep(0.2)
    raise AssertionError(f"pid {pid} never listened on port {port}: {addresses}")
