"""HTTP/2 for the demo target: one accepted connection served as HTTP/2 on gevent.

The demo target negotiates HTTP/2 by ALPN on its https listener (``h2`` preferred,
``http/1.1`` as the fallback, so HTTP/1.1-only clients keep the pywsgi path unchanged) and,
with ``--h2c``, accepts prior-knowledge cleartext HTTP/2 on its http listener.  Either way the
connection was already counted by `workload.demo.server.CountingWSGIServer.handle`, so accepts
stay exact; this module only speaks the protocol.

The wire format is the `h2` library's state machine (the one hypercorn uses).  Hypercorn
itself was not used: it runs on asyncio or trio, not gevent, so it could not share this
process's hub, listeners, counters and app state, and it accepts only after the TLS
handshake.  Each request stream runs the same WSGI app in its own greenlet, so slow requests
on one connection do not hold up the others (multiplexing); writes to the connection are
serialised by a lock, and response bodies respect the peer's flow-control windows.
"""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

import gevent
import gevent.event
import gevent.lock
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from workload.demo.app import RESET_ENVIRON_KEY

#: What a prior-knowledge HTTP/2 client sends first (RFC 9113 section 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ALPN_PROTOCOLS = ["h2", "http/1.1"]
READ_SIZE = 65_536
WINDOW_WAIT_S = 30.0  # a client that never opens its window loses the stream, not a greenlet forever
MAX_BODY_BYTES = 16 * 1024 * 1024  # a request body larger than this resets the stream
# Hop-by-hop headers are illegal in HTTP/2 (RFC 9113 8.2.2); the app may still set them for HTTP/1.1.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def is_preface(sock: Any) -> bool:
    """Whether the client's first bytes are the HTTP/2 preface (peeked: nothing is consumed)."""
    seen = b""
    while len(seen) < len(PREFACE):
        seen = sock.recv(len(PREFACE), socket.MSG_PEEK)
        if not seen or not PREFACE.startswith(seen):
            return False
        if len(seen) < len(PREFACE):
            gevent.sleep(0.001)  # the rest of the preface is still in flight
    return True


class H2Connection:
    """One HTTP/2 connection: read frames, run each request stream, write responses."""

    def __init__(self, sock: Any, address: Any, app: WsgiApp, environ: dict[str, Any],
                 on_reset: Callable[[Any], None]) -> None:
        self.sock = sock
        self.address = address
        self.app = app
        self.base_environ = environ
        self.on_reset = on_reset
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.lock = gevent.lock.RLock()
        self.window_open = gevent.event.Event()
        self.requests: dict[int, tuple[list[tuple[str, str]], io.BytesIO]] = {}
        self.streams: list[gevent.Greenlet] = []
        self.closed = False

    def serve(self) -> None:
        self.conn.initiate_connection()
        self.flush()
        try:
            while not self.closed:
                data = self.sock.recv(READ_SIZE)
                if not data:
                    break
                self.handle_events(self.conn.receive_data(data))
                self.flush()
        except (OSError, h2.exceptions.ProtocolError):
            pass  # the peer went away or broke the protocol: nothing left to answer
        finally:
            self.closed = True
            self.window_open.set()
            gevent.killall(self.streams, block=False)
            with contextlib.suppress(OSError):
                self.sock.close()

    def flush(self) -> None:
        with self.lock:
            data = self.conn.data_to_send()
            if data and not self.closed:
                self.sock.sendall(data)

    def handle_events(self, events: list[h2.events.Event]) -> None:
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = [(str(k), str(v)) for k, v in event.headers or ()]
                self.requests[event.stream_id] = (headers, io.BytesIO())
            elif isinstance(event, h2.events.DataReceived):
                self._body(event)
            elif isinstance(event, h2.events.StreamEnded):
                self._start(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.requests.pop(event.stream_id, None)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self.window_open.set()
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.closed = True

    def _body(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        self.conn.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
        entry = self.requests.get(stream_id)
        if entry is None:
            return
        entry[1].write(event.data or b"")
        if entry[1].tell() > MAX_BODY_BYTES:
            self.requests.pop(stream_id)
            self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)

    def _start(self, stream_id: int | None) -> None:
        entry = self.requests.pop(stream_id or 0, None)
        if stream_id is not None and entry is not None:
            self.streams.append(gevent.spawn(self._respond, stream_id, *entry))

    def _respond(self, stream_id: int, headers: list[tuple[str, str]], body: io.BytesIO) -> None:
        environ = self._environ(headers, body)
        status: list[str] = []
        response_headers: list[tuple[str, str]] = []

        def start_response(status_line: str, header_list: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [status_line]
            response_headers[:] = header_list
            return lambda chunk: None  # the legacy write() callable: unused by Flask

        result = self.app(environ, start_response)
        try:
            if environ.get(RESET_ENVIRON_KEY):
                self.on_reset(self.sock)  # GET /reset: abort the whole connection, as on HTTP/1.1
                self.closed = True
                return
            self._send(stream_id, status[0], response_headers, b"".join(result))
        except (OSError, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            pass  # the stream or connection ended under us
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _environ(self, headers: list[tuple[str, str]], body: io.BytesIO) -> dict[str, Any]:
        pseudo = {k: v for k, v in headers if k.startswith(":")}
        path, _, query = pseudo.get(":path", "/").partition("?")
        environ = {**self.base_environ, "REQUEST_METHOD": pseudo.get(":method", "GET"),
                   "PATH_INFO": unquote(path, "latin-1"), "QUERY_STRING": query, "SCRIPT_NAME": "",
                   "SERVER_PROTOCOL": "HTTP/2", "REMOTE_ADDR": str(self.address[0]),
                   "REMOTE_PORT": str(self.address[1]), "HTTP_HOST": pseudo.get(":authority", ""),
                   "wsgi.version": (1, 0), "wsgi.input": io.BytesIO(body.getvalue()), "wsgi.errors": sys.stderr,
                   "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False}
        for name, value in headers:
            if name.startswith(":"):
                continue
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            elif key == "COOKIE" and "HTTP_COOKIE" in environ:
                environ["HTTP_COOKIE"] += "; " + value  # HTTP/2 may split cookies (RFC 9113 8.2.3)
            else:
                environ[f"HTTP_{key}"] = value
        return environ

    def _send(self, stream_id: int, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        fields = [(":status", status.split(" ", 1)[0])]
        fields += [(k.lower(), v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        with self.lock:
            self.conn.send_headers(stream_id, fields, end_stream=not body)
        self.flush()
        while body:
            body = self._send_chunk(stream_id, body)

    def _send_chunk(self, stream_id: int, body: bytes) -> bytes:
        """Send what the flow-control windows allow; the bytes still to send."""
        with self.lock:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                self.window_open.clear()  # no switch since the check: a WindowUpdated cannot be missed
            else:
                self.conn.send_data(stream_id, body[:window], end_stream=len(body) <= window)
        if window <= 0:
            if not self.window_open.wait(WINDOW_WAIT_S) or self.closed:
                raise OSError("the client did not open its flow-control window")
            return body
        self.flush()
        return body[window:]


def abort(sock: Any) -> None:
    """Close with an immediate RST (SO_LINGER 0), as the HTTP/1.1 handler does for ``GET /reset``."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def serve_h2(sock: Any, address: Any, app: WsgiApp, environ: dict[str, Any]) -> None:
    """Serve one connection as HTTP/2 until the peer closes it."""
    H2Connection(sock, address, app, environ, abort).serve()
