"""Tests for the demo target's queueing routes: /serial (M/D/1) and /stalling (one-off stall).

Concurrent requests are greenlets (conftest imports locust first, which monkey-patches), each
on its own connection to the session-wide `demo_target` on 127.0.0.1.
"""

from __future__ import annotations

import time

import gevent
import requests

from workload.demo.launcher import DemoTarget


def _timed_get(url: str) -> tuple[float, float, dict[str, float]]:
    """(sent, answered) monotonic times and the JSON body of one GET on a fresh connection."""
    with requests.Session() as s:
        s.trust_env = False
        sent = time.monotonic()
        response = s.get(url, timeout=30)
        answered = time.monotonic()
    assert response.status_code == 200, response.text
    return sent, answered, response.json()


def _concurrently(url: str, count: int) -> list[tuple[float, float, dict[str, float]]]:
    jobs = [gevent.spawn(_timed_get, url) for _ in range(count)]
    gevent.joinall(jobs, raise_error=True)
    return [job.value for job in jobs]


def test_serial_requests_queue_one_at_a_time(demo_target: DemoTarget) -> None:
    results = _concurrently(demo_target.http_url + "/serial?ms=50", 6)
    queued = sorted(body["queued_ms"] for _, _, body in results)
    # One at a time: the last served waited for the (up to) five before it, none were turned away,
    # and each held the lock for its whole service time.
    assert queued[-1] >= 4 * 50 and queued[1] > 20, queued
    assert all(body["held_ms"] >= 49 for _, _, body in results)
    wall = max(done for _, done, _ in results) - min(sent for sent, _, _ in results)
    assert wall >= 6 * 0.050 * 0.95


def test_slow_requests_in_parallel_do_not_queue(demo_target: DemoTarget) -> None:
    # The contrast that makes the test above meaningful: /slow sleeps without the lock.
    results = _concurrently(demo_target.http_url + "/slow?ms=300", 6)
    wall = max(done for _, done, _ in results) - min(sent for sent, _, _ in results)
    assert wall < 6 * 0.300 / 2


def test_many_waiting_requests_are_all_served(demo_target: DemoTarget) -> None:
    results = _concurrently(demo_target.http_url + "/serial?ms=5", 40)
    assert max(body["queued_ms"] for _, _, body in results) >= 5 * 20


def test_stalling_holds_requests_once_until_the_window_ends(demo_target: DemoTarget) -> None:
    demo_target.reset_stall()
    url = demo_target.http_url + "/stalling?after_ms=300&for_ms=1000"
    sent0, done0, first = _timed_get(url)  # arms the window [t0+0.3, t0+1.3)
    assert first["held_ms"] == 0 and done0 - sent0 < 0.25
    gevent.sleep(max(0.0, sent0 + 0.5 - time.monotonic()))
    inside = _concurrently(url, 5)
    window_end = sent0 + 1.3
    for sent, done, body in inside:
        assert body["held_ms"] > 0
        assert done >= window_end - 0.05, (sent - sent0, done - sent0)
    gevent.sleep(max(0.0, window_end + 0.1 - time.monotonic()))
    sent, done, after = _timed_get(url)  # once only: no new window after the first
    assert after["held_ms"] == 0 and done - sent < 0.25


def test_reset_rearms_the_stall(demo_target: DemoTarget) -> None:
    demo_target.reset_stall()
    url = demo_target.http_url + "/stalling?after_ms=0&for_ms=400"
    sent, done, body = _timed_get(url)  # the arming request itself lands in the window
    assert body["held_ms"] > 300 and done - sent >= 0.35
    demo_target.reset_stall()
    sent, done, body = _timed_get(url.replace("for_ms=400", "for_ms=200"))
    assert 150 < body["held_ms"] <= 200


def test_the_serial_queue_serves_exactly_its_service_time_one_at_a_time() -> None:
    # The virtual clock: a late wake-up of one request does not lengthen the ones behind it.
    from workload.demo.queueing import QueueState

    queue = QueueState()
    assert queue.enqueue(10.0, 0.020) == (10.0, 10.02)  # an idle server starts at once
    assert queue.enqueue(10.005, 0.020) == (10.02, 10.04)  # queued behind the first, FIFO
    assert queue.enqueue(10.5, 0.020) == (10.5, 10.52)  # idle again: no queue
