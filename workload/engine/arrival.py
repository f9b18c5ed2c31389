"""Open-model executor: iterations started on a clock (`load.arrival`), not by waiting users.

One `ArrivalDriver` (a Locust user) runs per generator process.  It walks this process's share
of the schedule (`workload.plan.arrivals`) and at each intended start hands one iteration (one
endpoint pick or one flow: a task of the compiled `WorkloadUser` class, so requests, checks,
captures, policies and their counters are exactly a closed run's) to one of `max_in_flight`
reused greenlets (`workload.engine.workers`), whether or not earlier iterations have finished.
When all of them are busy the iteration is dropped and counted, never delayed; a start later
than `LATE_TOLERANCE_S` is counted late, with its lag.  Iterations borrow a logged-in identity
(an instance of the compiled user class, logged in on first use) from `Identities`.

Each iteration's response time counts from its intended start, its service time is the sum of
its requests' Locust response times (from the actual send); both go to `ArrivalMeter`
(`workload.telemetry.openmodel`).  At the run's end (Locust's test_stopping) iterations still
running get `DRAIN_GRACE_S`, then count as unfinished at their elapsed time.

`workload.engine.arrival_shape` (master or local runner) keeps one driver per process for the
schedule's length and then ends the run, headless or in the web UI; each worker takes 1/n of
the schedule.

Imports locust: loaded only by `workload.main` (through `workload.engine.selection`).
"""

from __future__ import annotations

from locust import User, constant, task
from locust.exception import StopUser

import logging
import random
import time
import traceback
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from workload.engine.identities import Identities
from workload.engine.workers import Workers
from workload.plan.arrivals import intended_starts, run_seconds
from workload.scenario.schema import Arrival, Load
from workload.telemetry.openmodel import METER, section

if TYPE_CHECKING:
    from locust.env import Environment

    from greenlet import greenlet

log = logging.getLogger("workload")
LATE_TOLERANCE_S = 0.010  # a start this much after its intended time is late (a gevent timer's jitter is less)
DRAIN_GRACE_S = 3.0  # iterations running when the schedule ends get this long (a master waits 5 s for reports)
MAX_BURST = 32  # overdue starts made back to back before the running iterations get a loop turn
SPLIT_OPTION = "workload_arrival_workers"  # parsed_options attribute: generator processes sharing the rate
_ACTIVE: dict[greenlet, Iteration] = {}  # iteration greenlet -> its measurement (request events find it here)


class Iteration:
    __slots__ = ("due", "sent", "sending", "service", "requests", "failed", "recorded")

    def __init__(self, due: float):
        self.due = due  # intended start, monotonic seconds
        self.sent = due  # when its identity was ready and its first request could go (monotonic)
        self.sending = False  # identity ready: from here, requests count as service time
        self.service = 0.0
        self.requests = 0
        self.failed = False
        self.recorded = False


