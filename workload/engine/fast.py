"""The `fast` engine: connection policies on geventhttpclient, through Locust's FastHttpSession.

The contract is `workload.engine.engines`'; here is how each part maps onto geventhttpclient
2.6 (whose `HTTPClientPool` keeps one `HTTPClient` per host, each with a blocking
`ConnectionPool` of `concurrency` sockets):

* shared: one `PolicyClientPool` per user, `concurrency = pool_maxsize` (the pool waits for a
  free connection, it never discards one); `scope: process`: one pool for all users.
* close: `Connection: close` on every request, and the pool never puts a socket back, even
  when a misbehaving server answers keep-alive.
* fresh: a new `FastClient` (and pool) per request sharing the user's cookie jar, headers and
  auth objects, closed after the request (the client closes first).
* recycle: the user's pools are closed when `RecycleState.due` (every N requests / T seconds).
* TLS: ONE SSL context per policy, handed to every pool by `ssl_context_factory` (otherwise
  geventhttpclient builds one, loading the CA store, for every new client).
* retries: `max_retries` = the policy's count (0 by default), which geventhttpclient spends on
  timeouts and broken sends of idempotent methods; its own silent resend of a request whose
  connection turned out closed is turned off (`PolicyClientPool.get_client`).
* The host gate runs in `GatedUserAgent._urlopen`, which every hop of a redirect chain passes.
* TLS resumption (`tls_resumption: true`): `CountingSSLPool` wraps each new socket with
  `session=` the origin's last session from the user's (or, `scope: process`, the process's)
  `TlsSessionCache`, and keeps a socket's session when the socket is closed (released, or
  dropped by the pool's `close()` or as dead), after its response was read (TLS 1.3 tickets).
* Counters: `CountingPool` (TCP connects, setup time, connect errors, waits) and
  `CountingSSLPool` (TLS handshakes completed / failed, resumed / full).  `HTTPClient` hard-wires its pool
  classes, so `PolicyClientPool` re-classes each new client's pool (no state is added or lost).

Imports locust and geventhttpclient: loaded by `workload.engine.engines.make_engine` only.
"""

from __future__ import annotations

from locust.contrib.fasthttp import FastHttpSession, LocustUserAgent

import json
import ssl
import time
from http.cookies import CookieError, SimpleCookie
from typing import Any

from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool
from geventhttpclient.url import URL
from geventhttpclient.useragent import ConnectionError as AgentConnectionError
from requests.cookies import RequestsCookieJar
from requests.structures import CaseInsensitiveDict

from workload.engine.engines import Cert, Engine, Verify, retry_total
from workload.engine.tls_sessions import TlsSessionCache
from workload.engine.transport import OFFSITE_HEADERS, HostGate, own_connection_header, policy_ssl_context
from workload.scenario.schema import Policy
from workload.telemetry.connections import STATS

DEFAULT_MAX_REDIRECTS = 30  # requests' limit, so a redirect loop fails alike on both engines
CLOSE_HEADERS = {"Connection": "close"}
NO_HEADERS: dict[str, str] = {}


class CountingPool(ConnectionPool):
    """geventhttpclient's pool, counting connects, setup time and waits; `reuse=False` never keeps a socket."""

    reuse = True

    def get_socket(self) -> Any:
        if self._semaphore.locked():
            STATS.pool_waits += 1  # every connection is out: this request waits for one
        return super().get_socket()

    def return_socket(self, sock: Any) -> None:
        if not self.reuse:
            self.release_socket(sock)  # close: never reused, whatever the server answered
            return
        super().return_socket(sock)

    def _create_socket(self) -> Any:
        start = time.perf_counter()
        try:
            sock = super()._create_socket()
        except Exception as exc:
            if not getattr(exc, "workload_tls", False):  # a failed handshake is counted as such
                STATS.connect_errors += 1
            raise
        STATS.record_setup(time.perf_counter() - start)  # TCP (+ TLS), as the requests engine times it
        return sock

    def _connect_socket(self, sock: Any, address: Any) -> Any:
        return self._tcp_connect(sock, address)

    def _tcp_connect(self, sock: Any, address: Any) -> Any:
        sock = ConnectionPool._connect_socket(self, sock, address)
        STATS.tcp_connects += 1  # counted when connected, as the server's accept counts it
        return sock


