"""Run controller: one Locust process's runs, from activation to the written results.

It owns the current `Activation` (scenario + policy → user class), applies the scenario's
load defaults where the command line left them unset, records each run with a
`RunRecorder`, and writes `results/<run-id>/` when the run stops or the process quits,
including when it was interrupted.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust.html import get_html_report
from locust.runners import MasterRunner, WorkerRunner

from workload import activation, gate, scrub, shapes
from workload.errors import WorkloadError
from workload.recorder import RunInfo, RunRecorder, new_run_id
from workload.timespan import seconds

log = logging.getLogger("workload")
HISTORY_INTERVAL_S = 1.0


class RunController:
    def __init__(self, environment: Any, current: activation.Activation | None):
        self.env = environment
        self.current = current
        self.recorder: RunRecorder | None = None
        self.results: list[Path] = []
        self._ticker: gevent.Greenlet | None = None
        self.cluster: Any = None  # a master's workers' telemetry (workload.distributed.ClusterTelemetry)
        scrub.install(environment)  # console, worker reports; logging is set up by now (before `init`)

    @property
    def options(self) -> Any:
        return self.env.parsed_options

    @property
    def is_worker(self) -> bool:
        return isinstance(self.env.runner, WorkerRunner)

    # -- choosing what runs -------------------------------------------------------------------
    def activate(self, scenario: str, policy: str | None, host: str | None = None) -> None:
        self.current = activation.activate(scenario, policy, host)
        self._install(self.current)

    def _install(self, current: activation.Activation) -> None:
        self.env.user_classes[:] = [current.user_class]
        self.env.available_user_classes = {current.user_class.__name__: current.user_class}
        self.env.workload_auto_host = current.target.default_host
        if self.options is not None:
            setattr(self.options, activation.BUNDLE_OPTION, current.bundle())
        if not self.is_worker:  # a master's or local runner's shape drives the load; workers follow
            shapes.install(self.env, current.loaded.model.load)

    def apply_load_defaults(self) -> None:
        """The scenario's `load:` fills -u/-r/-t where the command line did not set them."""
        assert self.current is not None
        load, opts = self.current.loaded.model.load, self.options
        shape = self.env.shape_class
        if opts.num_users is None:
            opts.num_users = getattr(shape, "peak_users", None) or load.users
        if opts.spawn_rate is None:
            opts.spawn_rate = load.spawn_rate
        if not opts.run_time and opts.headless and shape is None:  # a shape ends the run by itself
            opts.run_time = int(seconds(load.duration))

    def swarm(self, scenario: str, policy: str, host: str | None) -> str | None:
        """Web UI start: compile the chosen scenario/policy; an error message or None."""
        try:
            chosen_host = host if host and host != getattr(self.env, "workload_auto_host", None) else None
            self.activate(scenario or self.options.scenario, policy or None, chosen_host)
        except WorkloadError as exc:
            return str(exc)
        return None

    # -- recording ----------------------------------------------------------------------------
    def on_test_start(self) -> None:
        if self.is_worker:
            bundle = getattr(self.options, activation.BUNDLE_OPTION, None)
            if bundle:
                self.current = activation.activate_bundle(bundle)
                self._install(self.current)
            return
        assert self.current is not None
        if self.recorder is not None and self.recorder.finished is None:
            self.finish(complete=True)  # a master's previous web-UI run, if not yet written
        self.recorder = RunRecorder(self._run_info(), self._out_dir())
        self.recorder.start()
        self._ticker = gevent.spawn(self._tick)

    def _run_info(self) -> RunInfo:
        current = self.current
        assert current is not None
        policy = current.policy_model
        demo = current.demo
        opts = self.options
        return RunInfo(
            scenario=current.loaded.name, scenario_path=current.loaded.path,
            policy=current.policy, policy_type=policy.type,
            policy_settings=policy.model_dump(exclude={"description"}, mode="json"),
            urls=[_without_userinfo(u) for u in [self.env.host or u for u in current.target.urls()][:1]
                  + current.target.urls()[1:]],
            local_target=_is_local(current.target.urls()),
            load={"users": opts.num_users, "spawn_rate": opts.spawn_rate, "duration_s": opts.run_time},
            server_stats=demo.stats if demo is not None else None,
            extra=shapes.run_figures(self.env),  # a shape run: its stages, planned and measured
        )

    def _out_dir(self) -> Path:
        assert self.current is not None
        base = Path(getattr(self.options, "results_dir", None) or "results")
        run_id = getattr(self.options, "run_id", None) or new_run_id(self.current.loaded.name, self.current.policy)
        return base / run_id

    def _tick(self) -> None:
        while self.recorder is not None and self.recorder.finished is None:
            gevent.sleep(HISTORY_INTERVAL_S)
            if self.recorder is not None and self.recorder.finished is None:
                self.recorder.tick(self.env.stats, self.env.runner.user_count)

    def live(self) -> dict[str, Any] | None:
        if self.recorder is None:
            return None
        figures = self.recorder.live(self.env.stats)
        if self.cluster is not None:
            figures = self.cluster.live(figures)
        return {"policy": self.recorder.info.policy, **figures}

    def on_test_stop(self) -> None:
        if self.is_worker or isinstance(self.env.runner, MasterRunner):
            return  # a master's final figures arrive after test_stop: written at quitting
        self.finish(complete=True)

    def finish(self, complete: bool) -> Path | None:
        recorder = self.recorder
        if recorder is None or recorder.finished is not None:
            return None
        if not complete and self._ran_full_time(recorder):
            complete = True
        workers = self.cluster.worker_entries() if self.cluster is not None else None
        recorder.finish(self.env.stats, complete, workers=workers)
        if self.cluster is not None and recorder.finished is not None:
            self.cluster.merge_into(recorder.finished)  # per-host sockets, summed counters
        out = recorder.write(self.env.stats, html=_html(self.env))
        assert self.current is not None and recorder.finished is not None
        gate.after_run(self.env, self.current.loaded.model, recorder.finished, out)  # thresholds, exit 3
        scrub.scrub_run(out, self.options)  # report.html, CSVs, junit.xml...; again at exit
        self.results.append(out)
        log.info("workload: results written to %s", out)
        return out

    def _ran_full_time(self, recorder: RunRecorder) -> bool:
        run_time = self.options.run_time if self.options is not None else None
        return bool(run_time) and time.time() - recorder.started_at >= 0.95 * float(run_time)


def _html(environment: Any) -> str | None:
    try:
        return get_html_report(environment)
    except Exception as exc:  # Locust's report is a convenience; run.json is the record
        log.warning("could not render Locust's HTML report: %s", exc)
        return None


def _without_userinfo(url: str) -> str:
    """Results must never carry credentials, including `user:password@` in a URL."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    return parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc).geturl()


def _is_local(urls: list[str]) -> bool:
    local = ("127.", "localhost", "::1", "[::1]")
    return all((urlsplit(u).hostname or "").startswith(local) for u in urls)
