"""Run controller: one Locust process's runs, from activation to the written results.

It owns the current `Activation` (scenario + policy → user class), applies the scenario's
load defaults where the command line left them unset, times each run (`workload.engine.runclock`),
records it with a `RunRecorder` into a folder created fresh at its start, and writes it when
the run stops or the process quits.  A headless run stopped by anything but its run time or
its shape was interrupted: it is written incomplete, after its users have stopped.
"""

from __future__ import annotations

from locust.html import get_html_report
from locust.runners import MasterRunner, Runner, WorkerRunner

import gc
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import gevent

from workload import scrub
from workload.engine import arrival, arrival_shape, hiccup, selection, shapes
from workload.engine.recorder import RunInfo, RunRecorder, new_run_id
from workload.engine.runclock import RunClock, refresh_loop_clock
from workload.errors import ResultsError, WorkloadError
from workload.results import gate, paths
from workload.scenario import targets
from workload.scenario.timespan import seconds
from workload.telemetry import openmodel

if TYPE_CHECKING:
    from locust.env import Environment

    from workload.engine.distributed import ClusterTelemetry

log = logging.getLogger("workload")
HISTORY_INTERVAL_S = 1.0
STOP_WAIT_S = 10.0  # an interrupted run's users get this long (plus --stop-timeout) to stop


