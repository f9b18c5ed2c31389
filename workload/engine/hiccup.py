"""Hiccup greenlet: measures the generator's own gevent loop lag while a run goes.

It sleeps a fixed short interval over and over and records how much later than asked it woke
up (jHiccup's method), and samples the process's CPU about once a second, into a locust-free
`workload.telemetry.generator.GeneratorHealth`.  It ends by itself when the health's run is
stopped.  Elapsed time is read from `time.perf_counter`, not from gevent's cached loop clock,
so a loop blocked by CPU work shows as lag.
"""

from __future__ import annotations

import time

import gevent

from workload.telemetry.generator import GeneratorHealth


def _measure(health: GeneratorHealth) -> None:
    interval_s = health.interval_ms / 1000.0
    while health.running:
        asked = time.perf_counter()
        gevent.sleep(interval_s)
        health.record_lag((time.perf_counter() - asked - interval_s) * 1000.0)
        health.sample_cpu()


def start(health: GeneratorHealth) -> gevent.Greenlet:
    """Starts measuring `health` (its clock starts now); stop it with `health.stop()`."""
    health.start()
    return gevent.spawn(_measure, health)
