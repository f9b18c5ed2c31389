"""The demo target's server: one process, three gevent listeners, exact connection counts.

The *demo target* serves the Flask app from `workload.demo.app` on

* a plain **http** listener and an **https** listener (certificate for ``127.0.0.1``,
  ``localhost`` and ``::1`` issued at start by a throw-away `trustme` CA whose PEM path is
  announced), each counting accepted TCP connections, requests and open connections; https
  offers HTTP/2 by ALPN (``--no-http2``: HTTP/1.1 only) and http, with ``--h2c``, accepts
  prior-knowledge HTTP/2 (`workload.demo.h2server`), and
* an **admin** listener that serves only ``/__stats``, so reading the counters never adds
  to them.

Counting happens in `CountingWSGIServer.handle`, which gevent calls exactly once per
accepted socket, *before* the TLS handshake, so failed handshakes count too.

It only ever binds loopback addresses.  On startup it prints one JSON line to stdout::

    {"http": "http://127.0.0.1:P", "https": "https://127.0.0.1:Q", "admin": "http://127.0.0.1:R",
     "ca": "/tmp/workload-demo-.../ca.pem", "pid": N}

(``https`` and ``ca`` are null with ``--no-tls``) and human-readable lines to stderr.
SIGTERM or SIGINT stop it with exit code 0.  ``python -m workload.demo`` monkey-patches
first; `main` itself also works unpatched (gevent servers need no patching).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.pool
import trustme
from gevent import ssl as gssl
from gevent.pywsgi import WSGIHandler, WSGIServer

from workload.demo.app import RESET_ENVIRON_KEY, DemoState, ListenerCounters, create_admin_app, create_app
from workload.demo.h2server import ALPN_PROTOCOLS, is_preface, serve_h2
from workload.errors import ExitCode, TargetError, render_message

BACKLOG = 1024  # load tests open many connections at once; don't let SYNs queue-drop
HANDSHAKE_TIMEOUT_S = 10.0
STOP_GRACE_S = 0.5  # idle keep-alive connections would otherwise hold shutdown open
CERT_NAMES = ("127.0.0.1", "localhost", "::1")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DemoHandler(WSGIHandler):
    """pywsgi handler that can abort a connection with a TCP RST (for ``GET /reset``)."""

    _reset_requested = False

    def process_result(self) -> None:
        if self.environ and self.environ.get(RESET_ENVIRON_KEY):
            self._reset_requested = True  # write nothing; handle_one_request aborts
            return
        super().process_result()
        if self.close_connection and self.socket is not None:
            self._finish_sending()

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if self._reset_requested:
            self._abort_connection()
            return None  # ends pywsgi's keep-alive loop
        return result

    def _finish_sending(self) -> None:
        # Like nginx, send our FIN right behind the last response byte when the connection is
        # to close.  pywsgi closes only after its bookkeeping, and a fast client that has
        # already read the whole response usually closes first (moving TIME_WAIT to its side).
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)

    def _abort_connection(self) -> None:
        # SO_LINGER on with a 0 s timeout turns close() into an immediate RST.  The rfile
        # (a makefile) holds a reference to the socket; close it first so that close()
        # really releases the file descriptor instead of deferring it.
        self.close_connection = True
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.socket.close()


class CountingWSGIServer(WSGIServer):
    """WSGIServer counting every accepted connection; optionally terminates TLS itself."""

    handler_class = DemoHandler

    def __init__(
        self,
        listener: tuple[str, int],
        application: WsgiApp,
        counters: ListenerCounters,
        tls: gssl.SSLContext | None = None,
        h2c: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(listener, application, **kwargs)
        self.counters = counters
        self.tls = tls
        self.h2c = h2c  # prior-knowledge cleartext HTTP/2 (--h2c)

    def handle(self, sock: Any, address: Any) -> None:
        counters = self.counters
        counters.connections_accepted += 1
        counters.open_connections += 1
        # Responses go out in more than one write; with Nagle on, the second waits for the
        # client's delayed ACK (~40 ms on Linux) and every kept-alive request pays for it.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            stream = self._handshake(sock) if self.tls is not None else sock
            if stream is not None and self._speaks_h2(stream):
                counters.http2_connections += 1
                serve_h2(stream, address, self.application, self.get_environ())
            elif stream is not None:
                super().handle(stream, address)
        finally:
            counters.open_connections -= 1

    def _speaks_h2(self, stream: Any) -> bool:
        # HTTP/2 by ALPN on TLS; in cleartext only with --h2c and the client's preface.
        if self.tls is not None:
            return bool(stream.selected_alpn_protocol() == "h2")
        if not self.h2c:
            return False
        try:
            return is_preface(stream)
        except OSError:
            return False

    def _handshake(self, sock: Any) -> Any:
        # TLS is wrapped here rather than through WSGIServer's ssl_args so the connection is
        # counted before the handshake, and a failed handshake costs one greenlet, not a log.
        assert self.tls is not None
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            stream = self.tls.wrap_socket(sock, server_side=True)
        except OSError:
            sock.close()
            return None
        stream.settimeout(None)
        return stream


def counting_app(app: WsgiApp, counters: ListenerCounters) -> WsgiApp:
    """WSGI middleware counting requests per listener."""

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        counters.requests += 1
        return app(environ, start_response)

    return counted


@dataclass
class RunningTarget:
    """The started listeners and what to announce about them."""

    servers: list[WSGIServer]
    urls: dict[str, str | None]
    ca_dir: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        # Stop all listeners concurrently so the grace period is paid once, not per server.
        gevent.joinall([gevent.spawn(server.stop, timeout=STOP_GRACE_S) for server in self.servers])
        if self.ca_dir is not None:
            shutil.rmtree(self.ca_dir, ignore_errors=True)


def loopback_host(host: str) -> str | None:
    """The address to bind for ``host``, or None if it is not a loopback address."""
    if host == "localhost":
        return "127.0.0.1"  # decided here: never ask a resolver
    try:
        return host if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def make_tls_context(ca_dir: Path, http2: bool = True) -> tuple[gssl.SSLContext, Path]:
    """A server context with a fresh CA-signed certificate; the CA PEM written to ca_dir.

    With `http2`, ALPN offers h2 first and http/1.1 as the fallback: a client that offers
    only http/1.1 (requests, urllib3) or no ALPN at all gets the HTTP/1.1 path unchanged."""
    ca = trustme.CA()
    context = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    if http2:
        context.set_alpn_protocols(ALPN_PROTOCOLS)
    ca.issue_cert(*CERT_NAMES).configure_cert(context)
    ca_path = ca_dir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return context, ca_path


def _server(cls: type[WSGIServer], host: str, port: int, app: WsgiApp, scheme: str, **kwargs: Any) -> Any:
    # SERVER_NAME given up front: otherwise pywsgi calls getfqdn(), a resolver lookup.
    # A Pool (unbounded) tracks the connection greenlets so stop() can end them.
    environ = {"SERVER_NAME": host, "wsgi.url_scheme": scheme}
    return cls((host, port), app, backlog=BACKLOG, environ=environ, spawn=gevent.pool.Pool(), **kwargs)


def _public_server(state: DemoState, app: WsgiApp, name: str, host: str, port: int, **kwargs: Any) -> Any:
    """An http or https listener: the shared app, counted on this listener's counters."""
    counters = state.listeners[name]
    counted = counting_app(app, counters)
    return _server(CountingWSGIServer, host, port, counted, name, counters=counters, **kwargs)


