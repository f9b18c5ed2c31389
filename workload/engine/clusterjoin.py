"""Joining a cluster: a worker proves it holds the master's cluster key when it connects.

Without this, a worker with a missing or wrong `WORKLOAD_CLUSTER_KEY` would count as ready
and fail only when the first run's sealed scenario reaches it.  So, right after its `init`,
a worker says hello; the master answers with a probe, sealed when it has a key; a worker
that cannot open it (no key, another key) or that has a key and gets it unsealed says why,
tells the master (which logs it) and leaves the cluster, exit code 2.
The spawn-time check (`leave_cluster` from the locustfile) remains for a hello that raced
the master's own start.  A master still waiting for workers forgets one that left before its
`quit` arrives (`forget_waiting_worker`): Locust would otherwise end a headless master that has
lost its last worker, and workers connecting later would never be taken in.

Works through the runner objects it is given (no locust import).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import gevent

from workload.engine import clusterkey
from workload.errors import WorkloadError

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc.protocol import Message
    from locust.runners import Runner

log = logging.getLogger("workload")
HELLO, PROBE, LEFT = "workload_hello", "workload_key_probe", "workload_worker_left"
PROBE_TEXT = "workload cluster key probe"
STATE_WAITING = "ready"  # locust.runners.STATE_INIT: a master before its first run (checked by a test)


def install_master(environment: Environment) -> None:
    runner = _runner(environment)

    def on_hello(environment: Environment, msg: Message, **_kw: Any) -> None:
        # Sealed when this master has a key, plain otherwise: the worker checks both ways.
        runner.send_message(PROBE, clusterkey.seal(PROBE_TEXT), client_id=msg.node_id)

    def on_left(environment: Environment, msg: Message, **_kw: Any) -> None:
        # A peer's words: bounded, so a rogue one cannot flood the master's log.
        log.warning("workload: worker %.100s left the cluster: %.1000s", msg.node_id, msg.data)
        forget_waiting_worker(runner, msg.node_id)

    runner.register_message(HELLO, on_hello)
    runner.register_message(LEFT, on_left)


def forget_waiting_worker(runner: Runner, node_id: str) -> None:
    """Drop a worker that left before any run, ahead of the `quit` it sends next.

    Locust's master handles a worker's `quit` by stopping the test when no worker is left and,
    when headless, by quitting itself, which kills its message listener while `main` still waits
    for `--expect-workers`: every worker connecting after that is never taken in ("0 of 2
    connected").  A worker this master has forgotten has its `quit` ignored.  During a run the
    worker stays known, so Locust rebalances or stops the run as usual.
    """
    clients = getattr(runner, "clients", None)
    if clients is not None and runner.state == STATE_WAITING and node_id in clients:
        del clients[node_id]


def install_worker(environment: Environment) -> None:
    runner = _runner(environment)

    def on_probe(environment: Environment, msg: Message, **_kw: Any) -> None:
        try:
            if clusterkey.open_bundle(str(msg.data)) != PROBE_TEXT:
                raise clusterkey.ClusterKeyError("the master's key probe did not open to the expected text",
                                                 "use the same workload version on the master and the workers")
        except clusterkey.ClusterKeyError as exc:
            leave_cluster(environment, exc)

    runner.register_message(PROBE, on_probe)
    runner.send_message(HELLO, None)


def leave_cluster(environment: Environment, exc: WorkloadError) -> None:
    """A worker that cannot run the master's scenario (e.g. without the cluster key) says why,
    tells the master, leaves the cluster (Locust's quit) and exits with the error's code."""
    print(f"workload: {exc}", file=sys.stderr, flush=True)
    environment.process_exit_code = exc.exit_code
    runner = _runner(environment)
    try:
        runner.send_message(LEFT, str(exc))
    except Exception as send_error:  # the master may be gone already; leaving matters more
        log.debug("could not tell the master: %s", send_error)
    gevent.spawn(runner.quit)  # not from this greenlet: quit kills the runner's greenlets


def _runner(environment: Environment) -> Runner:
    """The environment's runner: Locust creates it before the init event these hooks run from."""
    runner = environment.runner
    assert runner is not None, "workload's cluster hooks run once Locust has made its runner"
    return runner