class RunController:
    def __init__(self, environment: Environment, current: selection.Activation | None):
        self.env = environment
        self.current = current
        self.recorder: RunRecorder | None = None
        self.results: list[Path] = []
        self._ticker: gevent.Greenlet | None = None
        self.cluster: ClusterTelemetry | None = None  # a master's workers' telemetry
        scrub.install(environment)  # console, worker reports; logging is set up by now (before `init`)
        self.interrupted = False  # the process quit while a run was going: that run is incomplete
        self.run_time: float | None = None  # a headless run's -t, timed here (take_over_run_time)
        self.clock = RunClock(environment)  # stops a run when its time is up

    @property
    def options(self) -> Any:
        return self.env.parsed_options

    @property
    def runner(self) -> Runner:
        return cast(Runner, self.env.runner)  # Locust makes it before the init event that builds this

    @property
    def is_worker(self) -> bool:
        return isinstance(self.env.runner, WorkerRunner)

    # -- choosing what runs -------------------------------------------------------------------
    def activate(self, scenario: str, policy: str | None, host: str | None = None) -> None:
        arrival_option = getattr(self.options, "arrival", None) if self.options is not None else None
        self.current = selection.activate(scenario, policy, host, arrival_option)
        self._install(self.current)
        refresh_loop_clock()  # the web UI arms its run-time timer right after this

    def _install(self, current: selection.Activation) -> None:
        if self.env.host and targets.is_demo(self.env.host):
            # `--host demo`: Locust hands env.host to every user as its base URL, so the word
            # itself would be requested ("Invalid URL 'demo/login'"); it means the demo's address.
            self.env.host = current.target.default_host
        self.env.user_classes[:] = [current.user_class]
        # locust annotates this dict's values as User instances; it holds the classes
        self.env.available_user_classes = {
            current.user_class.__name__: current.user_class}  # type: ignore[dict-item]
        # our own attribute on Locust's Environment (read back by the web UI's host check)
        self.env.workload_auto_host = current.target.default_host  # type: ignore[attr-defined]
        if self.options is not None:
            setattr(self.options, selection.BUNDLE_OPTION, current.bundle())
        if not self.is_worker:  # a master's or local runner's shape drives the load; workers follow
            shapes.install(self.env, current.loaded.model.load)
            arrival_shape.install_shape(self.env, current.loaded.model.load)  # open model: one driver per process

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
            opts.run_time = seconds(load.duration)  # not int(): a 2.5s run lasts 2.5 s (timed here)

    def take_over_run_time(self) -> None:
        """A headless run's -t is timed from its first moment (test_start) by this controller,
        not by Locust: Locust arms its timer before the runner has started (0.3 s early on a
        busy machine), and a timer on gevent's cached loop clock fires early after blocking work."""
        opts = self.options
        if opts is None or self.is_worker or not opts.headless or not opts.run_time:
            return
        self.run_time, opts.run_time = float(opts.run_time), None
        log.info("workload: run time limit set to %g seconds, counted from the start of the run", self.run_time)

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
            bundle = getattr(self.options, selection.BUNDLE_OPTION, None)
            if bundle:
                self.current = selection.activate_bundle(bundle)
                self._install(self.current)
            settle_memory()
            return
        settle_memory()
        assert self.current is not None
        if self.recorder is not None and self.recorder.finished is None:
            self.finish(complete=True)  # a master's previous web-UI run, if not yet written
        self.interrupted = False
        self.recorder = RunRecorder(self._run_info(), self._out_dir())
        self.recorder.start()
        hiccup.start(self.recorder.generator)  # ends by itself when the run stops
        if self.env.shape_class is not None:  # its stages count from here, not from before our set-up
            self.env.shape_class.reset_time()
        self._ticker = gevent.spawn(self._tick)
        self.clock.arm(self.recorder, self.run_time)

    def _run_info(self) -> RunInfo:
        current = self.current
        assert current is not None
        policy = current.policy_model
        demo = current.demo
        opts = self.options
        extra = shapes.run_figures(self.env) or self._arrival_figures()  # stages or arrival plan
        return RunInfo(
            scenario=current.loaded.name, scenario_path=current.loaded.path,
            policy=current.policy, policy_type=policy.type,
            policy_settings=policy.model_dump(exclude={"description"}, mode="json"),
            urls=[_without_userinfo(u) for u in [self.env.host or u for u in current.target.urls()][:1]
                  + current.target.urls()[1:]],
            local_target=_is_local(current.target.urls()),
            load={"users": opts.num_users, "spawn_rate": opts.spawn_rate,
                  "duration_s": self.run_time or opts.run_time},
            server_stats=demo.stats if demo is not None else None,
            extra=extra,
            requested_s=_requested_s(extra, self.run_time or opts.run_time),
            sections=self._arrival_section if current.loaded.model.load.arrival is not None else None,
            agent=current.loaded.model.target.agent,
        )

    def _arrival_figures(self) -> dict[str, Any]:
        assert self.current is not None
        load = self.current.loaded.model.load
        if load.arrival is None:
            return {}
        plan = arrival.plan_figures(load)
        # -t (or the web UI's run time) shorter than the schedule ends it early, as it would a closed run
        limit = self.run_time or self.options.run_time
        planned = min(plan["planned_s"], float(limit)) if limit else plan["planned_s"]
        return {"load": {"users": None, "spawn_rate": None, "duration_s": planned, "model": "open",
                         "arrival": plan}}

    def _arrival_section(self, duration_s: float, now: float | None = None) -> dict[str, Any]:
        """run.json's `arrival`: this process's meter, or on a master its workers' (merged);
        with `now`, the figures so far of a run still going."""
        assert self.current is not None
        load = self.current.loaded.model.load
        if self.cluster is not None:
            reports = [r.get("arrival") for r in self.cluster.reports.values()]
        elif now is not None:  # the web UI's live figures: straight from the meter
            figures = openmodel.live_section(arrival.METER, arrival.plan_figures(load), duration_s, now)
            return {"arrival": figures} if figures is not None else {}
        else:
            reports = [arrival.METER.report(now)]
        figures = arrival.arrival_section(load, [r for r in reports if r], duration_s)
        return {"arrival": figures} if figures is not None else {}

    def _out_dir(self) -> Path:
        """A fresh folder for this run: never an earlier run's (a `-2` suffix if the id is taken)."""
        assert self.current is not None
        run_id = getattr(self.options, "run_id", None) or new_run_id(self.current.loaded.name, self.current.policy)
        try:
            return paths.fresh_dir(results_dir(self.options), run_id)
        except ResultsError as exc:  # checked at start-up; lost since: keep the run somewhere
            fallback = paths.fallback_dir(run_id)
            log.error("workload: %s; this run's results go to %s", exc, fallback)
            return fallback

    def _tick(self) -> None:
        while self.recorder is not None and self.recorder.finished is None:
            gevent.sleep(HISTORY_INTERVAL_S)
            if self.recorder is not None and self.recorder.finished is None:
                self.recorder.tick(self.env.stats, self.runner.user_count, self._open_progress())

    def _open_progress(self) -> tuple[float, int] | None:
        """(offered iterations/s so far, iterations in flight) of an open-model run, from this
        process's meter or, on a master, its workers' latest reports; None for a closed run."""
        if self.recorder is None or self.recorder.info.sections is None:
            return None
        found = [r.get("arrival") for r in self.cluster.reports.values()] if self.cluster is not None \
            else [arrival.METER.progress(time.monotonic())]
        reports: list[dict[str, Any]] = [r for r in found if isinstance(r, dict)]
        offered = sum(int(r.get("scheduled", 0) or 0) / max(float(r.get("span_s") or 0), 1.0) for r in reports)
        return round(offered, 1), sum(int(r.get("in_flight", 0) or 0) for r in reports)

    def live(self) -> dict[str, Any] | None:
        if self.recorder is None:
            return None
        figures = {**self.recorder.live(self.env.stats), "generator": self.recorder.generator.summary()}
        if self.cluster is not None:
            figures = self.cluster.live(figures)  # the workers' health replaces the master's
        if self.recorder.info.sections is not None:  # the open model's figures so far
            live = self._arrival_section(self.recorder.elapsed(), now=time.monotonic()).get("arrival")
            if live is not None:
                live.pop("histograms", None)
                live.pop("series", None)
                figures = {**figures, "arrival": live}
        return {"policy": self.recorder.info.policy, **figures}

    def on_test_stopping(self) -> None:
        """The load ends here (users then finish their current task): the run's duration.  A
        headless run may only be ended by its run time or its shape; anything else (a signal,
        the process quitting, every worker gone) interrupted it."""
        recorder = self.recorder
        if self.is_worker or recorder is None or recorder.stopped:
            return
        recorder.mark_stopped()
        runner = self.runner
        by_shape = runner.shape_greenlet is not None and runner.shape_greenlet is gevent.getcurrent()
        if getattr(self.options, "headless", False) and not (self.clock.timed_out or by_shape):
            self.interrupted = True

    def on_test_stop(self) -> None:
        gc.unfreeze()  # what the run's start froze can be collected again (a web UI runs many runs)
        if self.is_worker or self.recorder is None:
            return
        self.clock.disarm()
        self.recorder.mark_stopped()  # in case test_stopping did not fire
        self.recorder.mark_drained()
        if isinstance(self.env.runner, MasterRunner):
            return  # a master's final figures arrive after test_stop: written at quitting
        self.finish(complete=True)

    def quit(self) -> None:
        """The process is quitting.  A run still going was interrupted: its users stop first
        (before the demo target does, so they record no refused connections), then it is
        written, marked incomplete."""
        recorder = self.recorder
        if self.is_worker or recorder is None or recorder.finished is not None:
            return
        if not recorder.stopped:
            self.interrupted = True
            self._stop_users()
        self.finish(complete=not self.interrupted)

    def _stop_users(self) -> None:
        runner = self.runner
        try:
            with gevent.Timeout(STOP_WAIT_S + float(self.env.stop_timeout or 0)):
                runner.quit()  # a master also waits here for its workers' last reports
        except (Exception, gevent.Timeout) as exc:  # writing what was measured matters more
            log.warning("workload: the users did not stop cleanly: %r", exc)

    def finish(self, complete: bool) -> Path | None:
        recorder = self.recorder
        if recorder is None or recorder.finished is not None:
            return None
        workers = self.cluster.worker_entries() if self.cluster is not None else None
        merge = self.cluster.merge_into if self.cluster is not None else None  # per-host sockets, summed counters
        run = recorder.finish(self.env.stats, complete and not self.interrupted, workers=workers, merge=merge)
        assert self.current is not None
        recorder.finished, results = gate.judged(self.current.loaded.model, run)  # thresholds, before the one write
        out = recorder.write(self.env.stats, html=_html(self.env))
        gate.after_run(self.env, recorder.finished, results, out)  # junit.xml, summary.md, exit 3/4/5
        scrub.scrub_run(out, self.options)  # report.html, CSVs, junit.xml...; again at exit
        self.results.append(out)
        log.info("workload: results written to %s", out)
        return out



