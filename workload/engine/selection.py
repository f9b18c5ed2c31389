"""Activation: the scenario and policy chosen for the next run, compiled into a user class.

Chosen from the command line, `WORKLOAD_*` variables or `locust.conf` (headless), from the
web UI's fields when a run is started there, or from the master's forwarded scenario on a
worker.  The embedded demo target is started here when the scenario asks for it (once per
process, reused across runs, stopped at exit), unless `WORKLOAD_DEMO_TARGET` names one
that is already running.

Imports locust (through the compiler): loaded only by `workload.main`.
"""

from __future__ import annotations

import atexit
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workload.demo.launcher import DEMO_ENV_VAR, DemoTarget, start_demo_target
from workload.engine import arrival, clusterkey
from workload.engine.user import compile_user
from workload.scenario import targets
from workload.scenario.arrival_override import overridden
from workload.scenario.loader import LoadedScenario, load_document, load_scenario
from workload.scenario.source import Source

if TYPE_CHECKING:
    from locust import HttpUser

BUNDLE_OPTION = "workload_bundle"  # parsed_options attribute forwarded to workers in spawn messages
_DEMO: list[DemoTarget] = []
_DEMO_OWNER: list[int] = []  # pid that started it: forked --processes workers inherit _DEMO


@dataclass(frozen=True)
class Activation:
    loaded: LoadedScenario
    policy: str
    target: targets.ResolvedTarget
    user_class: type[HttpUser]
    demo: DemoTarget | None

    @property
    def policy_model(self) -> Any:
        return self.loaded.model.policies[self.policy]

    def bundle(self) -> str:
        """What a worker needs to compile the same class without the scenario file: it carries
        the scenario's secrets, so it is sealed when a cluster key is set (`workload.engine.clusterkey`)."""
        return clusterkey.seal(json.dumps({
            "path": self.loaded.path, "document": self.loaded.document, "raw": self.loaded.raw,
            "credentials": list(self.loaded.credentials), "policy": self.policy,
            "target": _target_dict(self.target)}))


def _target_dict(target: targets.ResolvedTarget) -> dict[str, Any]:
    return {"default_host": target.default_host, "hosts": target.hosts, "headers": target.headers,
            "verify": target.verify, "cert": target.cert, "demo": target.demo}


def activate(scenario_path: str, policy: str | None, host_override: str | None = None,
             arrival: str | None = None) -> Activation:
    """`arrival`: the `--arrival` option, replacing the scenario's load (`workload.scenario.arrival_override`)."""
    loaded = overridden(load_scenario(scenario_path), arrival)
    clusterkey.check(loaded)  # a master beyond loopback: secrets need the cluster key
    chosen = loaded.check_policy(policy) if policy else loaded.default_policy()
    demo = demo_target() if targets.needs_demo(loaded, host_override) else None
    target = targets.resolve(loaded, demo, host_override)
    return Activation(loaded, chosen, target, compile_for_load(loaded, chosen, target), demo)


def activate_bundle(text: str) -> Activation:
    """A worker's activation from the master's bundle (already validated on the master); a
    sealed bundle needs the master's cluster key (`ClusterKeyError` otherwise)."""
    data = json.loads(clusterkey.open_bundle(text))
    document = data["document"]
    loaded = load_document(Source(data["path"], document))
    # `raw` (the document before ${ENV} substitution) names unnamed requests' stats rows, so the
    # workers' rows carry the same secret-free names as a local run's.
    loaded = LoadedScenario(loaded.path, loaded.model, tuple(data["credentials"]), document, raw=data.get("raw"))
    t = data["target"]
    cert = tuple(t["cert"]) if isinstance(t["cert"], list) else t["cert"]
    target = targets.ResolvedTarget(t["default_host"], t["hosts"], t["headers"], t["verify"], cert, t["demo"])
    return Activation(loaded, data["policy"], target, compile_for_load(loaded, data["policy"], target), None)


def compile_for_load(loaded: LoadedScenario, policy: str, target: targets.ResolvedTarget) -> type[HttpUser]:
    """The class Locust runs: the compiled user, or for an open-model scenario (`load.arrival`)
    the driver that starts its iterations on a clock (`workload.engine.arrival`)."""
    user_class = compile_user(loaded, policy, target)
    load = loaded.model.load
    # The driver is a plain User, not an HttpUser: typed as the class it stands in for.
    return arrival.driver_class(user_class, load) if load.arrival is not None else user_class  # type: ignore[return-value]


def demo_target() -> DemoTarget:
    """The running demo target: the one named by WORKLOAD_DEMO_TARGET, or one we start."""
    if not _DEMO:
        shared = os.environ.get(DEMO_ENV_VAR)
        if shared:
            _DEMO.append(DemoTarget.from_env(shared))
        else:
            _DEMO.append(start_demo_target())
            _DEMO_OWNER[:] = [os.getpid()]
            atexit.register(stop_demo)
            os.environ[DEMO_ENV_VAR] = _DEMO[0].to_env()  # children (e.g. --processes) reuse it
    return _DEMO[0]


def stop_demo() -> None:
    while _DEMO:
        demo = _DEMO.pop()
        started_here = os.getpid() in _DEMO_OWNER
        if getattr(demo, "_process", None) is not None and started_here:  # only what this process started
            demo.stop()
            os.environ.pop(DEMO_ENV_VAR, None)


def scenario_files(base: Path | None = None) -> list[str]:
    """Shipped scenarios, for the web UI's choices."""
    root = base or Path("scenarios")
    return sorted(str(p) for p in root.glob("*.yaml"))
