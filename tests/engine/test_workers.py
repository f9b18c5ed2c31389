"""Iteration workers: reused greenlets, at most `size` busy, stopped with the run.  In-process."""

from __future__ import annotations

import gevent
from gevent.event import Event

from workload.engine.workers import Workers


def test_a_worker_is_reused_once_its_iteration_ends():
    done: list[float] = []
    workers = Workers(5, done.append)
    for due in range(100):
        workers.start(float(due))
        gevent.sleep(0)  # the iteration runs and its worker waits again
    assert workers.wait_quiet(1.0)
    assert done == [float(d) for d in range(100)]
    assert len(workers.greenlets) == 1 and workers.busy == 0
    workers.stop()


def test_full_at_size_and_running_lists_the_busy_workers():
    release = Event()
    workers = Workers(3, lambda due: release.wait())
    for due in range(3):
        assert not workers.full()
        workers.start(float(due))
    assert workers.full()
    gevent.sleep(0)
    assert len(workers.running()) == 3 and not workers.wait_quiet(0.05)
    release.set()
    assert workers.wait_quiet(1.0) and workers.running() == [] and not workers.full()
    workers.stop()


def test_stop_kills_running_and_idle_workers():
    workers = Workers(4, lambda due: gevent.sleep(60 if due else 0))
    workers.start(0.0)
    gevent.sleep(0.01)  # the first ends: idle
    workers.start(1.0)  # reuses it and blocks
    workers.start(1.0)  # a second worker, blocked
    gevent.sleep(0.01)
    workers.stop(timeout=1.0)
    assert len(workers.greenlets) == 2 and all(g.dead for g in workers.greenlets)


def test_started_from_the_hub_an_idle_worker_runs_at_once():
    order: list[str] = []
    workers = Workers(2, lambda due: order.append("iteration"))
    workers.start(0.0)
    gevent.sleep(0.01)  # idle now

    def from_hub() -> None:
        workers.start(1.0)
        order.append("after start")

    gevent.get_hub().loop.run_callback(from_hub)
    gevent.sleep(0.01)
    assert order == ["iteration", "iteration", "after start"]
    workers.stop()


def test_a_body_that_raises_ends_its_worker_but_frees_its_place():
    def body(due: float) -> None:
        if due == 0.0:
            raise gevent.Timeout()  # no Exception: it would end the greenlet

    workers = Workers(1, body)
    workers.start(0.0)
    gevent.sleep(0.01)
    assert not workers.full() and workers.wait_quiet(0.1)
    workers.start(1.0)  # a new worker takes the place
    assert workers.wait_quiet(1.0) and len(workers.greenlets) == 2 and workers.greenlets[0].dead
    workers.stop()
