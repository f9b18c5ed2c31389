"""TLS session resumption: the last TLS session per origin, offered again on the next connect.

A policy with `tls_resumption: true` behaves like a browser or a tuned client: it remembers the
last TLS session it got from each origin (host, port) and offers it when it opens the next
connection there, so the server may answer with an abbreviated handshake (session ID from its
cache, or a session ticket).  Whether the server accepts is the measured part:
`workload.telemetry.connections` counts each completed handshake as resumed or full from the
socket's `session_reused`.

Scope: one `TlsSessionCache` per user (shared, close, fresh and recycle: a fresh Session per
request still resumes, as the option is about the TLS layer, not the HTTP client object), or one
per process for `scope: process`.  The cache is engine-neutral: any engine that can pass an
`ssl.SSLSession` to `wrap_socket` calls `offer()` before and `keep()` after a connection.

When the session is read: TLS 1.3 sends its session tickets *after* the handshake, as
post-handshake messages that the client only processes when it next reads from the socket.
A session read right after the handshake is therefore not resumable.  So the session is kept
when the connection closes (urllib3 closes it after reading the response headers when the
server answers `Connection: close`, and when a pool or a fresh Session is cleared), by which
time at least one response has been read.

For requests/urllib3 2.x the hook is `HTTPSConnection.connect`: urllib3 wraps the socket with
`ssl_context.wrap_socket(sock, server_hostname=...)` and has no `session=` parameter, so during
one `connect()` the connection's `ssl_context` is a thin view of the policy's shared context
whose `wrap_socket` adds the session.  OpenSSL resumes a session only under the context that
made it, hence the schema rejects `tls_resumption` with `ssl_context: per_connection`.
The other engines' hooks: `workload.engine.fast.CountingSSLPool` (geventhttpclient) and
`workload.engine.httpx_tls` (an httpcore network backend).
"""

from __future__ import annotations

import ssl
from typing import Any, cast

from urllib3 import PoolManager
from urllib3.connectionpool import HTTPConnectionPool

from workload.telemetry.connections import (
    COUNTING_POOL_CLASSES,
    CountingHTTPSConnection,
    CountingHTTPSConnectionPool,
)

Origin = tuple[str, int]


class TlsSessionCache:
    """The last TLS session per origin; bounded by the number of origins a scenario declares."""

    __slots__ = ("_sessions",)

    def __init__(self) -> None:
        self._sessions: dict[Origin, ssl.SSLSession] = {}

    def offer(self, host: str, port: int) -> ssl.SSLSession | None:
        return self._sessions.get((host.lower(), port))

    def keep(self, host: str, port: int, sock: Any) -> None:
        """Remember `sock`'s session (call it after reading from the socket: see the module doc)."""
        try:
            session = getattr(sock, "session", None)
        except (OSError, ValueError):  # a socket already shut down has none to give
            return
        if session is not None:
            self._sessions[(host.lower(), port)] = session

    def __len__(self) -> int:
        return len(self._sessions)


class _OfferingContext:
    """The policy's SSL context as urllib3 sees it during one connect(): `wrap_socket` offers a session.

    Everything else (verify_mode, check_hostname, set_alpn_protocols...) reads and writes the real,
    shared context, exactly as urllib3 does without resumption."""

    __slots__ = ("_context", "_session")

    def __init__(self, context: ssl.SSLContext, session: ssl.SSLSession) -> None:
        object.__setattr__(self, "_context", context)
        object.__setattr__(self, "_session", session)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._context, name, value)

    def wrap_socket(self, sock: Any, **kwargs: Any) -> Any:
        return self._context.wrap_socket(sock, session=self._session, **kwargs)


class ResumingHTTPSConnection(CountingHTTPSConnection):
    """A counting HTTPS connection that offers its origin's last session and keeps the new one."""

    workload_tls_sessions: TlsSessionCache | None = None  # set by the pool that creates it

    def connect(self) -> None:
        cache, context = self.workload_tls_sessions, self.ssl_context
        session = cache.offer(self.host, self.port) if cache is not None else None
        if session is None or context is None:
            super().connect()
            return
        self.ssl_context = cast(ssl.SSLContext, _OfferingContext(context, session))
        try:
            super().connect()
        finally:
            self.ssl_context = context

    def close(self) -> None:
        if self.workload_tls_sessions is not None and self.sock is not None:
            self.workload_tls_sessions.keep(self.host, self.port, self.sock)
        super().close()


class ResumingHTTPSConnectionPool(CountingHTTPSConnectionPool):
    ConnectionCls = ResumingHTTPSConnection
    workload_tls_sessions: TlsSessionCache | None = None

    def _new_conn(self) -> Any:
        conn = super()._new_conn()
        cast(ResumingHTTPSConnection, conn).workload_tls_sessions = self.workload_tls_sessions
        return conn


RESUMING_POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    **COUNTING_POOL_CLASSES, "https": ResumingHTTPSConnectionPool}


class ResumingPoolManager(PoolManager):
    """A counting pool manager whose HTTPS pools share one `TlsSessionCache`."""

    def __init__(self, tls_sessions: TlsSessionCache, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tls_sessions = tls_sessions
        self.pool_classes_by_scheme = RESUMING_POOL_CLASSES

    def _new_pool(self, scheme: str, host: str, port: int,
                  request_context: dict[str, Any] | None = None) -> HTTPConnectionPool:
        pool = super()._new_pool(scheme, host, port, request_context)
        if isinstance(pool, ResumingHTTPSConnectionPool):
            pool.workload_tls_sessions = self.tls_sessions
        return pool