class CountingSSLPool(CountingPool, SSLConnectionPool):
    """The TLS pool: TCP connect counted, then the handshake counted as completed or failed.

    With `workload_tls_sessions` (tls_resumption) it offers the origin's last TLS session and
    keeps each socket's session on every path by which the pool closes a socket."""

    workload_tls_sessions: TlsSessionCache | None = None  # set by PolicyClientPool.get_client

    def _connect_socket(self, sock: Any, address: Any) -> Any:
        sock = self._tcp_connect(sock, address)  # no proxy: the engine never configures one
        cache = self.workload_tls_sessions
        session = cache.offer(self._request_host, self._request_port) if cache is not None else None
        try:
            wrapped = self.ssl_context.wrap_socket(
                sock, server_hostname=self.ssl_options.get("server_hostname", self._request_host), session=session)
        except Exception as exc:
            STATS.tls_failures += 1
            exc.workload_tls = True  # type: ignore[attr-defined]
            raise
        STATS.record_tls_handshake(wrapped)
        return wrapped

    def _keep_session(self, sock: Any) -> None:
        if self.workload_tls_sessions is not None and sock is not None:
            self.workload_tls_sessions.keep(self._request_host, self._request_port, sock)

    def release_socket(self, sock: Any) -> None:
        self._keep_session(sock)  # close, a failed request, or a server that said Connection: close
        super().release_socket(sock)

    def return_socket(self, sock: Any) -> None:
        if self._closed:
            self._keep_session(sock)  # a closed pool closes what comes back
        super().return_socket(sock)

    def _is_socket_alive(self, sock: Any) -> bool:
        alive: bool = super()._is_socket_alive(sock)
        if not alive:
            self._keep_session(sock)  # get_socket closes it next
        return alive

    def close(self) -> None:
        if self.workload_tls_sessions is not None:
            for sock in list(self._socket_queue.queue):  # the idle sockets close() is about to close
                self._keep_session(sock)
        super().close()


class PolicyClientPool(HTTPClientPool):
    """geventhttpclient's per-host client pool whose clients use the counting pools."""

    def __init__(self, reuse: bool, tls_sessions: TlsSessionCache | None = None, **client_args: Any):
        super().__init__(**client_args)
        self.reuse = reuse
        self.tls_sessions = tls_sessions  # tls_resumption: the user's (or the process's) sessions

    def get_client(self, url: str | URL) -> HTTPClient:
        if not isinstance(url, URL):
            url = URL(url)
        key = url.host, url.port
        client = self.clients.get(key)
        if client is None:
            client = self.clients[key] = HTTPClient.from_url(url, **self.client_args)
            pool = client._connection_pool
            # Same state, counting methods: HTTPClient.__init__ names its pool classes itself.
            pool.__class__ = CountingSSLPool if isinstance(pool, SSLConnectionPool) else CountingPool
            pool.reuse = self.reuse  # type: ignore[attr-defined]
            if isinstance(pool, CountingSSLPool):
                pool.workload_tls_sessions = self.tls_sessions
            # HTTPClient.request resends an idempotent request `pool.size + 1` times when its
            # connection turns out closed (11 connects for one failed request at size 10); `size` is
            # read nowhere else after __init__, so -1 makes it one attempt, as on the requests
            # engine.  The policy's retries are the user agent's `max_retries`.
            pool.size = -1
        return client


