"""Engines: the seam between a connection policy and the HTTP client library that carries it out.

A policy (`shared`, `close`, `fresh`, `recycle`; pool size, scope, timeouts, retries, TLS) means
the same on every engine; the engine (`policy.engine`) only chooses the library:

  requests  `workload.engine.transport.PolicyTransport`: Locust's HttpSession, tuned urllib3 adapters
  fast      `workload.engine.fast.FastEngine`: Locust's FastHttpSession on geventhttpclient
  httpx     `workload.engine.httpxengine.HttpxEngine` (HTTP/1.1 or, with `http2: true`, HTTP/2)

The contract: what an engine (a subclass of `Engine`) must provide
--------------------------------------------------------------------
One `Engine` object per compiled user class (per scenario x policy), built by `make_engine` and
shared by all of that class's users in the process.

* `new_client(user)` -> the user's own client, kept as `user.client`.  It quacks like a
  `requests.Session` for the user's identity, which logins, captures and target settings write:
  `headers` (a case-insensitive mutable mapping sent with every request), `cookies` (a
  `requests.cookies.RequestsCookieJar`: `.get(name)`, `.set(name, value, domain=, path=, secure=)`,
  and it receives the response's cookies), `auth` ((user, password) or None: HTTP basic on every
  request), `verify` / `cert` (assigned from the target; an engine may ignore them, as its TLS
  lives in its one SSL context per policy).
* The client's `request(method, url, name=, catch_response=, params=, headers=, json=, data=,
  allow_redirects=, **engine.request_options)` sends one request (`url` a path under the user's
  host or an absolute URL) and fires Locust's `request` event exactly once, as Locust's own
  sessions do (so stats, errors and the recorder are the same on every engine).  With
  `catch_response=True` it returns a context manager with `status_code` (0: no response, the
  exception already recorded), `request_meta`, `success()` and `failure(message)`.
* `judgeable(response)` -> an object `workload.plan.checks.ParsedResponse` can judge (the
  `checks.Response` protocol: `status_code`, case-insensitive `headers.get`, `cookies.get`, `text`
  (str), `json()` raising ValueError on a non-JSON body).
* `session_for(user)` -> the client the next request goes through: `user.client`, or for
  `fresh` a NEW client per request that shares the user's cookies, headers and auth (the same jar
  and mapping objects, so what a response sets stays with the user).
* `after_request(user, session, state)` after every request, even a failed one: close a fresh
  client (the client closes first: TIME_WAIT on the client side); under `recycle`, when
  `state.due(policy)` (every N requests or T seconds per user), drop the user's connections.
* Policy semantics an engine must keep, proven by tests/engine/test_engines_ground_truth.py and
  tests/telemetry/test_ground_truth.py: `shared` keeps at most `pool_maxsize` connections per user
  and host (`scope: process`: one pool for every user of the process); `close` sends
  `Connection: close` whatever the scenario's headers say and never reuses the connection (the
  server closes first); `shared` never sends `Connection: close`; retries only when the policy asks;
  `timeout` bounds connect and read; one SSL context per policy (the CA store is loaded once).
* The host gate (`transport.HostGate`), on every hop of a redirect chain: a request to a host the
  scenario does not declare fails with cause `redirect_offsite`, or, when the scenario allows it,
  is sent without any header outside `transport.OFFSITE_HEADERS` (no cookies, keys, credentials).
* Counters into `workload.telemetry.connections.STATS`: every TCP connect when it completes,
  TLS handshakes completed / failed, setup time (TCP + TLS) per connection, connect errors, and
  the pool's discards (a connection dropped because the pool is full) or waits (a request that
  waited for a free connection).  Requests per connection follow from the stats.
* A setting the engine cannot honour is a located validation error
  (`workload.scenario.schema.ENGINE_LIMITS`), never a silent difference.

Imports locust only through the engines it loads: `make_engine` imports an engine's module on first use.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from workload.errors import WorkloadError
from workload.scenario.schema import Policy

# engine name -> "module:class"; imported on first use, so an unused engine's library is never loaded.
ENGINE_CLASSES: dict[str, str] = {
    "requests": "workload.engine.transport:PolicyTransport",
    "fast": "workload.engine.fast:FastEngine",
    "httpx": "workload.engine.httpxengine:HttpxEngine",
}
Verify = bool | str
Cert = str | tuple[str, str] | None


class Engine(ABC):
    """One policy on one client library, shared by all users of one compiled class."""

    engine: ClassVar[str]

    def __init__(self, name: str, policy: Policy, verify: Verify, cert: Cert, gate: Any = None):
        self.name = name
        self.policy = policy
        self.kind = policy.type
        self.timeout = timeout_of(policy)
        self.gate = gate  # transport.HostGate, or None (no declared-hosts rule: tests only)

    @property
    def request_options(self) -> dict[str, Any]:
        """Extra keyword arguments for every `client.request` (requests: the timeout)."""
        return {}

    @abstractmethod
    def new_client(self, user: Any) -> Any:
        """The user's own client (`user.client`), its identity empty."""

    @abstractmethod
    def session_for(self, user: Any) -> Any:
        """The client the next request goes through."""

    @abstractmethod
    def after_request(self, user: Any, session: Any, state: Any) -> None:
        """Close a fresh client; drop the user's connections when recycle is due."""

    def judgeable(self, response: Any) -> Any:
        """`response` as `workload.plan.checks.ParsedResponse` expects it."""
        return response


def timeout_of(policy: Policy) -> tuple[float, float]:
    """(connect, read) seconds."""
    return (policy.timeout.connect, policy.timeout.read)


def retry_total(policy: Policy) -> int:
    return policy.retries.total


def engine_class(name: str) -> type[Engine]:
    try:
        module, _, cls = ENGINE_CLASSES[name].partition(":")
        found: type[Engine] = getattr(importlib.import_module(module), cls)
    except (KeyError, ImportError, AttributeError) as exc:
        raise WorkloadError(f"engine '{name}' is not available in this build ({exc})",
                            fix=f"use one of: {', '.join(n for n in ENGINE_CLASSES if _loads(n))}") from exc
    return found


def _loads(name: str) -> bool:
    try:
        importlib.import_module(ENGINE_CLASSES[name].partition(":")[0])
    except ImportError:
        return False
    return True


def make_engine(name: str, policy: Policy, verify: Verify, cert: Cert, gate: Any = None) -> Engine:
    """The engine object for policy `name` (`policy.engine` chooses the library)."""
    return engine_class(policy.engine)(name, policy, verify, cert, gate)
