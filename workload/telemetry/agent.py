"""Server agent: the target host's own socket table, sampled there and handed to a run over HTTP.

A load generator on another host cannot see the server's sockets (its table holds only the
client's), so a run against a remote target reports the server side as not observable.
`workload agent --port 8080` on the target host makes it measurable: a run whose scenario
declares `target.agent` starts a sampling session there when it starts (the agent samples the
server side of the run's endpoints, baseline excluded, like the run's own sampler) and
collects its figures when it ends.

* Bounded: only the ports given with `--port`; at most `MAX_SESSIONS` sessions at once, each
  ended after `--max-seconds`; request bodies of at most `MAX_BODY` bytes.
* Read-only: a session only reads the kernel's socket table; answers carry counts, never
  addresses of peers, process data or secrets.
* Authenticated: every request carries `X-Workload-Agent-Auth: <unix time>.<HMAC-SHA256>` over
  the time, method, path and body, keyed with `WORKLOAD_AGENT_KEY` (the key itself never
  travels); a request older or newer than `MAX_SKEW_S` is refused, as is a wrong signature.
* Binds loopback unless `--bind` names another address.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from workload.errors import TelemetryError
from workload.telemetry.sampler import SocketSampler
from workload.telemetry.socktable import Endpoint

KEY_ENV = "WORKLOAD_AGENT_KEY"
AUTH_HEADER = "X-Workload-Agent-Auth"
KEY_FIX = f"set {KEY_ENV} to the same secret (16+ characters, e.g. from `workload cluster-key`) on both hosts"
MIN_KEY_CHARS = 16
MAX_SKEW_S = 60.0
MAX_SESSIONS = 4
MAX_BODY = 4096
MAX_ENDPOINTS = 16
DEFAULT_MAX_SECONDS = 3600.0
DEFAULT_BIND = "127.0.0.1"
DEFAULT_AGENT_PORT = 9107
CLIENT_TIMEOUT_S = 10.0
SERVER_KEYS = ("time_wait_server", "established_server")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def agent_key(environ: Mapping[str, str] | None = None) -> bytes:
    value = (os.environ if environ is None else environ).get(KEY_ENV, "").strip()
    if len(value) < MIN_KEY_CHARS:
        raise TelemetryError(f"{KEY_ENV} is not set (or shorter than {MIN_KEY_CHARS} characters)", fix=KEY_FIX)
    return value.encode("utf-8")


def signature(key: bytes, stamp: str, method: str, path: str, body: bytes) -> str:
    message = "\n".join((stamp, method, path, hashlib.sha256(body).hexdigest())).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def auth_value(key: bytes, method: str, path: str, body: bytes, now: float | None = None) -> str:
    stamp = str(int(time.time() if now is None else now))
    return f"{stamp}.{signature(key, stamp, method, path, body)}"


def authentic(key: bytes, header: str | None, method: str, path: str, body: bytes, now: float | None = None) -> bool:
    stamp, _, mac = (header or "").partition(".")
    if not stamp.isdigit() or abs((time.time() if now is None else now) - int(stamp)) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(mac, signature(key, stamp, method, path, body))


# -- the agent ----------------------------------------------------------------------------------
@dataclass
class Session:
    sampler: SocketSampler
    ends_at: float


@dataclass
class Agent:
    """The sessions of one agent process (thread-safe)."""

    key: bytes
    ports: frozenset[int]
    max_seconds: float = DEFAULT_MAX_SECONDS
    sessions: dict[str, Session] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoints(self, data: Any) -> list[Endpoint]:
        wanted = data.get("endpoints") if isinstance(data, dict) else None
        if not isinstance(wanted, list) or not 0 < len(wanted) <= MAX_ENDPOINTS:
            raise ValueError(f"'endpoints' must be a list of 1 to {MAX_ENDPOINTS} IP:PORT texts")
        endpoints = [Endpoint.parse(str(text)[:64]) for text in wanted]
        if refused := sorted({e.port for e in endpoints} - self.ports):
            raise ValueError(f"port(s) {refused} not served by this agent (it serves {sorted(self.ports)})")
        return endpoints

    def start(self, data: Any) -> dict[str, Any]:
        endpoints = self.endpoints(data)
        self.expire()
        with self.lock:
            if len(self.sessions) >= MAX_SESSIONS:
                raise OverflowError(f"{MAX_SESSIONS} sessions are running already")
            sampler = SocketSampler(endpoints, server_side_observable=True, mode="thread")
            sampler.start()
            ident = secrets.token_hex(16)
            self.sessions[ident] = Session(sampler, time.monotonic() + self.max_seconds)
        return {"id": ident, "host": socket.gethostname()}

    def stop(self, ident: str) -> dict[str, Any] | None:
        with self.lock:
            session = self.sessions.pop(ident, None)
        if session is None:
            return None
        section = session.sampler.stop()
        return {"sockets": server_figures(section), "host": socket.gethostname()}

    def expire(self) -> None:
        now = time.monotonic()
        with self.lock:
            done = [ident for ident, s in self.sessions.items() if s.ends_at < now]
            stale = [self.sessions.pop(ident) for ident in done]
        for session in stale:
            session.sampler.stop()

    def close(self) -> None:
        with self.lock:
            stale, self.sessions = list(self.sessions.values()), {}
        for session in stale:
            session.sampler.stop()


def server_figures(section: Mapping[str, Any]) -> dict[str, Any]:
    """What an agent hands out: the server-side counts, how they were read, nothing else."""
    figures = {key: section.get(key) for key in SERVER_KEYS}
    figures.update(samples=section.get("samples"), source=section.get("source"))
    if section.get("error"):
        figures["error"] = str(section["error"])[:500]
    return figures


class _Handler(BaseHTTPRequestHandler):
    server_version = "workload-agent"
    agent: Agent  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (http.server's name)
        return  # quiet: one line per request would flood a long run's log

    def _answer(self, status: int, data: Mapping[str, Any]) -> None:
        body = json.dumps(data).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 <= length <= MAX_BODY:
            return self._answer(413, {"error": f"body larger than {MAX_BODY} bytes"})
        body = self.rfile.read(length)
        if not authentic(self.agent.key, self.headers.get(AUTH_HEADER), "POST", self.path, body):
            return self._answer(401, {"error": f"not authenticated (check {KEY_ENV} and the clocks)"})
        try:
            self._route(body)
        except (ValueError, TelemetryError) as exc:
            self._answer(400, {"error": str(exc)[:500]})
        except OverflowError as exc:
            self._answer(429, {"error": str(exc)})

    def _route(self, body: bytes) -> None:
        if self.path == "/v1/sessions":
            return self._answer(201, self.agent.start(json.loads(body or b"{}")))
        prefix, _, ident = self.path.rpartition("/")
        if prefix == "/v1/sessions/stop":
            result = self.agent.stop(ident)
            return self._answer(200, result) if result else self._answer(404, {"error": "no such session"})
        self._answer(404, {"error": "unknown path"})


def serve(agent: Agent, bind: str, port: int) -> ThreadingHTTPServer:
    """The agent's HTTP server, bound (not yet serving: call serve_forever)."""
    handler = type("AgentHandler", (_Handler,), {"agent": agent})
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    server_class = type("AgentServer", (ThreadingHTTPServer,), {"address_family": family, "daemon_threads": True})
    return server_class((bind, port), handler)