class RedirectOffsite(AgentConnectionError):
    """A request to a host the scenario does not declare (cause `redirect_offsite`), never sent."""

    workload_fault = True

    def __init__(self, message: str):
        super().__init__(None, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


OFFSITE = "offsite"  # a verdict: send, without the scenario's headers
DEFAULT_MAX_VERDICTS = 256  # remembered (scheme, host:port) verdicts per user: bounded memory


class GatedUserAgent(LocustUserAgent):
    """Locust's user agent with the declared-hosts gate on every hop (redirects are followed here).

    The gate judges the host and port the client will connect to (`url_split`, the parse
    `HTTPClientPool.get_client` uses), once per (scheme, host:port): a verdict is a pure function of them."""

    gate: HostGate | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.verdicts: dict[tuple[str, str], str | None] = {}

    def _urlopen(self, request: Any) -> Any:
        if self.gate is not None:
            verdict = self._verdict(request.url_split)
            if verdict == OFFSITE:
                for name in [k for k in request.headers.keys() if k.lower() not in OFFSITE_HEADERS]:  # noqa: SIM118
                    request.headers.discard(name)
            elif verdict is not None:
                raise RedirectOffsite(verdict)
        return super()._urlopen(request)

    def _verdict(self, url: URL) -> str | None:
        key = (url.scheme, url.netloc)
        if key not in self.verdicts:
            assert self.gate is not None
            origin = (url.host.lower(), url.port or 0) if url.host else None
            refusal = self.gate.refusal_for(origin)
            offsite = origin is not None and origin not in self.gate.declared
            if len(self.verdicts) >= DEFAULT_MAX_VERDICTS:
                self.verdicts.clear()
            self.verdicts[key] = refusal if refusal is not None else (OFFSITE if offsite else None)
        return self.verdicts[key]


class FastClient(FastHttpSession):
    """A user's client on the fast engine: FastHttpSession with a requests-like identity (engines.py)."""

    client: GatedUserAgent

    def __init__(self, engine: FastEngine, user: Any, pool: PolicyClientPool, identity: FastClient | None = None):
        # FastHttpSession.__init__ is replaced, not called: it would build a user agent and a pool
        # of its own that this client never uses.
        self.engine = engine
        self.base_url = user.host
        self.request_event = user.environment.events.request
        self.user = user
        self.request_name = None
        self.cookies: RequestsCookieJar = identity.cookies if identity else RequestsCookieJar()
        self.cookiejar = self.cookies
        self.headers: CaseInsensitiveDict[str] = identity.headers if identity else CaseInsensitiveDict()
        self.auth: tuple[str, str] | None = identity.auth if identity else None
        self.verify: Verify = True  # TLS settings live in the engine's context; kept for the shared interface
        self.cert: Cert = None
        self.tls_sessions = pool.tls_sessions  # tls_resumption: the sessions this client's pool offers
        agent = GatedUserAgent(cookiejar=self.cookies, client_pool=pool, max_redirects=DEFAULT_MAX_REDIRECTS,
                               max_retries=engine.retries)
        if identity is not None:
            agent.gate, agent.verdicts = identity.client.gate, identity.client.verdicts
        elif engine.gate is not None:
            agent.gate = engine.gate.with_host(user.host)  # --host may differ from the scenario's
        self.client = agent

    def request(self, method: str, url: str, name: str | None = None, data: str | dict[Any, Any] | None = None,
                catch_response: bool = False, stream: bool = False, headers: dict[Any, Any] | None = None,
                auth: tuple[str | bytes, str | bytes] | None = None, json: Any = None, allow_redirects: bool = True,
                context: dict[Any, Any] | None = None, **kwargs: Any) -> Any:
        return super().request(method, url, name=name, data=data, catch_response=catch_response, stream=stream,
                               headers=self._headers(headers), auth=auth or self.auth, json=json,
                               allow_redirects=allow_redirects, context=context or {}, **kwargs)

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        """The user's headers, then the request's (a name in any case replaces), then the policy's
        `Connection`.  FastHttpSession copies the dict it is given."""
        close = self.engine.kind == "close"
        if not headers and not self.headers:
            return CLOSE_HEADERS if close else NO_HEADERS  # the common case, without building anything
        merged = CaseInsensitiveDict(self.headers)
        merged.update(headers or {})
        own_connection_header(merged, close)
        return dict(merged.items())

    def close(self) -> None:
        self.client.close()


class FastEngine(Engine):
    """The policy on geventhttpclient; one object per compiled user class."""

    engine = "fast"

    def __init__(self, name: str, policy: Policy, verify: Verify, cert: Cert, gate: HostGate | None = None):
        super().__init__(name, policy, verify, cert, gate)
        self.insecure = verify is False
        self.ssl_context: ssl.SSLContext = policy_ssl_context(name, verify, cert)  # CA store loaded once
        self.retries = retry_total(policy)
        self.process_pool = self.new_pool(self.new_tls_sessions()) if policy.scope == "process" else None

    def ssl_context_factory(self, **_kw: Any) -> ssl.SSLContext:
        return self.ssl_context  # geventhttpclient calls it with cafile=: the trust is already loaded

    def new_tls_sessions(self) -> TlsSessionCache | None:
        return TlsSessionCache() if self.policy.tls_resumption else None

    def new_pool(self, tls_sessions: TlsSessionCache | None) -> PolicyClientPool:
        connect, read = self.timeout
        return PolicyClientPool(reuse=self.kind != "close", tls_sessions=tls_sessions,
                                concurrency=self.policy.pool_maxsize,
                                ssl_context_factory=self.ssl_context_factory, insecure=self.insecure,
                                connection_timeout=connect, network_timeout=read)

    def new_client(self, user: Any) -> FastClient:
        return FastClient(self, user, self.process_pool or self.new_pool(self.new_tls_sessions()))

    def session_for(self, user: Any) -> FastClient:
        if self.kind != "fresh":
            return user.client
        # A fresh client's pool shares the user's TLS sessions: the option is about the TLS layer.
        return FastClient(self, user, self.new_pool(user.client.tls_sessions), identity=user.client)

    def after_request(self, user: Any, session: Any, state: Any) -> None:
        if session is not user.client:
            session.close()  # fresh: the client closes first, so TIME_WAIT lands on the client side
        elif self.kind == "recycle" and state.due(self.policy):
            session.close()  # the next request builds new clients and connections

    def judgeable(self, response: Any) -> JudgedResponse:
        return JudgedResponse(response)


class JoinedHeaders:
    """geventhttpclient's headers read as requests reads them: repeated fields joined by ', '."""

    __slots__ = ("headers",)

    def __init__(self, headers: Any):
        self.headers = headers

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self.headers.get(name) if self.headers is not None else None
        if value is None:
            return default
        return ", ".join(value) if isinstance(value, list) else value


class JudgedResponse:
    """A fast response in the `workload.plan.checks.Response` shape."""

    __slots__ = ("response", "headers")

    def __init__(self, response: Any):
        self.response = response
        self.headers = JoinedHeaders(response.headers)

    @property
    def status_code(self) -> int:
        return int(self.response.status_code)

    @property
    def text(self) -> str:
        text = self.response.text
        return text if isinstance(text, str) else ""

    @property
    def cookies(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in (self.response.headers.getlist("set-cookie") if self.response.headers is not None else []):
            try:
                found.update({k: m.value for k, m in SimpleCookie(line).items()})
            except CookieError:
                continue  # a malformed cookie line is not a capture
        return found

    def json(self) -> Any:
        return json.loads(self.text)  # ValueError (JSONDecodeError) on a body that is not JSON