def results_dir(options: Any) -> Path:
    return Path(getattr(options, "results_dir", None) or "results")


def check_results_dir(options: Any) -> None:
    """Before any traffic: the results folder exists (or can be made) and takes new files,
    and `--run-id` names a folder inside it."""
    base = paths.writable_dir(results_dir(options), "--results-dir")
    if getattr(options, "run_id", None):
        paths.inside(base, options.run_id)


def _requested_s(extra: dict[str, Any], run_time: Any) -> float | None:
    """What the run was asked to last: a shape's planned length, else -t / the UI's run time."""
    planned = (extra.get("load") or {}).get("duration_s")
    if planned:
        return float(planned)
    return float(run_time) if run_time else None


def _html(environment: Environment) -> str | None:
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


def settle_memory() -> None:
    """Before the load: collect, then freeze what is alive (modules, Locust, the compiled
    scenario) out of the garbage collector's reach.  Otherwise the first full collection of the
    run scans all of it with the loop stopped: 70-90 ms here, 3 s into every run, which made
    ~30 starts of an open-model run late and put a spike in the loop lag of every run.  Later
    full collections scan only the run's own objects.  `on_test_stop` unfreezes them: frozen
    objects in reference cycles are never collected, and a web UI process runs many runs."""
    gc.collect()
    gc.freeze()
