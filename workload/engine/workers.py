"""Iteration workers: the reused greenlets that open-model iterations run on (k6's VUs).

At most `size` iterations run at once.  A start goes to an idle worker if there is one, else to
a new worker while fewer than `size` exist; with `size` busy the caller drops the start
(`full`).  Workers are kept for the whole run instead of one greenlet per iteration: a new
greenlet gets a fresh Python data stack (a 16 KiB mmap, unmapped when it ends), and that
mmap/munmap pair with its page faults cost ~100 µs per start on this machine, half of an idle
loop's cost per iteration (`benchmarks/open_model.py executor`).  Closed-model users keep their
greenlet too, so this is also what makes the two models' CPU per request comparable.

Locust-free; gevent only.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
from gevent.event import Event
from gevent.hub import Waiter

Body = Callable[[float], None]  # one iteration, given its intended start; a raise ends its worker


class Workers:
    """Up to `size` greenlets running `body(due)`, reused from one start to the next."""

    def __init__(self, size: int, body: Body):
        self.size, self.body = size, body
        self.busy = 0
        self.idle: list[Waiter] = []  # a waiting worker's wake-up, most recent last
        self.greenlets: list[gevent.Greenlet] = []
        self.quiet = Event()  # set while no iteration runs
        self.quiet.set()

    def full(self) -> bool:
        return self.busy >= self.size

    def start(self, due: float) -> None:
        """Runs `body(due)` on a worker (the caller checked `full`).  Called from the hub (a loop
        callback), an idle worker runs at once, until it waits; from a greenlet, or on a new
        worker, at the loop's next turn."""
        self.busy += 1
        self.quiet.clear()
        if not self.idle:
            self.greenlets.append(gevent.spawn(self._work, due))
            return
        hub = gevent.get_hub()
        waiter = self.idle.pop()
        if gevent.getcurrent() is hub:
            waiter.switch(due)
        else:
            hub.loop.run_callback(waiter.switch, due)  # a Waiter may only be switched from the hub

    def running(self) -> list[gevent.Greenlet]:
        """The workers in an iteration now (not waiting for one)."""
        waiting = {waiter.greenlet for waiter in self.idle}
        return [g for g in self.greenlets if not g.dead and g not in waiting]

    def wait_quiet(self, timeout: float) -> bool:
        """Waits up to `timeout` s for every running iteration to end; whether they did."""
        return bool(self.quiet.wait(timeout))

    def stop(self, timeout: float = 1.0) -> None:
        """Ends every worker, running or idle (an iteration still running is killed)."""
        self.idle.clear()
        gevent.killall(self.greenlets, block=True, timeout=timeout)

    def _work(self, due: float | None) -> None:
        while due is not None:
            try:
                self.body(due)
            finally:  # a body that raises ends its worker, never the count: a dead worker is not busy
                self.busy -= 1
                if not self.busy:
                    self.quiet.set()
            waiter: Waiter = Waiter()
            self.idle.append(waiter)
            due = waiter.get()
