"""Connection counters: exact in-process counts of TCP connects, TLS handshakes and pool discards.

urllib3 counts connection *objects* per pool (`num_connections`), which misses reconnects
of a kept object and vanishes when a pool is evicted; so the connection classes used by
`workload.transport` count every real `connect()` here, and time it (TCP + TLS setup).
Pool discards are urllib3 WARNING log records ("Connection pool is full, discarding
connection"), counted by a logging filter instead of only being printed.

One process runs one policy at a time, so the counters are process-global.  Locust runs
users as greenlets on one thread; the sampler thread only reads.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

DEFAULT_SETUP_SAMPLES = 100_000  # bounded memory for setup-time percentiles
POOL_FULL_PREFIX = "Connection pool is full"


class ConnectionStats:
    """Process-wide connection counters; `snapshot()` is run.json's `connections` section."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tcp_connects = 0
        self.tls_handshakes = 0
        self.pool_discards = 0
        self.connect_errors = 0
        self._setup_ms: list[float] = []

    def record_connect(self, seconds: float, tls: bool) -> None:
        self.tcp_connects += 1
        if tls:
            self.tls_handshakes += 1
        if len(self._setup_ms) < DEFAULT_SETUP_SAMPLES:
            self._setup_ms.append(seconds * 1000.0)

    def snapshot(self, requests: int | None = None) -> dict[str, Any]:
        setup = sorted(self._setup_ms)
        per_conn = round(requests / self.tcp_connects, 2) if requests is not None and self.tcp_connects else None
        return {
            "tcp_connects": self.tcp_connects,
            "tls_handshakes": self.tls_handshakes,
            "pool_discards": self.pool_discards,
            "connect_errors": self.connect_errors,
            "requests_per_connection": per_conn,
            "setup_ms": _summary(setup),
        }


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "avg": None, "p50": None, "p95": None, "max": None}

    def pct(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 3)

    return {"count": len(values), "avg": round(sum(values) / len(values), 3),
            "p50": pct(0.5), "p95": pct(0.95), "max": round(values[-1], 3)}


STATS = ConnectionStats()


class _CountingConnect:
    """Mixin for urllib3 connection classes: count and time every real connect()."""

    TLS = False

    def connect(self) -> None:
        # urllib3 2.x performs the TLS handshake inside connect(), so this times TCP + TLS.
        start = time.perf_counter()
        try:
            super().connect()  # type: ignore[misc]
        except BaseException as exc:
            # A user stopped mid-connect (GreenletExit) may already hold a connected socket
            # that the server counted: count it too, so both sides' figures agree.
            if getattr(self, "sock", None) is not None:
                STATS.record_connect(time.perf_counter() - start, tls=self.TLS)
            elif isinstance(exc, Exception):
                STATS.connect_errors += 1
            raise
        STATS.record_connect(time.perf_counter() - start, tls=self.TLS)


class CountingHTTPConnection(_CountingConnect, HTTPConnection):
    pass


class CountingHTTPSConnection(_CountingConnect, HTTPSConnection):
    TLS = True


class CountingHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = CountingHTTPConnection


class CountingHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = CountingHTTPSConnection


COUNTING_POOL_CLASSES = {"http": CountingHTTPConnectionPool, "https": CountingHTTPSConnectionPool}


class _PoolFullFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(POOL_FULL_PREFIX):
            STATS.pool_discards += 1
        return True


_FILTER = _PoolFullFilter()


def install_pool_discard_counter() -> None:
    """Count urllib3's pool-full discards (idempotent)."""
    logger = logging.getLogger("urllib3.connectionpool")
    # Logger filters run only for enabled records: keep WARNING enabled even under --loglevel ERROR.
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
