"""Run clock: a run stops when its requested time is up, counted from the run's first moment.

Locust arms `-t` with `gevent.spawn_later` before its runner has even started, against
libev's cached loop time, which is stale by however long the blocking start-up work took:
a 3 s run lasted 2.3 s, and under CPU load a run stopped after 0.3 s.  So a headless run's
`-t` is taken over by the controller and timed here from the recorder's start, on the
monotonic clock; a web UI run's own timer is replaced the same way, and a headless shape
run stops at its planned end (the shape itself ticks only once a second).
"""

from __future__ import annotations

from locust.runners import STATE_INIT, STATE_RUNNING, STATE_SPAWNING

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.runners import Runner
    from locust.shape import LoadTestShape

    from workload.engine.recorder import RunRecorder

log = logging.getLogger("workload")
MAX_SLEEP_S = 1.0  # the deadline is re-checked at least this often
# Locust's runner states in which a run is still going: its stop() is not
# idempotent while a stop is under way, so the timer must not start a second one.
RUNNING_STATES = frozenset({STATE_INIT, STATE_SPAWNING, STATE_RUNNING})


def refresh_loop_clock() -> None:
    """Bring gevent's cached loop time up to date after blocking work, so that timers armed
    next (Locust's, the web UI's) count from now, not from before that work."""
    gevent.get_hub().loop.update_now()


class RunClock:
    """The timer of the current run (at most one)."""

    def __init__(self, environment: Environment):
        self.env = environment
        self.timed_out = False  # the run time ended the run (not a signal, not a user)
        self._timer: gevent.Greenlet | None = None

    def arm(self, recorder: RunRecorder, run_time: float | None) -> None:
        """Stop the run `run_time` seconds (or a web UI run's, or a headless shape's planned
        length) after `recorder.elapsed()` began."""
        self.disarm()
        self.timed_out = False
        shape, runner, options = self.env.shape_class, self.env.runner, self.env.parsed_options
        assert runner is not None and options is not None  # armed when a run starts, from the command line
        stop: Callable[[], object] = runner.quit
        web_ui = self.env.web_ui
        timer = getattr(web_ui, "_run_time_greenlet", None)
        if web_ui is not None and timer is not None:
            timer.kill(block=False)  # armed before the start: replaced
            web_ui._run_time_greenlet = None
            run_time, stop = options.run_time, runner.stop
        planned = recorder.info.requested_s if shape is not None and options.headless else None
        if planned:
            run_time = min(float(run_time or planned), planned)
        if not run_time:
            return

        def on_time() -> None:
            if runner.state not in RUNNING_STATES:
                return  # already stopping: a shape's own end, a signal (a second stop() races the first)
            self.timed_out = True
            recorder.mark_stopped()  # now: Locust's stop() first spends ~0.2 s in inspect.stack()
            if shape is not None:
                _last_tick(shape)
                if options.headless and _end_shape(runner):
                    return
            stop()

        self._timer = gevent.spawn(_stop_after, recorder.elapsed, float(run_time), on_time)

    def disarm(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not gevent.getcurrent():
            timer.kill(block=False)


def _end_shape(runner: Runner) -> bool:
    """End a headless shape run by ending its shape greenlet: Locust's main waits on that greenlet
    and then stops the run, once.  A stop() from here would kill the greenlet, wake main, and
    main's stop() would race ours (users stopped twice, test_stop fired twice)."""
    greenlet = getattr(runner, "shape_greenlet", None)
    if greenlet is None or greenlet.dead:
        return False
    greenlet.kill(block=False)
    return True


def _last_tick(shape: LoadTestShape) -> None:
    """The shape's last tick: its last stage is measured up to this moment."""
    try:
        shape.tick()
    except Exception as exc:  # the stage figures are a detail; stopping on time is not
        log.warning("workload: the shape's last tick failed: %r", exc)


def _stop_after(elapsed: Callable[[], float], run_time: float, stop: Callable[[], object]) -> None:
    """Sleep until `elapsed()` reaches `run_time`, re-checking the monotonic clock (a gevent
    sleep may end early on a stale loop clock), then stop the run."""
    while (left := run_time - elapsed()) > 0:
        gevent.sleep(min(left, MAX_SLEEP_S))
    log.info("workload: run time of %g s reached, stopping", run_time)
    stop()
