"""Connection counters: exact in-process counts of TCP connects, TLS handshakes and pool discards.

urllib3 counts connection *objects* per pool (`num_connections`), which misses reconnects
of a kept object and vanishes when a pool is evicted; so the connection classes used by
`workload.engine.transport` count every real TCP connect (`_new_conn`) here, every TLS handshake
as completed or failed, and time each `connect()` (TCP + TLS setup).  A completed handshake
is also counted as resumed or full (`SSLSocket.session_reused`) through `record_tls_handshake`,
which any engine can call with its own socket.  A pool discard is
counted when the pool really drops a connection that had connected because it is full;
urllib3's "pool is full" log line is not used, as it is also written when an errored
request puts back `None` (no connection at all).

One process runs one policy at a time, so the counters are process-global.  Locust runs
users as greenlets on one thread; the sampler thread only reads.
"""

from __future__ import annotations

import socket
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

DEFAULT_SETUP_SAMPLES = 100_000  # bounded memory for setup-time percentiles
COUNTER_KEYS = ("tcp_connects", "tls_handshakes", "tls_failures", "pool_discards", "connect_errors",
                "pool_waits", "tls_resumed", "tls_full")


class ConnectionStats:
    """Process-wide connection counters; `snapshot()` is run.json's `connections` section."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tcp_connects = 0
        self.tls_handshakes = 0  # completed handshakes only: tls_resumed + tls_full
        self.tls_resumed = 0  # abbreviated handshakes: the server accepted the offered session
        self.tls_full = 0
        self.tls_failures = 0  # handshakes that failed after the TCP connect (certificate, protocol)
        self.pool_discards = 0
        self.pool_waits = 0  # requests that waited for a free connection (a blocking pool that was full)
        self.connect_errors = 0
        self._setup_ms: list[float] = []
        # The protocol each new connection speaks (ALPN, or h2c / http/1.1 in cleartext; engine httpx
        # records it) and the requests (streams) sent over HTTP/2.
        self.protocols: dict[str, int] = {}
        self.http2_streams = 0

    def record_protocol(self, protocol: str) -> None:
        self.protocols[protocol] = self.protocols.get(protocol, 0) + 1

    def record_tls_handshake(self, sock: Any) -> None:
        """One completed handshake on `sock` (any `ssl.SSLSocket`-like object), resumed or full."""
        self.tls_handshakes += 1
        if getattr(sock, "session_reused", False):
            self.tls_resumed += 1
        else:
            self.tls_full += 1

    def record_setup(self, seconds: float) -> None:
        if len(self._setup_ms) < DEFAULT_SETUP_SAMPLES:
            self._setup_ms.append(seconds * 1000.0)

    def snapshot(self, requests: int | None = None) -> dict[str, Any]:
        setup = sorted(self._setup_ms)
        per_conn = round(requests / self.tcp_connects, 2) if requests is not None and self.tcp_connects else None
        return {
            "tcp_connects": self.tcp_connects,
            "tls_handshakes": self.tls_handshakes,
            "tls_failures": self.tls_failures,
            "tls_resumed": self.tls_resumed,
            "tls_full": self.tls_full,
            "pool_discards": self.pool_discards,
            "pool_waits": self.pool_waits,
            "connect_errors": self.connect_errors,
            "requests_per_connection": per_conn,
            "setup_ms": _summary(setup),
            **self._http2_snapshot(),
        }

    def _http2_snapshot(self) -> dict[str, Any]:
        h2 = self.protocols.get("h2", 0) + self.protocols.get("h2c", 0)
        return {"protocols": dict(sorted(self.protocols.items())),
                "http2_connections": h2, "http2_streams": self.http2_streams,
                "streams_per_connection": round(self.http2_streams / h2, 2) if h2 else None}


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "avg": None, "p50": None, "p95": None, "max": None}

    def pct(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 3)

    return {"count": len(values), "avg": round(sum(values) / len(values), 3),
            "p50": pct(0.5), "p95": pct(0.95), "max": round(values[-1], 3)}


STATS = ConnectionStats()


class _CountingConnect:
    """Mixin for urllib3 connection classes: count TCP connects and TLS handshakes, time connect()."""

    TLS = False
    workload_connected = False  # set once this object's socket connected: only then can it be discarded
    workload_tcp_done = False  # this connect() call got past TCP (per object: greenlets interleave)
    workload_close_after = False  # the last request sent `Connection: close` (policy close)

    def _new_conn(self) -> socket.socket:
        try:
            sock = super()._new_conn()  # type: ignore[misc]
        except Exception:
            STATS.connect_errors += 1
            raise
        # Counted as soon as the socket is connected, as the server counts it, even if the
        # TLS handshake then fails or the user is stopped (GreenletExit) mid-handshake.
        STATS.tcp_connects += 1
        self.workload_connected = self.workload_tcp_done = True
        return sock

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> None:
        # Remember whether this request said `Connection: close`: the pool then never reuses the
        # connection, even if the server answers keep-alive (RFC 9112 9.6: the sender of close closes).
        self.workload_close_after = any(str(k).lower() == "connection" and str(v).strip().lower() == "close"
                                        for k, v in (headers or {}).items())
        super().request(method, url, body=body, headers=headers, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        # urllib3 2.x performs the TLS handshake inside connect(), so this times TCP + TLS.
        start = time.perf_counter()
        self.workload_tcp_done = False
        try:
            super().connect()  # type: ignore[misc]
        except Exception:
            if self.TLS and self.workload_tcp_done:
                STATS.tls_failures += 1  # TCP connected, the handshake did not complete
            raise
        if self.TLS:
            STATS.record_tls_handshake(getattr(self, "sock", None))
        STATS.record_setup(time.perf_counter() - start)


class CountingHTTPConnection(_CountingConnect, HTTPConnection):
    pass


class CountingHTTPSConnection(_CountingConnect, HTTPSConnection):
    TLS = True


class _CountingDiscards:
    """Mixin for urllib3 pools: count a connection dropped because the pool is full, and a wait for one."""

    pool: Any
    block: bool

    def _get_conn(self, timeout: float | None = None) -> Any:
        # The queue holds a slot (None or a kept connection) per free place: empty means every
        # connection is out, and a blocking pool makes this request wait.
        if self.block and self.pool is not None and self.pool.empty():
            STATS.pool_waits += 1
        return super()._get_conn(timeout)  # type: ignore[misc]

    def _put_conn(self, conn: Any) -> None:
        if conn is not None and getattr(conn, "workload_close_after", False):
            conn.close()  # policy close: never back into the pool (a no-op when the server closed first)
            conn = None
        # urllib3 closes and drops `conn` when the queue is full (and, with block=False, logs
        # it, also for `None`).  Greenlets do not switch between this check and the put.
        if getattr(conn, "workload_connected", False) and self.pool is not None and self.pool.full() \
                and not self.block:
            STATS.pool_discards += 1
        super()._put_conn(conn)  # type: ignore[misc]


class CountingHTTPConnectionPool(_CountingDiscards, HTTPConnectionPool):
    ConnectionCls = CountingHTTPConnection


class CountingHTTPSConnectionPool(_CountingDiscards, HTTPSConnectionPool):
    ConnectionCls = CountingHTTPSConnection


COUNTING_POOL_CLASSES = {"http": CountingHTTPConnectionPool, "https": CountingHTTPSConnectionPool}