def _add(target: RunningTarget, name: str, server: WSGIServer, host: str) -> None:
    """Bind and start one listener and record its URL."""
    try:
        server.start()
    except OSError as exc:
        where = f"{host} port {server.address[1]}"
        raise TargetError(f"cannot listen for {name} on {where}: {exc}", fix="choose another port") from exc
    target.servers.append(server)
    port = server.server_port
    assert port is not None, "a started server has a port"
    target.urls[name] = url("http" if name == "admin" else name, host, port)


def start_listeners(args: argparse.Namespace, host: str) -> RunningTarget:
    """Bind and start all listeners; a failure stops the ones already started."""
    state = DemoState()
    app = create_app(state)
    log = sys.stderr if args.access_log else None
    target = RunningTarget(servers=[], urls={"http": None, "https": None})
    try:
        _add(target, "http", _public_server(state, app, "http", host, args.port, log=log, h2c=args.h2c), host)
        if not args.no_tls:
            target.ca_dir = Path(tempfile.mkdtemp(prefix="workload-demo-"))
            context, ca_path = make_tls_context(target.ca_dir, http2=not args.no_http2)
            target.info["ca"] = str(ca_path)
            https = _public_server(state, app, "https", host, args.https_port, tls=context, log=log)
            _add(target, "https", https, host)
        admin = _server(WSGIServer, host, args.admin_port, create_admin_app(state), "http", log=None)
        _add(target, "admin", admin, host)
    except BaseException:
        target.close()
        raise
    return target


