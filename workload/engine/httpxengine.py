"""Engine httpx: the connection policies on httpx/httpcore, HTTP/1.1 or HTTP/2.

The user still sends through Locust's `HttpSession` (requests): cookies, headers, auth,
redirects, Locust's request event and `catch_response` are the very code the default engine
runs.  Only the last hop changes: `HttpxAdapter` is the requests adapter mounted on the
user's session, and it puts each prepared request on the wire with an httpx
`HTTPTransport` (an httpcore connection pool; sync, cooperative under gevent).  So every
policy means what it means on `engine: requests`:

* shared: one pool per user (`Limits(max_connections = keep-alive = pool_maxsize × hosts)`,
  idle connections never expire client-side, as in urllib3), or with `scope: process` ONE
  pool for all users of the process.  Under HTTP/2 a user sends one request at a time, so a
  per-user pool is one connection per user; the process pool multiplexes every user over one
  connection per host (as many streams as the server allows at once);
* close: `Connection: close` on every request (HTTP/1.1 only: HTTP/2 has no such header);
* fresh: a new session and pool per request sharing the user's cookies, headers and auth;
* recycle: the user's pool is closed every N requests or T seconds.

One SSL context per policy (httpcore sets its ALPN list on it per connect, which is
constant per policy); retries only as the policy asks (httpx retries failed connects only);
declared hosts only, checked on every hop exactly as `workload.engine.transport` does.

Counters go to `workload.telemetry.connections.STATS` from httpcore's per-request trace
events (`connection.connect_tcp.*`, `connection.start_tls.*`) and each response's
`http_version`: TCP connects, TLS handshakes completed/failed (resumed/full), setup time, pool
waits, the protocol each connection speaks (ALPN) and HTTP/2 streams.  `tls_resumption: true`:
the HTTPS transports resume TLS sessions from the pool's `TlsSessionCache` (the user's, or the
process pool's), see `workload.engine.httpx_tls`.  Imports locust (via transport).
"""

from __future__ import annotations

import importlib
import sys

try:  # trio < 0.25 crashes on import once gevent removed select.epoll (python-trio/trio#2848);
    importlib.import_module("trio")  # httpcore only catches ImportError: make a broken trio look absent.
except ImportError:
    pass
except Exception:  # pragma: no cover - depends on the installed trio
    sys.modules["trio"] = None  # type: ignore[assignment]

import http.client
import select
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent.monkey
import httpcore._utils
import httpx
import requests
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from workload.engine.engines import retry_total
from workload.engine.httpx_tls import ResumingTransport
from workload.engine.tls_sessions import TlsSessionCache
from workload.engine.transport import HostGate, PolicyTransport, RecycleState, Verify
from workload.scenario.schema import Policy
from workload.telemetry.connections import STATS

if gevent.monkey.is_module_patched("select"):
    # httpcore asks `select.poll().poll(0)` whether an idle pooled socket is readable, taking yes for "the
    # server closed it" and reconnecting.  gevent's patched poll answers yes for idle sockets with nothing
    # to read (measured: 5-6 connects where 4 were due), so a shared pool would churn.  The original poll
    # with a zero timeout never blocks, so it is safe under gevent.
    httpcore._utils.select = types.SimpleNamespace(  # type: ignore[assignment]
        poll=gevent.monkey.get_original("select", "poll"), POLLIN=select.POLLIN,
        select=gevent.monkey.get_original("select", "select"))

# Connection-specific headers are forbidden in HTTP/2 (RFC 9113 8.2.2): h2 would refuse the request.
H2_FORBIDDEN = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


class PoolConfig:
    """How a policy's httpx transports are built: one SSL context, limits, retries, protocol."""

    def __init__(self, policy: Policy, ssl_context: Any, http2: bool, hosts: int) -> None:
        size = policy.pool_maxsize * max(1, hosts)  # httpx limits the whole pool, urllib3 each host's
        self.limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=None)
        self.ssl_context = ssl_context
        self.http2 = http2
        self.retries = retry_total(policy)  # httpx retries failed connects only (ENGINE_LIMITS)

    def transport(self, scheme: str, tls_sessions: TlsSessionCache | None = None) -> httpx.HTTPTransport:
        if tls_sessions is not None and scheme == "https":
            return ResumingTransport(tls_sessions, self.ssl_context, self.limits, http1=True, http2=self.http2,
                                     retries=self.retries)
        # Cleartext HTTP/2 is prior-knowledge h2c (httpx has no Upgrade): HTTP/1.1 switched off.
        h2c = self.http2 and scheme == "http"
        return httpx.HTTPTransport(verify=self.ssl_context if self.ssl_context is not None else True,
                                   http1=not h2c, http2=self.http2, limits=self.limits, retries=self.retries,
                                   trust_env=False)


