"""TLS session resumption on the httpx engine: an httpcore network backend that offers sessions.

httpcore 1.0's `SyncStream.start_tls` wraps the socket with `ssl_context.wrap_socket(sock,
server_hostname=...)` and has no `session=` parameter, and `httpx.HTTPTransport` builds its
`httpcore.ConnectionPool` without a `network_backend` argument.  So a policy with
`tls_resumption: true` gets `ResumingTransport`: the same transport, whose pool is built with
the same arguments plus `ResumingBackend`, whose streams

* remember their origin (host, port) at `connect_tcp`, as `start_tls` is only told the SNI name;
* offer the origin's last session from the pool's `TlsSessionCache` in `start_tls` (the
  handshake is still counted by `workload.engine.httpxengine.Tracer`, resumed or full);
* keep the socket's session in `close()`: httpcore closes a connection after reading the
  response (`Connection: close`) or when the pool is closed, so TLS 1.3's tickets, which
  arrive after the handshake, have been read by then.

HTTP/2 runs on the same streams: a new HTTP/2 connection resumes like an HTTP/1.1 one (ALPN
is negotiated again in the abbreviated handshake).  Loaded only with the httpx engine.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.sync import SyncBackend, SyncStream
from httpcore._exceptions import map_exceptions

from workload.engine.tls_sessions import TlsSessionCache

CONNECT_ERRORS: dict[type[Exception], type[Exception]] = {
    socket.timeout: httpcore.ConnectTimeout, OSError: httpcore.ConnectError}  # as SyncStream.start_tls maps


class ResumingStream(SyncStream):
    """A socket stream that knows its origin; once TLS, it keeps its session when closed."""

    def __init__(self, sock: socket.socket, cache: TlsSessionCache, origin: tuple[str, int], tls: bool = False):
        super().__init__(sock)
        self.cache = cache
        self.origin = origin
        self.tls = tls

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        session = self.cache.offer(*self.origin)
        with map_exceptions(CONNECT_ERRORS):
            try:
                self._sock.settimeout(timeout)
                sock = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname, session=session)
            except Exception:
                self.close()
                raise
        return ResumingStream(sock, self.cache, self.origin, tls=True)

    def close(self) -> None:
        if self.tls:
            self.cache.keep(*self.origin, self._sock)
        super().close()


class ResumingBackend(SyncBackend):
    """httpcore's synchronous backend whose streams offer and keep TLS sessions in one cache."""

    def __init__(self, cache: TlsSessionCache) -> None:
        self.cache = cache

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        sock = stream.get_extra_info("socket")
        return ResumingStream(sock, self.cache, (host, port))


class ResumingTransport(httpx.HTTPTransport):
    """`httpx.HTTPTransport` (no proxy) whose connection pool resumes TLS sessions from `cache`."""

    def __init__(self, cache: TlsSessionCache, ssl_context: ssl.SSLContext, limits: httpx.Limits,
                 http1: bool, http2: bool, retries: int) -> None:
        super().__init__(verify=ssl_context, http1=http1, http2=http2, limits=limits, retries=retries,
                         trust_env=False)
        # The pool HTTPTransport.__init__ builds (it holds no connection yet), again with the backend.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            http1=http1, http2=http2, retries=retries, network_backend=ResumingBackend(cache))
