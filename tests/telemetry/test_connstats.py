"""Connection counters count events on the wire: real discards, completed vs failed TLS handshakes."""

from __future__ import annotations

import logging

import trustme

from tests.helpers import accepted, harness, run_tasks
from workload.telemetry.connections import STATS

POOL = """
    target: {host: "%(host)s", verify: %(verify)s}
    endpoints:
      - {name: slow, path: "/slow?ms=%(ms)d"}
    policies:
      one: {type: shared, scope: process, pool_maxsize: 1, timeout: {connect: 2, read: %(read)s}}
      close: {}
"""


def _text(host: str = "demo", verify: str = "false", ms: int = 50, read: float = 5) -> str:
    return POOL % {"host": host, "verify": verify, "ms": ms, "read": read}


def test_timed_out_requests_discard_nothing(demo_target, caplog):
    h = harness(_text(ms=1500, read=0.2), "one", demo_target)
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        run_tasks(h.users(8), iterations=8, login=False)
    assert h.requests() == 64 and h.env.stats.total.num_failures == 64
    # urllib3 logs "pool is full" when the errored requests put back None: not a discard.
    assert any("Connection pool is full" in r.getMessage() for r in caplog.records)
    assert STATS.pool_discards == 0
    assert STATS.tcp_connects >= 8


def test_a_full_pool_discards_real_connections(demo_target):
    h = harness(_text(ms=50), "one", demo_target)
    before = accepted(demo_target)
    run_tasks(h.users(5), iterations=4, login=False)
    assert h.requests() == 20 and not h.errors()
    opened = accepted(demo_target) - before
    assert STATS.tcp_connects == opened >= 2
    # One connection stays in the single-slot pool; every other one was dropped when put back.
    assert STATS.pool_discards == opened - 1


def test_failed_tls_handshakes_are_not_counted_as_handshakes(demo_target, tmp_path):
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other-ca.pem"))  # not the demo's CA
    h = harness(_text("https://demo", "other-ca.pem"), "close", demo_target, file=str(tmp_path / "s.yaml"))
    before = accepted(demo_target)
    run_tasks(h.users(1), iterations=6, login=False)
    assert h.env.stats.total.num_failures == 6
    assert STATS.tcp_connects == accepted(demo_target) - before == 6
    assert (STATS.tls_handshakes, STATS.tls_failures) == (0, 6)
    snapshot = STATS.snapshot(6)
    assert snapshot["tls_handshakes"] == 0 and snapshot["tls_failures"] == 6
    assert snapshot["setup_ms"]["count"] == 0  # only completed setups are timed


def test_completed_tls_handshakes_are_counted(demo_target):
    h = harness(_text("https://demo"), "close", demo_target)
    run_tasks(h.users(1), iterations=5, login=False)
    assert h.requests() == 5 and not h.errors()
    assert (STATS.tcp_connects, STATS.tls_handshakes, STATS.tls_failures) == (5, 5, 0)
