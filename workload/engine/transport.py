"""Transport: the `requests` engine, what a connection policy does on the wire with Locust's `LocustHttpAdapter`.

* `TunedAdapter` applies the policy's pool sizes, blocking, retries, counts every connect
  (`workload.telemetry.connections`) and hands urllib3 ONE SSL context per policy, whatever `verify`
  is.  Without that, urllib3 builds a context and loads the CA store for every new TLS
  connection (~20 ms here); Locust's adapter only avoids it when `verify` is exactly True.
  `ssl_context: per_connection` restores requests' stock behaviour, to measure that cost.
* `PolicyTransport` gives a user the session each request goes through: its own Session
  (shared/close/recycle) or a fresh one per request that shares the user's cookie jar,
  headers and auth (fresh), and drops the user's connections when recycle is due.
* `HostGate`, `OFFSITE_HEADERS`, `RecycleState` and `make_ssl_context` are every engine's
  (`workload.engine.engines` states the contract).
* The adapter is the last step before the wire, so it enforces what must hold whatever the
  scenario's headers say: the policy's `Connection` header, and declared hosts only (a
  redirect elsewhere fails with `redirect_offsite`, or, when the scenario allows it, is
  followed without the scenario's headers, cookies and credentials).
* `tls_resumption: true` gives each user (or the process, for `scope: process`) a
  `TlsSessionCache` (`workload.engine.tls_sessions`) that the user's pools, and every fresh
  Session of that user, offer sessions from.

Imports locust: only `workload.main` and the compiler load this module.
"""

from __future__ import annotations

from locust.clients import HttpSession, LocustHttpAdapter

import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import urllib3
from requests.adapters import HTTPAdapter
from requests.exceptions import RequestException
from urllib3 import PoolManager, Retry
from urllib3.util.ssl_ import create_urllib3_context

from workload.engine.engines import Engine
from workload.engine.tls_sessions import ResumingPoolManager, TlsSessionCache
from workload.errors import TlsFileError
from workload.scenario.schema import Policy
from workload.telemetry.connections import COUNTING_POOL_CLASSES

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs  # types-requests' names for these dicts

Verify = bool | str
Cert = str | tuple[str, str] | None
_TLS_KWARGS: tuple[Literal["ca_certs", "ca_cert_dir", "cert_file", "key_file"], ...] = (
    "ca_certs", "ca_cert_dir", "cert_file", "key_file")