class HttpxPool:
    """The httpx transports (one per scheme) of one pool: a user's, a request's, or the process's."""

    def __init__(self, config: PoolConfig, tls_sessions: TlsSessionCache | None = None) -> None:
        self.config = config
        self.tls_sessions = tls_sessions  # tls_resumption: the sessions its HTTPS connections offer
        self.transports: dict[str, httpx.HTTPTransport] = {}
        self.in_flight = 0

    def get(self, scheme: str) -> httpx.HTTPTransport:
        transport = self.transports.get(scheme)
        if transport is None:
            transport = self.transports[scheme] = self.config.transport(scheme, self.tls_sessions)
        return transport

    @contextmanager
    def checkout(self, http2: bool) -> Iterator[None]:
        # HTTP/1.1 carries one request per connection at a time: all of them busy means a wait.
        if not http2 and self.in_flight >= (self.config.limits.max_connections or 0):
            STATS.pool_waits += 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        transports, self.transports = list(self.transports.values()), {}
        for transport in transports:
            transport.close()


class Tracer:
    """httpcore trace events of one request → the connection counters (per connection it opens)."""

    __slots__ = ("scheme", "h2c", "started")

    def __init__(self, scheme: str, h2c: bool) -> None:
        self.scheme = scheme
        self.h2c = h2c
        self.started = 0.0

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.started":
            self.started = time.perf_counter()
        elif event == "connection.connect_tcp.complete":
            STATS.tcp_connects += 1
            if self.scheme == "http":
                STATS.record_protocol("h2c" if self.h2c else "http/1.1")
                STATS.record_setup(time.perf_counter() - self.started)
        elif event == "connection.connect_tcp.failed":
            STATS.connect_errors += 1
        elif event == "connection.start_tls.complete":
            ssl_object = info["return_value"].get_extra_info("ssl_object")
            STATS.record_tls_handshake(ssl_object)  # resumed or full: `session_reused`
            STATS.record_protocol((ssl_object.selected_alpn_protocol() if ssl_object else None) or "http/1.1")
            STATS.record_setup(time.perf_counter() - self.started)
        elif event == "connection.start_tls.failed":
            STATS.tls_failures += 1


class HttpxAdapter(BaseAdapter):
    """A requests adapter sending through an httpx pool under the policy's rules."""

    def __init__(self, pool: HttpxPool, gate: HostGate | None, close: bool, owns_pool: bool) -> None:
        super().__init__()
        self.pool = pool
        self.gate = gate
        self.close_each = close
        self.owns_pool = owns_pool
        self.tls_sessions = pool.tls_sessions  # what `transport.tls_sessions_of` reads (fresh sessions)

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Verify = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        if self.gate is not None:
            self.gate.check(request)  # every hop of a redirect chain passes here
        scheme = (request.url or "").split(":", 1)[0].lower()
        http2 = self.pool.config.http2
        outgoing = self._headers(request, http2)
        body = request.body.encode() if isinstance(request.body, str) else request.body
        tracer = Tracer(scheme, http2 and scheme == "http")
        extensions = {"timeout": _timeouts(timeout), "trace": tracer}
        wire = httpx.Request(request.method or "GET", request.url or "", headers=outgoing, content=body,
                             extensions=extensions)
        with self.pool.checkout(http2):
            try:
                answer = self.pool.get(scheme).handle_request(wire)
                try:
                    content = answer.read()
                finally:
                    answer.close()
            except httpx.TransportError as exc:
                raise as_requests_error(exc, request) from exc
        if answer.extensions.get("http_version") == b"HTTP/2":
            STATS.http2_streams += 1
        return self._response(request, answer, content)

    def _headers(self, request: requests.PreparedRequest, http2: bool) -> list[tuple[str, str]]:
        headers = [(k, v) for k, v in request.headers.items() if not (http2 and k.lower() in H2_FORBIDDEN)]
        if http2:
            return headers
        # The policy owns `Connection`, whatever target/request headers say (as TunedAdapter).
        headers = [(k, v) for k, v in headers if k.lower() != "connection"]
        return [*headers, ("Connection", "close" if self.close_each else "keep-alive")]

    def _response(self, request: requests.PreparedRequest, answer: httpx.Response,
                  content: bytes) -> requests.Response:
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = _joined(answer.headers.multi_items())
        response.raw = _Raw(answer.headers.multi_items())
        response.reason = answer.reason_phrase
        response.url = request.url or ""
        response.encoding = get_encoding_from_headers(response.headers)
        response._content = content
        response._content_consumed = True  # type: ignore[attr-defined]  # requests' own flag: body read
        response.request = request
        extract_cookies_to_jar(response.cookies, request, response.raw)
        return response

    def recycle(self) -> None:
        self.pool.close()  # the next request opens new connections

    def close(self) -> None:
        if self.owns_pool:
            self.pool.close()


