"""Queueing behaviours of the demo target: a one-at-a-time server and a one-off stall.

Two routes let tests check an open-model load generator against queueing theory and against
coordinated omission:

* ``GET /serial?ms=S`` is an **M/D/1 server**: one request at a time holds a lock for a
  fixed service time of S ms (default 20); concurrent requests wait for the lock in arrival
  order (gevent's semaphore wakes waiters FIFO), so they queue instead of being rejected
  (the listener's connection pool is unbounded).
* ``GET /stalling?after_ms=A&for_ms=F&ms=S`` **stalls once**: the first request arms a
  window [t0 + A, t0 + A + F) (t0 = that first request); every request handled inside it
  is held until the window ends, like a target paused by a GC or a failover.  Outside the
  window it answers after S ms (default 0).  ``POST /__stall/reset`` on the admin listener
  (and ``/__stats/reset``) disarms it, so the next request arms a new window.

Both sleep cooperatively, so other routes keep being served while they wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gevent
import gevent.lock
from flask import Flask, Response, jsonify, request

DEFAULT_SERVICE_MS = 20
DEFAULT_STALL_MS = 2000
MAX_QUEUE_MS = 30_000


def _ms_arg(name: str, default: int) -> int:
    return max(0, min(request.args.get(name, default=default, type=int), MAX_QUEUE_MS))


@dataclass
class StallWindow:
    """The one-off stall: unarmed until the first /stalling request fixes its start."""

    start: float | None = None
    end: float = 0.0

    def arm_once(self, now: float, after_s: float, for_s: float) -> None:
        if self.start is None:
            self.start, self.end = now + after_s, now + after_s + for_s

    def hold_for(self, now: float) -> float:
        """Seconds a request handled at `now` must wait (0 outside the window)."""
        if self.start is None or not self.start <= now < self.end:
            return 0.0
        return self.end - now

    def reset(self) -> None:
        self.start, self.end = None, 0.0


@dataclass
class QueueState:
    """The serial server's lock and the stall window of one demo-target process."""

    # A gevent semaphore (not threading.Lock): the demo serves greenlets, and its waiters
    # are woken in FIFO order, which is the queue discipline M/D/1 assumes.
    serial: gevent.lock.Semaphore = field(default_factory=gevent.lock.Semaphore)
    stall: StallWindow = field(default_factory=StallWindow)
    served: int = 0


def register_queue_routes(app: Flask, queue: QueueState) -> None:
    """Adds /serial and /stalling to the public application."""

    @app.get("/serial")
    def serial() -> Response:
        service_s = _ms_arg("ms", DEFAULT_SERVICE_MS) / 1000.0
        waited = time.monotonic()
        with queue.serial:
            started = time.monotonic()
            gevent.sleep(service_s)
            queue.served += 1
            held = time.monotonic() - started  # the real service time: sleeps overshoot
        return jsonify(queued_ms=round((started - waited) * 1000, 3), service_ms=service_s * 1000,
                       held_ms=round(held * 1000, 3))

    @app.get("/stalling")
    def stalling() -> Response:
        now = time.monotonic()
        queue.stall.arm_once(now, _ms_arg("after_ms", 0) / 1000.0, _ms_arg("for_ms", DEFAULT_STALL_MS) / 1000.0)
        held = queue.stall.hold_for(now)
        gevent.sleep(held + _ms_arg("ms", 0) / 1000.0)
        return jsonify(held_ms=round(held * 1000, 3))


def register_queue_admin(app: Flask, queue: QueueState) -> None:
    """Adds the stall's reset to the admin application."""

    @app.post("/__stall/reset")
    def reset_stall() -> Response:
        queue.stall.reset()
        return jsonify(stall="disarmed")
