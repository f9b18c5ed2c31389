"""Queueing behaviours of the demo target: a one-at-a-time server and a one-off stall.

Two routes let tests check an open-model load generator against queueing theory and against
coordinated omission:

* ``GET /serial?ms=S`` is an **M/D/1 server**: one request at a time is served for a fixed
  service time of S ms (default 20); concurrent requests queue in arrival order instead of
  being rejected (the listener's connection pool is unbounded).  The queue runs on a virtual
  clock: a request arriving at t starts at max(t, the previous one's end) and ends exactly S
  later, and its greenlet sleeps until then.  A lock held for a slept S would make every
  service S plus the wake-up's lateness (the demo's own loop lag, large on a busy machine),
  and near saturation (utilisation 0.8) a service 10% longer doubles the queue, so the
  server, not the load generator, would be measured.  Its lateness still delays the
  response it is in, but no longer the requests queued behind it.
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
    """The serial server's queue and the stall window of one demo-target process."""

    serial_free_at: float = 0.0  # monotonic: when the serial server's last queued request ends
    stall: StallWindow = field(default_factory=StallWindow)
    served: int = 0

    def enqueue(self, now: float, service_s: float) -> tuple[float, float]:
        """(start, end) of a request arriving at `now`: FIFO, one at a time, exactly `service_s`."""
        start = max(now, self.serial_free_at)
        self.serial_free_at = start + service_s
        return start, self.serial_free_at


def register_queue_routes(app: Flask, queue: QueueState) -> None:
    """Adds /serial and /stalling to the public application."""

    @app.get("/serial")
    def serial() -> Response:
        service_s = _ms_arg("ms", DEFAULT_SERVICE_MS) / 1000.0
        arrived = time.monotonic()
        started, ends = queue.enqueue(arrived, service_s)
        gevent.sleep(max(ends - time.monotonic(), 0.0))
        queue.served += 1
        # held: from its start until it answers (S, plus this wake-up's lateness)
        held = time.monotonic() - started
        return jsonify(queued_ms=round((started - arrived) * 1000, 3), service_ms=service_s * 1000,
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