class ArrivalRun:
    """One process's share of one open-model run."""

    def __init__(self, environment: Environment, user_class: type[User], arrival: Arrival, duration: str | float):
        self.env, self.arrival, self.meter = environment, arrival, METER
        index, count = share(environment)
        self.starts = intended_starts(arrival, duration, index, count)
        self.duration_s = run_seconds(arrival, duration)
        self.workers = Workers(arrival.max_in_flight, self._iteration)
        self.identities = Identities(user_class, environment, arrival.identity_count, self.meter)
        self.tasks = list(getattr(user_class, "tasks", []))
        self.t0 = 0.0
        self.stopped = False
        self.stop_at: float | None = None  # monotonic: the run's end (its recorder's), not our drain's
        self.awake_at = 0.0  # monotonic: the scheduler's last start
        self.pending: float | None = None  # the next intended start (offset); None once all are made
        self._timer: Any = None  # the loop timer of the next start (gevent's watchers are untyped)
        self.scheduled = Event()  # every start made, or the run stopped
        self._drainer: gevent.Greenlet | None = None

    def run(self) -> None:
        """Arms the schedule on the gevent loop and waits until it has made every start (or the
        run stopped).  Each start is made by a loop timer's callback, in the hub, which switches
        straight into an idle worker.  A driver greenlet sleeping until each start would add two
        greenlet switches and a sleep per start (~45 µs at 300/s here): the open path would then
        cost more per request than a closed user."""
        self.t0 = time.monotonic()
        self.meter.begin(self.t0)
        self.pending = next(self.starts, None)  # not started yet: `drain` counts it as missed if the run stops first
        self._arm(0.0)
        self.scheduled.wait()

    def _arm(self, delay: float) -> None:
        if self.pending is None or self.stopped:
            self.scheduled.set()
            return
        self._timer = gevent.get_hub().loop.timer(max(delay, 0.0))
        self._timer.start(self._fire, update=True)  # from the real time now, not the loop's cached time

    def _fire(self) -> None:
        """Loop callback: makes every start now due, back to back (one start per loop turn could
        never catch up after a stall: every turn also resumes the running iterations), but after
        `MAX_BURST` of them the iterations get a loop turn first; then arms the next start."""
        try:
            burst = 0
            while self.pending is not None and not self.stopped and burst < MAX_BURST:
                due = self.t0 + self.pending
                if due > time.monotonic():
                    break  # woken early (libev's epoll rounds to whole ms): wait for the rest
                self.pending = next(self.starts, None)
                self._start(due)  # switches into the iteration until it waits for the network
                burst += 1
        except Exception:  # a bug, not the target's: stop the schedule loudly, the run reports what it did
            log.exception("workload: the arrival scheduler failed; no further iterations start")
            self.pending = None
        self._arm(self.t0 + self.pending - time.monotonic() if self.pending is not None else 0.0)

    def _start(self, due: float) -> None:
        self.awake_at = now = time.monotonic()
        lag = now - due
        self.meter.scheduled(lag)
        if self.workers.full():
            self.meter.dropped()  # never queued: a queue would hide the target's stall
        else:
            self.meter.started(late=lag > LATE_TOLERANCE_S)
            self.workers.start(due)

    def _count_missed(self) -> None:
        """Intended starts already due when the run stopped, that the scheduler never reached
        (counted here, not by the driver: Locust may kill it before it wakes again)."""
        now = (self.stop_at or time.monotonic()) - self.t0
        missed = 0
        offset = self.pending
        while offset is not None and offset <= now:
            missed += 1
            offset = next(self.starts, None)
        self.meter.add("missed", missed)
        self.meter.add("scheduled", missed)

    def _iteration(self, due: float) -> None:
        ctx = Iteration(due)
        me = gevent.getcurrent()
        _ACTIVE[me] = ctx
        user = None
        ctx.sent = time.monotonic()
        try:
            user = self.identities.borrow()
            ctx.sending, ctx.sent = True, time.monotonic()
            random.choice(self.tasks)(user)
        except StopUser:
            ctx.failed = True  # the identity's setup (a run-time template) failed: reported by it
        except (Exception, gevent.Timeout) as exc:  # a task's own error (a Timeout is no Exception): counted
            ctx.failed = True
            self.env.events.user_error.fire(user_instance=user, exception=exc, tb=exc.__traceback__)
            log.debug("workload: iteration failed: %s", traceback.format_exc())
        finally:
            _ACTIVE.pop(me, None)
            if user is not None:
                self.identities.give_back(user)
            self._record(ctx)

    def _record(self, ctx: Iteration, unfinished: bool = False) -> None:
        if ctx.recorded:
            return
        ctx.recorded = True
        end = time.monotonic()
        # Unfinished: its last request is still out, so its service time runs until now.
        service = ctx.service if ctx.requests and not unfinished else end - ctx.sent
        self.meter.finished(end - ctx.due, service, ctx.failed or unfinished, unfinished)

    def drain(self, stop_at: float | None, grace: float = DRAIN_GRACE_S) -> None:
        """The run stopped at `stop_at` (monotonic): no more starts; running iterations get
        `grace` seconds, then count as unfinished (at their elapsed time) and are stopped.

        Without `stop_at` (a worker: the master's recorder timed the run), the run ended at the
        scheduler's last start: a worker's stop() first blocks its loop for a while (Locust
        inspects the stack), and starts due in that time belong to no run.

        The waiting happens in a greenlet of its own that every caller joins: two stops can
        overlap (the shape's end and the run clock), and Locust kills the shape's greenlet, which
        must not cut the drain short."""
        if self._drainer is None:
            stop_at = stop_at or max(self.awake_at, self.t0)
            self.stopped, self.stop_at = True, stop_at
            if self._timer is not None:
                self._timer.stop()
            self.scheduled.set()
            if self.t0:
                self.meter.span_s = min(max(stop_at - self.t0, 0.0), self.duration_s)
                self._count_missed()
            self._drainer = gevent.spawn(self._finish_iterations, grace)
        self._drainer.join()

    def _finish_iterations(self, grace: float) -> None:
        self.workers.wait_quiet(grace)
        for greenlet in self.workers.running():
            ctx = _ACTIVE.get(greenlet)
            if ctx is not None:
                self._record(ctx, unfinished=True)
        self.workers.stop(timeout=1.0)