class _Raw:
    """What requests reads from `response.raw`: the headers as http.client parsed them (cookies)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        message = http.client.HTTPMessage()
        for name, value in items:
            message[name] = value  # adds: several Set-Cookie headers stay separate
        self._original_response = _Original(message)

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        return b""  # the body was read whole already

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class _Original:
    def __init__(self, msg: http.client.HTTPMessage) -> None:
        self.msg = msg


def _joined(items: list[tuple[str, str]]) -> CaseInsensitiveDict[str]:
    """Headers as urllib3 presents them: repeated names joined with ', '."""
    headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
    for name, value in items:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _timeouts(timeout: Any) -> dict[str, float | None]:
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    return {"connect": connect, "read": read, "write": read, "pool": read}


def as_requests_error(exc: httpx.TransportError, request: Any) -> requests.RequestException:
    """The requests exception a urllib3 adapter raises for the same fault (same causes in run.json)."""
    text = f"{type(exc).__name__}: {exc}"
    error: type[requests.RequestException] = requests.ConnectionError
    if isinstance(exc, httpx.ConnectTimeout):
        error = requests.ConnectTimeout
    elif isinstance(exc, httpx.TimeoutException):
        error = requests.ReadTimeout
    elif isinstance(exc, httpx.ConnectError) and ("SSL" in str(exc) or "CERTIFICATE" in str(exc)):
        error = requests.exceptions.SSLError
    elif isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" not in str(exc):
        error, text = requests.exceptions.ChunkedEncodingError, f"Connection broken: {text}"
    elif isinstance(exc, httpx.UnsupportedProtocol):
        error = requests.exceptions.InvalidURL
    return error(text, request=request)


class HttpxEngine(PolicyTransport):
    """The `httpx` engine: `PolicyTransport`'s sessions and identity, httpx on the wire."""

    engine = "httpx"

    def __init__(self, name: str, policy: Policy, verify: Verify, cert: Any, gate: HostGate | None = None) -> None:
        super().__init__(name, policy, verify, cert, gate)
        self.process_pool = None  # urllib3's: unused here
        hosts = len(gate.declared) if gate is not None else 1
        self.config = PoolConfig(policy, self.ssl_context, policy.http2, hosts)
        process_sessions = TlsSessionCache() if policy.tls_resumption else None  # the process is one client
        self.shared_pool = HttpxPool(self.config, process_sessions) if policy.scope == "process" else None

    def new_adapter(self, base_url: str | None = None, tls_sessions: TlsSessionCache | None = None) -> Any:
        # tls_sessions: the user's cache (PolicyTransport.install); a process pool has its own.
        gate = self.gate.with_host(base_url) if self.gate is not None else None  # --host may differ
        pool = self.shared_pool or HttpxPool(self.config, tls_sessions)
        return HttpxAdapter(pool, gate, close=self.kind == "close", owns_pool=self.shared_pool is None)

    def after_request(self, user: Any, session: Any, state: RecycleState) -> None:
        if session is not user.client:
            session.close()  # fresh: the client closes first, so TIME_WAIT lands on the client side
        elif self.kind == "recycle" and state.due(self.policy):
            for adapter in {id(a): a for a in session.adapters.values()}.values():
                if isinstance(adapter, HttpxAdapter):
                    adapter.recycle()


__all__ = ["HttpxAdapter", "HttpxEngine", "httpx"]
