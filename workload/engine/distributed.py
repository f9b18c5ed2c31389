"""Distributed runs: worker telemetry sent to the master with Locust custom messages.

Locust's own stats already flow from workers to the master; the connection telemetry does
not.  So each *worker* samples its own connection counters (`workload.telemetry.connections.STATS`), its
host's socket table (`SocketSampler`) and kernel counters during a run and sends a report
to the master every `REPORT_INTERVAL_S` and a final one at its test_stop.  The *master*
keeps the latest report per worker for the current run (tagged with the run id, forwarded
to workers in the spawn message's parsed options) and combines them (`workload.telemetry.cluster`)
for the web UI and run.json.

Timing is the delicate part: a headless master fires test_stop while its workers still run,
then sends "quit" and stops listening after a fixed 0.5 s.  The periodic reports mean the
master always has recent figures; on top of that its quit waits (at most `FINAL_WAIT_S`)
until every worker's final report, and the stats report right behind it, have arrived.

Imports locust: loaded only by `workload.main`.
"""

from __future__ import annotations

from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

import gc
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any, cast

import gevent

from workload.engine import clusterjoin, hiccup
from workload.errors import TelemetryError
from workload.telemetry import KernelCounters, SocketSampler, cluster, endpoints_from_urls
from workload.telemetry.connections import STATS
from workload.telemetry.generator import GeneratorHealth
from workload.telemetry.openmodel import METER

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.rpc.protocol import Message

    from workload.engine.controller import RunController
    from workload.engine.recorder import RunRecorder

log = logging.getLogger("workload")
MESSAGE = "workload_telemetry"
RUN_OPTION = "workload_run"  # parsed_options attribute forwarded to workers: tags their reports
REPORT_INTERVAL_S = 2.0
FINAL_WAIT_S = 5.0  # > Locust's 3 s worker stats interval (a stopped worker's last stats report)
POLL_S = 0.05
LOOPBACK = ("127.", "localhost", "::1", "[::1]")


def netns() -> str | None:
    """This process's network namespace: workers sharing one see the same socket table."""
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return None


class WorkerTelemetry:
    """On a worker: measures one run and reports it to the master."""

    def __init__(self, environment: Environment):
        self.env = environment
        self.run_id: str | None = None
        self.requests = 0
        self.seq = 0
        self.sampler: SocketSampler | None = None
        self.kernel: KernelCounters | None = None
        self.error: str | None = None
        self._loop: gevent.Greenlet | None = None
        self.health = GeneratorHealth()  # this worker's own loop lag and CPU: it, not the master, generates
        # The worker's Locust stats are reset every 3 s: count its requests here, per run.
        environment.events.request.add_listener(self._count)

    def _count(self, **_kw: Any) -> None:
        self.requests += 1

    @property
    def runner(self) -> WorkerRunner:
        return cast(WorkerRunner, self.env.runner)  # built only on a worker (see `install`)

    def start(self, run_id: str | None, urls: list[str]) -> None:
        self.stop(send=False)
        self.run_id, self.requests, self.seq, self.error = run_id, 0, 0, None
        STATS.reset()
        local = all((u.split("://")[-1]).startswith(LOOPBACK) for u in urls)
        try:
            self.sampler = SocketSampler(endpoints_from_urls(urls), server_side_observable=local)
            self.sampler.start()
            self.kernel = KernelCounters()
            self.kernel.start()
        except (TelemetryError, OSError) as exc:  # counters still flow; the master shows the error
            self.error = str(exc)
            log.warning("workload: socket telemetry unavailable on this worker: %s", exc)
        self.health = GeneratorHealth()
        hiccup.start(self.health)  # ends by itself when the health stops
        self._loop = gevent.spawn(self._periodic)

    def stop_load(self) -> None:
        """The load stopped (test_stopping): the generator's CPU and lag end here, not after
        Locust's stop, which first blocks the loop in inspect.stack()."""
        self.health.stop()

    def _periodic(self) -> None:
        while True:
            gevent.sleep(REPORT_INTERVAL_S)
            self.send(final=False)

    def stop(self, send: bool = True) -> None:
        """End the run's measurement; with `send`, the final report goes to the master."""
        if self._loop is None:
            return
        self._loop.kill(block=False)
        self._loop = None
        self.health.stop()
        # Users killed mid-request (Locust's stop) keep their connection referenced from the killed
        # greenlet's traceback until a cyclic collection: free them now, so the client closes those
        # sockets before the final sample, as the process exit would close them a moment later.
        gc.collect()
        if send:
            self.send(final=True)
        self.sampler = self.kernel = None

    def report(self, final: bool) -> dict[str, Any]:
        runner = self.runner
        self.seq += 1
        return {
            "run": self.run_id, "worker": runner.client_id, "index": getattr(runner, "worker_index", None),
            "host": socket.gethostname(), "netns": netns(), "pid": os.getpid(), "final": final,
            "seq": self.seq, "sent_at": time.time(), "requests": self.requests,
            "connections": STATS.snapshot(self.requests),
            "sockets": self._sockets(final), "kernel": self._kernel(),
            # open model: counts and HDR histograms, merged by the master; its per-second rows once, at the end
            "arrival": METER.report(time.monotonic(), series=final),
            "generator": self.health.report(),
        }

    def _sockets(self, final: bool) -> dict[str, Any]:
        if self.sampler is None:
            return {"error": self.error} if self.error else {}
        # stop() takes one last sample and returns the whole series: only the final report has it.
        return self.sampler.stop() if final else self.sampler.snapshot()

    def _kernel(self) -> dict[str, int]:
        try:
            return self.kernel.stop() if self.kernel is not None else {}
        except (TelemetryError, OSError):
            return {}

    def send(self, final: bool) -> None:
        try:
            self.runner.send_message(MESSAGE, self.report(final))
        except Exception as exc:  # a lost report must never stop the load
            log.warning("workload: could not send telemetry to the master: %s", exc)