def on_request(response_time: float = 0.0, exception: BaseException | None = None, **_kw: Any) -> None:
    """Locust's request event: a request of an iteration adds to its service time."""
    ctx = _ACTIVE.get(gevent.getcurrent())
    if ctx is None or not ctx.sending:
        return
    ctx.service += float(response_time or 0) / 1000
    ctx.requests += 1
    if exception is not None:
        ctx.failed = True


def share(environment: Environment) -> tuple[int, int]:
    """(this process's index, how many processes share the schedule)."""
    runner = environment.runner
    count = int(getattr(environment.parsed_options, SPLIT_OPTION, 0) or 0) if environment.parsed_options else 0
    if type(runner).__name__ != "WorkerRunner" or count < 1:
        return 0, 1
    return int(getattr(runner, "worker_index", 0) or 0) % count, count


_RUNS: list[ArrivalRun] = []  # this process's current run (at most one)


class ArrivalDriver(User):
    """Base of compiled open-model drivers: runs this process's schedule, once per run."""

    abstract = True
    wait_time = constant(0)
    identity_class: type[User]
    arrival: Arrival
    duration: str | float

    @task
    def drive(self) -> None:
        if not _RUNS:  # else a second driver in this process (the web UI's users field): it idles
            run = ArrivalRun(self.environment, self.identity_class, self.arrival, self.duration)
            _RUNS[:] = [run]
            run.run()
        while True:  # until Locust stops this user (the run's end drains the iterations first)
            gevent.sleep(1.0)


def driver_class(identity_class: type[User], load: Load) -> type[User]:
    """The Locust user class of an open-model scenario (named after its identity class, so a
    master and its workers agree)."""
    assert load.arrival is not None
    attrs = {"abstract": False, "identity_class": identity_class, "arrival": load.arrival,
             "duration": load.duration, "__module__": __name__}
    return type(f"{identity_class.__name__}_open", (ArrivalDriver,), attrs)


def install(environment: Environment) -> None:
    """Listeners of every process: service times from requests, a fresh meter per run, the drain."""
    environment.events.request.add_listener(on_request)
    environment.events.test_start.add_listener(_new_run)
    environment.events.test_stopping.add_listener(lambda **_kw: drain(environment))


def _new_run(**_kw: Any) -> None:
    METER.reset()
    _RUNS.clear()


def drain(environment: Environment) -> None:
    recorder = getattr(getattr(environment, "workload", None), "recorder", None)
    stop_at = getattr(recorder, "stopped_monotonic", None)
    for run in _RUNS:
        run.drain(stop_at)  # a second stop joins the first one's drain


def plan_figures(load: Load) -> dict[str, Any]:
    """The planned open-model load, as run.json's `load` and `arrival` sections show it."""
    arrival = load.arrival
    assert arrival is not None
    stages = [s.model_dump(mode="json", exclude_none=True) for s in arrival.stages] if arrival.stages else None
    return {"rate": arrival.rate, "stages": stages, "poisson": arrival.poisson, "seed": arrival.seed,
            "max_in_flight": arrival.max_in_flight, "identities_max": arrival.identity_count,
            "late_tolerance_ms": LATE_TOLERANCE_S * 1000, "drain_grace_s": DRAIN_GRACE_S,
            "planned_s": run_seconds(arrival, load.duration)}


def arrival_section(load: Load, reports: list[dict[str, Any]], duration_s: float) -> dict[str, Any] | None:
    if load.arrival is None:
        return None
    return section(reports, plan_figures(load), duration_s)