# -- the run's side -----------------------------------------------------------------------------
class AgentClient:
    """One run's session on a server agent."""

    def __init__(self, url: str, key: bytes | None = None) -> None:
        self.url = url.rstrip("/")
        self.key = agent_key() if key is None else key
        self.session: str | None = None

    def _post(self, path: str, data: Mapping[str, Any]) -> dict[str, Any]:
        body = json.dumps(data).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=body, method="POST", headers={
            "Content-Type": "application/json", AUTH_HEADER: auth_value(self.key, "POST", path, body)})
        try:
            with _OPENER.open(request, timeout=CLIENT_TIMEOUT_S) as response:
                return dict(json.loads(response.read(65536)))
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace")
            raise TelemetryError(f"server agent {self.url} answered {exc.code}: {detail}") from exc
        except (OSError, ValueError) as exc:
            raise TelemetryError(f"server agent {self.url} unreachable: {exc}") from exc

    def start(self, endpoints: Iterable[Endpoint | str]) -> None:
        answer = self._post("/v1/sessions", {"endpoints": [str(e) for e in endpoints]})
        self.session = str(answer["id"])

    def stop(self) -> dict[str, Any]:
        """The server-side figures of the session (its `sockets` part)."""
        if self.session is None:
            raise TelemetryError(f"no session on server agent {self.url}")
        session, self.session = self.session, None
        return dict(self._post(f"/v1/sessions/stop/{session}", {})["sockets"])


class RunServerSide:
    """Where a run's server-side socket figures come from: this host's own table (a local target),
    a server agent (`target.agent`), or nowhere (not observable).  Agent trouble never stops a
    run: the figures then stay unknown and `server_side_error` says why."""

    def __init__(self, url: str | None, endpoints: Iterable[Endpoint], local: bool) -> None:
        self.url, self.endpoints, self.local = url, tuple(endpoints), local
        self.client: AgentClient | None = None
        self.error: str | None = None

    def start(self) -> None:
        if self.url is None or self.local:
            return
        try:
            client = AgentClient(self.url)
            client.start(self.endpoints)
            self.client = client
        except TelemetryError as exc:
            self.error = str(exc)

    def finish(self, sockets: dict[str, Any]) -> dict[str, Any]:
        """The run's `sockets` section with the server side filled in and its origin named."""
        sockets = {**sockets, "server_side": "client host" if self.local else None}
        if self.url is None or self.local:
            return sockets
        sockets["server_agent"] = self.url
        if self.client is not None:
            try:
                figures = self.client.stop()
            except TelemetryError as exc:
                self.error = str(exc)
            else:
                sockets.update({key: figures.get(key) for key in SERVER_KEYS})
                sockets.update(server_side_observable=True, server_side="agent")
                if figures.get("error"):
                    self.error = f"server agent: {figures['error']}"
        if self.error:
            sockets["server_side_error"] = self.error
        return sockets