class ClusterTelemetry:
    """On the master: the latest report of every worker for the current run."""

    def __init__(self, environment: Environment):
        self.env = environment
        self.runner = cast(MasterRunner, environment.runner)  # built only on a master (see `install`)
        self.run_id: str | None = None
        self.reports: dict[str, dict[str, Any]] = {}
        self._finals: set[str] = set()
        self._settled: set[str] = set()  # final report, and a stats report after it
        self.runner.register_message(MESSAGE, self._receive)
        environment.events.worker_report.add_listener(self._on_stats)
        self._wait_before_quitting()

    def begin(self, run_id: str) -> None:
        self.run_id = run_id
        self.reports, self._finals, self._settled = {}, set(), set()
        if self.env.parsed_options is not None:
            setattr(self.env.parsed_options, RUN_OPTION, run_id)

    def _receive(self, environment: Environment, msg: Message, **_kw: Any) -> None:
        data, node = msg.data, msg.node_id
        if not isinstance(data, dict) or data.get("run") != self.run_id:
            return  # a report of an earlier run
        previous = self.reports.get(node)
        if previous is not None and (previous.get("final") or previous.get("seq", 0) > data.get("seq", 0)):
            return
        self.reports[node] = data
        if data.get("final"):
            self._finals.add(node)

    def _on_stats(self, client_id: str, data: Any, **_kw: Any) -> None:
        if client_id in self._finals:
            self._settled.add(client_id)

    # -- waiting for the final reports ----------------------------------------------------------
    def _expected(self) -> set[str]:
        connected = {c.id for c in self.runner.clients.all if c.state != STATE_MISSING}
        return connected | set(self.reports)

    def settled(self, expected: set[str]) -> bool:
        # A worker that quit or went missing without a final report will not send one now.
        present = {c.id for c in self.runner.clients.all if c.state != STATE_MISSING}
        gone = expected - present - self._finals
        return expected - gone <= self._settled

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait until every worker's final report has arrived, at most `timeout` seconds (default:
        FINAL_WAIT_S plus --stop-timeout, which workers may spend finishing their users' tasks)."""
        if self.run_id is None:
            return True
        if timeout is None:
            timeout = FINAL_WAIT_S + float(self.env.stop_timeout or 0)
        expected, deadline = self._expected(), time.monotonic() + timeout
        while not self.settled(expected):
            if time.monotonic() > deadline:
                missing = sorted(expected - self._settled)
                log.warning("workload: no final telemetry from %s; using their last periodic report", missing)
                return False
            gevent.sleep(POLL_S)
        return True

    def _wait_before_quitting(self) -> None:
        """Make the runner's quit wait for the final reports before it stops listening.

        Locust's MasterRunner.quit sends "quit", sleeps 0.5 s, then kills its greenlets (the
        message listener among them); the wait goes in just before that kill."""
        runner, original_quit = self.runner, self.runner.quit

        def quit_after_reports() -> None:
            group = runner.greenlet
            kill = group.kill

            def kill_when_settled(*args: Any, **kwargs: Any) -> Any:
                self.wait_settled()
                return kill(*args, **kwargs)

            group.kill = kill_when_settled  # type: ignore[method-assign]  # deliberate: this group only
            try:
                original_quit()
            finally:
                group.__dict__.pop("kill", None)

        runner.quit = quit_after_reports  # type: ignore[method-assign]  # deliberate: this runner only

    # -- combined figures -------------------------------------------------------------------------
    def workers_running(self) -> bool:
        return any(c.state in (STATE_RUNNING, STATE_SPAWNING) for c in self.runner.clients.all)

    def worker_entries(self) -> list[dict[str, Any]]:
        return cluster.worker_entries(self.reports.values())

    def merge_into(self, run: dict[str, Any]) -> dict[str, Any]:
        return cluster.merge_into(run, list(self.reports.values()))

    def live(self, figures: dict[str, Any]) -> dict[str, Any]:
        reports = list(self.reports.values())
        if not reports:
            return figures
        requests = self.env.stats.total.num_requests
        health = cluster.merge_generator(reports)
        return {**figures, "connections": cluster.merge_connections(reports, requests),
                "sockets": cluster.merge_sockets(reports), "workers": cluster.worker_entries(reports),
                **({"generator": health} if health is not None else {})}