def announce(target: RunningTarget, ready_file: str | None) -> None:
    """Print the one JSON line (stdout) and the human-readable lines (stderr)."""
    info = {**target.urls, "ca": target.info.get("ca"), "pid": os.getpid()}
    line = json.dumps(info)
    print(line, flush=True)
    if ready_file:
        # Written whole then renamed, so a poller never reads half a line.
        tmp = f"{ready_file}.tmp"
        Path(tmp).write_text(line + "\n", encoding="utf-8")
        os.replace(tmp, ready_file)
    lines = [f"workload demo target (pid {info['pid']})", f"  http:  {info['http']}"]
    if info["https"]:
        lines.append(f"  https: {info['https']}  (CA certificate: {info['ca']})")
    lines += [f"  admin: {info['admin']}/__stats", "Stop with Ctrl-C or SIGTERM."]
    print("\n".join(lines), file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workload.demo",
        description="Run the workload demo target (loopback only): http, https and admin listeners.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="plain HTTP port (0 = any free port)")
    parser.add_argument("--https-port", type=int, default=0, help="HTTPS port (default 0 = any free port)")
    parser.add_argument("--admin-port", type=int, default=0, help="/__stats port (default 0 = any free port)")
    parser.add_argument("--no-tls", action="store_true", help="do not serve HTTPS (served by default)")
    parser.add_argument("--no-http2", action="store_true",
                        help="HTTPS offers only HTTP/1.1 (by default ALPN offers h2, with http/1.1 as the fallback)")
    parser.add_argument("--h2c", action="store_true",
                        help="the http listener also accepts prior-knowledge cleartext HTTP/2 (h2c)")
    parser.add_argument("--ready-file", help="also write the startup JSON line to this file")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the process that started us dies (used by the launcher)")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr (slower)")
    parser.add_argument("--allow-external-bind", action="store_true",
                        help="accept a non-loopback --host such as 0.0.0.0 (for a private container network only: "
                             "the demo target has no authentication)")
    return parser


PARENT_POLL_S = 1.0


def main(argv: list[str] | None = None) -> int:
    """Run the demo target until SIGTERM/SIGINT; returns the process exit code."""
    args = build_parser().parse_args(argv)
    host = loopback_host(args.host)
    if host is None and args.allow_external_bind:
        host = args.host  # asked for explicitly (docker-compose.yml): reachable from other machines
    if host is None:
        print(render_message(f"--host {args.host!r} is not a loopback address; the demo target only listens "
                             "on this machine.",
                             fix="use --host 127.0.0.1 (or ::1), or --allow-external-bind on a private network"),
              file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        target = start_listeners(args, host)
    except TargetError as exc:
        print(exc if exc.fix or exc.where else f"error: {exc}", file=sys.stderr)  # rendered, or a bare what
        return exc.exit_code
    try:
        # Handlers go in before the announcement: a launcher may SIGTERM right after it.
        announce_and_wait(target, args.ready_file, args.exit_with_parent)
    finally:
        target.close()
    return 0


def _watch_parent(parent: int, stop: gevent.event.Event) -> None:
    # The target runs in its own process group (so Ctrl-C reaches only its owner); if the
    # owner is killed outright it would be orphaned and keep its ports forever.
    while not stop.is_set():
        if os.getppid() != parent:
            stop.set()
            return
        gevent.sleep(PARENT_POLL_S)


def announce_and_wait(target: RunningTarget, ready_file: str | None, exit_with_parent: bool = False) -> None:
    stop = gevent.event.Event()
    handlers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGTERM, signal.SIGINT)]
    if exit_with_parent:
        gevent.spawn(_watch_parent, os.getppid(), stop)
    try:
        announce(target, ready_file)
        stop.wait()
    finally:
        for handler in handlers:
            handler.cancel()