# Headers still sent to an undeclared host when the scenario allows following redirects there:
# protocol headers only, never the scenario's own (X-Api-Key, Authorization, Cookie, ...).
OFFSITE_HEADERS = frozenset({"user-agent", "accept", "accept-encoding", "connection", "content-type",
                             "content-length", "transfer-encoding"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, int]


def make_ssl_context(verify: Verify, cert: Cert) -> ssl.SSLContext:
    """One context for all of a policy's TLS connections: CA store and client cert loaded once."""
    context = create_urllib3_context()
    if verify is False:
        context.check_hostname = False  # must precede CERT_NONE, or ssl raises
        context.verify_mode = ssl.CERT_NONE
    else:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_trust(context, verify)
    if cert:
        certfile, keyfile = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(certfile, keyfile)
    return context


def _load_trust(context: ssl.SSLContext, verify: Verify) -> None:
    if isinstance(verify, str):
        if os.path.isdir(verify):
            context.load_verify_locations(capath=verify)
        else:
            context.load_verify_locations(cafile=verify)
        return
    # The same trust store requests would use (certifi), so behaviour matches an untuned client.
    from requests.utils import DEFAULT_CA_BUNDLE_PATH

    context.load_verify_locations(cafile=DEFAULT_CA_BUNDLE_PATH)


class RedirectOffsite(RequestException):
    """A redirect to a host the scenario does not declare: not followed (cause `redirect_offsite`)."""

    workload_fault = True  # our own bounded message, kept as written in the error row


def origin_of(url: str) -> Origin | None:
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    return parts.hostname.lower(), port


@dataclass(frozen=True)
class HostGate:
    """Declared hosts only: what a request to any other host may do."""

    declared: frozenset[Origin]
    follow_offsite: bool = False

    def with_host(self, url: str | None) -> HostGate:
        origin = origin_of(url or "")
        return self if origin is None else HostGate(self.declared | {origin}, self.follow_offsite)

    def check(self, request: Any) -> None:
        refusal = self.refusal(request.url)
        if refusal is not None:
            raise RedirectOffsite(refusal, request=request)
        if self.offsite(request.url):
            for name in [k for k in request.headers if k.lower() not in OFFSITE_HEADERS]:
                del request.headers[name]

    def offsite(self, url: str) -> bool:
        origin = origin_of(url)
        return origin is not None and origin not in self.declared

    def refusal(self, url: str) -> str | None:
        """The error text when a request to `url` must not be sent at all."""
        return self.refusal_for(origin_of(url))

    def refusal_for(self, origin: Origin | None) -> str | None:
        if origin is None or origin in self.declared or self.follow_offsite:
            return None
        return (f"redirect_offsite: not following a redirect to {origin[0]}:{origin[1]}, a host the scenario "
                "does not declare (declare it in target.hosts, or set target.follow_offsite_redirects: true)")


def make_gate(urls: list[str], follow_offsite: bool) -> HostGate:
    return HostGate(frozenset(o for o in map(origin_of, urls) if o is not None), follow_offsite)


def retry_of(policy: Policy) -> Retry:
    spec = policy.retries
    # read=False as Locust does: a read error on a non-idempotent request must not be replayed.
    return Retry(total=spec.total, backoff_factor=spec.backoff_factor,
                 status_forcelist=spec.status_forcelist or None, read=False, raise_on_status=False)


class TunedAdapter(LocustHttpAdapter):
    """A `LocustHttpAdapter` with the policy's pool settings, counting and SSL-context sharing."""

    def __init__(self, policy: Policy, ssl_context: ssl.SSLContext | None,
                 pool_manager: PoolManager | None = None, gate: HostGate | None = None,
                 tls_sessions: TlsSessionCache | None = None):
        self._ssl_context = ssl_context
        self.tls_sessions = tls_sessions  # set before super().__init__, which builds the pool manager
        self._owns_pool = pool_manager is None
        self._close = policy.type == "close"
        self._gate = gate
        # Note: with a shared pool_manager, LocustHttpAdapter ignores the pool_* arguments;
        # the process-scope manager is built with them instead (make_process_pool).
        super().__init__(pool_manager=pool_manager, pool_connections=policy.pool_connections,
                         pool_maxsize=policy.pool_maxsize, pool_block=policy.pool_block,
                         max_retries=retry_of(policy))

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self._own_connection_header(request.headers)
        if self._gate is not None:
            self._gate.check(request)  # every hop of a redirect chain passes here
        return super().send(request, *args, **kwargs)

    def _own_connection_header(self, headers: Any) -> None:
        own_connection_header(headers, self._close)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        if self.poolmanager is None and self.tls_sessions is not None:
            # What HTTPAdapter.init_poolmanager does, with a manager whose HTTPS pools resume.
            self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
            self.poolmanager = ResumingPoolManager(self.tls_sessions, num_pools=connections, maxsize=maxsize,
                                                   block=block, **kwargs)
            return
        super().init_poolmanager(connections, maxsize, block, **kwargs)
        if not isinstance(self.poolmanager, ResumingPoolManager):  # a process pool keeps its classes
            self.poolmanager.pool_classes_by_scheme = COUNTING_POOL_CLASSES

    def close(self) -> None:
        if self._owns_pool and self.poolmanager is not None:
            close_pools(self.poolmanager)  # a fresh Session's connection closes now, not at garbage collection
        super().close()

    def cert_verify(self, conn: Any, url: str, verify: Verify, cert: Cert) -> None:
        if self._ssl_context is None:
            HTTPAdapter.cert_verify(self, conn, url, verify, cert)  # stock: CA file loaded per connection
            return
        # Trust and client cert already live in the shared context; loading them again here
        # would re-read files for every new connection.
        conn.cert_reqs = "CERT_REQUIRED" if url.lower().startswith("https") and verify else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = conn.cert_file = conn.key_file = None

    def build_connection_pool_key_attributes(self, request: Any, verify: Verify,
                                             cert: Cert = None) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = HTTPAdapter.build_connection_pool_key_attributes(self, request, verify, cert)
        if self._ssl_context is not None and host_params["scheme"] == "https":
            for key in _TLS_KWARGS:
                pool_kwargs.pop(key, None)
            pool_kwargs["ssl_context"] = self._ssl_context
        return host_params, pool_kwargs


def own_connection_header(headers: Any, close: bool) -> None:
    """The policy owns `Connection`, whatever target/request headers say: session and
    request headers are merged after the policy installs its own."""
    if close:
        headers["Connection"] = "close"
    elif "close" in headers.get("Connection", "").lower():
        headers["Connection"] = "keep-alive"


def policy_ssl_context(name: str, verify: Verify, cert: Cert) -> ssl.SSLContext:
    """`make_ssl_context`, with unreadable TLS files reported as the policy's `TlsFileError`."""
    try:
        return make_ssl_context(verify, cert)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(f"policy '{name}': cannot load the TLS files (verify={verify!r}, cert={cert!r}): "
                           f"{exc}",
                           fix="give PEM files (a CA bundle for verify, certificate and key for cert)") from exc


def make_process_pool(policy: Policy) -> PoolManager:
    """One pool for every user of this process (like Locust's `pool_manager`), tuned and counting."""
    sizes: dict[str, Any] = {"num_pools": policy.pool_connections, "maxsize": policy.pool_maxsize,
                             "block": policy.pool_block}
    if policy.tls_resumption:
        return ResumingPoolManager(TlsSessionCache(), **sizes)  # one cache: the process is one client
    manager = PoolManager(**sizes)
    manager.pool_classes_by_scheme = COUNTING_POOL_CLASSES
    return manager


class PolicyTransport(Engine):
    """The `requests` engine: per-policy connection behaviour, shared by all users of one compiled class."""

    engine = "requests"

    def __init__(self, name: str, policy: Policy, verify: Verify, cert: Cert, gate: HostGate | None = None):
        if verify is False:
            # The scenario chose not to verify (a self-signed test target): say it once in the
            # docs, not once per request in the log.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        super().__init__(name, policy, verify, cert, gate)
        shared = policy.ssl_context == "shared"
        self.ssl_context = policy_ssl_context(name, verify, cert) if shared else None
        self.process_pool = make_process_pool(policy) if policy.scope == "process" else None

    @property
    def request_options(self) -> dict[str, Any]:
        return {"timeout": self.timeout}

    def new_client(self, user: Any) -> HttpSession:
        # What Locust's HttpUser builds, then the policy's adapters on it.
        session = HttpSession(base_url=user.host, request_event=user.environment.events.request, user=user)
        session.trust_env = False  # REQUESTS_CA_BUNDLE & co. would override `verify` (psf/requests#3829)
        self.install(session)
        return session

    def new_adapter(self, base_url: str | None = None, tls_sessions: TlsSessionCache | None = None) -> TunedAdapter:
        gate = self.gate.with_host(base_url) if self.gate is not None else None  # --host may differ
        return TunedAdapter(self.policy, self.ssl_context, self.process_pool, gate, tls_sessions)

    def install(self, session: HttpSession, tls_sessions: TlsSessionCache | None = None) -> None:
        """Mount the policy's adapter; with tls_resumption, a new user's own session cache unless given."""
        if tls_sessions is None and self.policy.tls_resumption and self.process_pool is None:
            tls_sessions = TlsSessionCache()
        adapter = self.new_adapter(getattr(session, "base_url", None), tls_sessions)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        if self.kind == "close":
            # The server closes after answering, so TIME_WAIT lands on the server side.
            session.headers["Connection"] = "close"

    def session_for(self, user: Any) -> HttpSession:
        """The session the next request goes through."""
        if self.kind != "fresh":
            return user.client
        fresh = HttpSession(base_url=user.host, request_event=user.environment.events.request, user=user)
        _share_identity(user.client, fresh)
        self.install(fresh, tls_sessions_of(user.client))  # the user's TLS sessions outlive the Session
        return fresh

    def after_request(self, user: Any, session: HttpSession, state: RecycleState) -> None:
        if session is not user.client:
            session.close()  # fresh: the client closes first, so TIME_WAIT lands on the client side
        elif self.kind == "recycle" and state.due(self.policy):
            drop_connections(session)


def _share_identity(source: HttpSession, target: HttpSession) -> None:
    target.trust_env = False
    target.cookies = source.cookies  # the same jar: cookies set by this response stay with the user
    target.headers = source.headers
    target.auth = source.auth
    target.verify = source.verify
    target.cert = source.cert


def tls_sessions_of(session: HttpSession) -> TlsSessionCache | None:
    """The TLS session cache of a session's adapter (None without tls_resumption)."""
    return getattr(session.get_adapter("https://"), "tls_sessions", None)


def drop_connections(session: HttpSession) -> None:
    for adapter in session.adapters.values():
        close_pools(cast(HTTPAdapter, adapter).poolmanager)  # requests' adapters and ours are all HTTPAdapters


def close_pools(manager: PoolManager) -> None:
    """Close every pool's idle connections now, then forget the pools.

    urllib3 2.7's `PoolManager.clear()` only forgets them (its pool container has no dispose
    function): their connections would close whenever the garbage collector finalizes the pool,
    so "the client closes after each request" would happen at some later, unmeasured moment."""
    for key in list(manager.pools.keys()):
        pool = manager.pools.get(key)
        if pool is not None:
            pool.close()
    manager.clear()


class RecycleState:
    """Counts requests and age of a user's connections for the recycle policy."""

    __slots__ = ("requests", "since", "clock")

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.requests = 0
        self.since = clock()

    def due(self, policy: Policy) -> bool:
        self.requests += 1
        now = self.clock()
        by_count = policy.every_requests is not None and self.requests >= policy.every_requests
        by_age = policy.every_seconds is not None and now - self.since >= policy.every_seconds
        if by_count or by_age:
            self.requests, self.since = 0, now
            return True
        return False