def install(environment: Environment, controller: RunController) -> None:
    """Wire worker reporting or master collection into this process (nothing when local)."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _install_worker(environment, controller)
    elif isinstance(runner, MasterRunner):
        _install_master(environment, controller)


def _install_worker(environment: Environment, controller: RunController) -> None:
    clusterjoin.install_worker(environment)  # proves it holds the master's cluster key, or leaves
    telemetry = WorkerTelemetry(environment)

    def on_test_start(**_kw: Any) -> None:
        current = controller.current
        urls = current.target.urls() if current is not None else []
        telemetry.start(getattr(environment.parsed_options, RUN_OPTION, None), urls)

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stopping.add_listener(lambda **_kw: telemetry.stop_load())
    environment.events.test_stop.add_listener(lambda **_kw: telemetry.stop())


def _install_master(environment: Environment, controller: RunController) -> None:
    clusterjoin.install_master(environment)
    collector = ClusterTelemetry(environment)
    controller.cluster = collector

    def on_test_start(**_kw: Any) -> None:
        if controller.recorder is not None:
            collector.begin(controller.recorder.out_dir.name)

    def on_test_stop(**_kw: Any) -> None:
        if collector.workers_running():
            return  # headless quit: workers stop after this; run.json is written at quitting
        recorder = controller.recorder
        # Stopped from the web UI: the workers have stopped; wait for their last reports, then write.
        gevent.spawn(_finish_when_settled, collector, controller, recorder)

    environment.events.test_start.add_listener(on_test_start)
    environment.events.test_stop.add_listener(on_test_stop)


def _finish_when_settled(collector: ClusterTelemetry, controller: RunController, recorder: RunRecorder | None) -> None:
    collector.wait_settled()
    if controller.recorder is recorder:  # not already replaced by the next run
        controller.finish(complete=True)
