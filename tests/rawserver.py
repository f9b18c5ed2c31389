"""A raw loopback TCP server for tests: answers each request with bytes a test chooses.

Used where the demo target cannot misbehave on purpose (garbage status lines, bodies shorter
than their Content-Length) or where a second, "foreign" host is needed.  It binds to a
loopback address only, port 0, and records what it received so a test can assert on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.server import StreamServer

READ_TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 65536


@dataclass
class RawServer:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    def headers_seen(self) -> str:
        return b"".join(self.requests).decode("latin-1").lower()


def http_response(body: bytes, status: str = "200 OK", headers: dict[str, str] | None = None,
                  length: int | None = None) -> bytes:
    """An HTTP/1.1 response that closes; `length` overrides Content-Length (e.g. a truncated body)."""
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body) if length is None else length}",
             "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextmanager
def raw_server(respond: Callable[[int], bytes], host: str = "127.0.0.1") -> Iterator[RawServer]:
    """Serve on `host`:0; `respond(n)` gives the bytes for the n-th request (then the socket closes)."""
    assert host.startswith("127."), "tests talk to loopback only"
    state: dict[str, Any] = {}

    def handle(sock: Any, _address: Any) -> None:
        server_state: RawServer = state["server"]
        number = server_state.connections
        server_state.connections += 1
        sock.settimeout(READ_TIMEOUT_S)
        try:
            data = sock.recv(MAX_REQUEST_BYTES)
            server_state.requests.append(data)
            sock.sendall(respond(number))
        except OSError:
            pass
        finally:
            sock.close()

    server = StreamServer((host, 0), handle)
    server.start()
    state["server"] = RawServer(url=f"http://{host}:{server.server_port}")
    try:
        yield state["server"]
    finally:
        server.stop(timeout=2)
        gevent.sleep(0)
