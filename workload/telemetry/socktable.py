"""Socket table: the kernel's list of TCP sockets, as printed in `/proc/net/tcp` and `/proc/net/tcp6`.

Each row is ``sl: LOCAL REMOTE ST ...`` where an address is ``HEXIP:HEXPORT``.  The IP is printed
as native-endian 32-bit words (``%08X`` of the in-memory value), so on x86 127.0.0.1 is
``0100007F`` and ::1 is ``00000000000000000000000001000000``; the port is plain big-endian hex.

The table is per network namespace, not per process, and TIME_WAIT rows have inode 0, so rows
are attributed to a run by *address*: a row is **client side** when its remote endpoint is a
target and **server side** when its local endpoint is a target.

`count_sockets` is the hot path (about once a second, on tables of tens of thousands of rows): it
never decodes a row; one precompiled regex per side finds the targets' hex forms, chunk by chunk,
and raw row slices are compared with the baseline.  `parse_table` is the slow, general decoder
for tests and debugging.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from workload.errors import TelemetryError

DEFAULT_TABLE_PATHS: Mapping[int, str] = {4: "/proc/net/tcp", 6: "/proc/net/tcp6"}
DEFAULT_PORTS: Mapping[str, int] = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Scans run on ~256 KiB (~1,700-row) spans: each regex call then holds the GIL well under 1 ms.
DEFAULT_CHUNK_CHARS = 1 << 18

# Full state map (include/net/tcp_states.h); the table prints the state as two hex digits.
TCP_STATES: Mapping[str, str] = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
    "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}
STATE_ESTABLISHED = "01"
STATE_TIME_WAIT = "06"

# Width of an ``IP:PORT`` token per address family (8 or 32 hex digits, a colon, 4 hex digits).
TOKEN_WIDTH: Mapping[int, int] = {4: 13, 6: 37}

# "host, port -> IP strings": how `endpoints_from_urls` turns a non-literal host into addresses.
Resolver = Callable[[str, int], Iterable[str]]
# Family (4 or 6) -> raw table text, as returned by `read_socket_tables`.
SocketTables = Mapping[int, str]
# A socket's identity as the table prints it: "LOCAL REMOTE ST" (raw hex slice of its row).
SocketIdentity = str
Pause = Callable[[], None]  # called between chunks of a scan (see `count_sockets`)


def _hex_words(packed: bytes) -> str:
    """Print an address the way the kernel does: each 32-bit word as a native-endian integer."""
    words = (int.from_bytes(packed[i : i + 4], sys.byteorder) for i in range(0, len(packed), 4))
    return "".join(f"{word:08X}" for word in words)


def _unhex_words(text: str) -> bytes:
    chunks = (int(text[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(text), 8))
    return b"".join(chunks)


@dataclass(frozen=True)
class Endpoint:
    """An IP address and TCP port.  IPv4-mapped IPv6 addresses are normalised to plain IPv4."""

    ip: str
    port: int

    def __post_init__(self) -> None:
        try:
            address = ipaddress.ip_address(self.ip)
        except ValueError as exc:
            raise TelemetryError(f"{self.ip!r} is not an IP address; fix: use e.g. 127.0.0.1 or ::1") from exc
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not 0 <= self.port <= 0xFFFF:
            raise TelemetryError(f"port {self.port} is out of range; fix: use 0..65535")
        object.__setattr__(self, "ip", str(address))

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse ``127.0.0.1:8080`` or ``[::1]:8080``."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise TelemetryError(f"{text!r} is not IP:PORT; fix: write 127.0.0.1:8080 or [::1]:8080")
        return cls(host.removeprefix("[").removesuffix("]"), int(port))

    @property
    def is_loopback(self) -> bool:
        return ipaddress.ip_address(self.ip).is_loopback

    def table_tokens(self) -> dict[int, str]:
        """The ``HEXIP:HEXPORT`` forms under which this endpoint appears, per table family."""
        packed = ipaddress.ip_address(self.ip).packed
        port = f":{self.port:04X}"
        if len(packed) == 16:
            return {6: _hex_words(packed) + port}
        # An IPv4 endpoint also shows up in tcp6 as ::ffff:a.b.c.d (dual-stack sockets).
        return {4: _hex_words(packed) + port, 6: _hex_words(b"\0" * 10 + b"\xff\xff" + packed) + port}

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def decode_address(token: str) -> Endpoint:
    """Decode one ``HEXIP:HEXPORT`` token from either table."""
    ip_hex, _, port_hex = token.partition(":")
    return Endpoint(str(ipaddress.ip_address(_unhex_words(ip_hex))), int(port_hex, 16))


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve a host name with the system resolver (may send DNS queries: opt-in only)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TelemetryError(f"cannot resolve {host!r}: {exc}; fix: use an IP address in the URL") from exc
    return [str(info[4][0]) for info in infos]


def _hosts_for(host: str, port: int, resolve: Resolver | None) -> list[str]:
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if resolve is None:
            raise TelemetryError(
                f"host {host!r} is not an IP address; fix: use an IP in the URL or pass "
                "resolve=system_resolver to look it up"
            ) from None
        return list(resolve(host, port))
    # Connecting to the unspecified address reaches the local host over loopback on Linux.
    if address.is_unspecified:
        return ["127.0.0.1" if address.version == 4 else "::1"]
    return [host]


def endpoints_from_urls(urls: Iterable[str], resolve: Resolver | None = None) -> tuple[Endpoint, ...]:
    """Target endpoints of base URLs: ``localhost`` is both 127.0.0.1 and ::1; default ports 80/443."""
    found: dict[Endpoint, None] = {}
    for url in urls:
        parts = urlsplit(url)
        try:
            port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
        except ValueError as exc:
            raise TelemetryError(f"bad port in URL {url!r}; fix: use a port in 1..65535") from exc
        if not parts.hostname or port is None:
            raise TelemetryError(f"cannot tell host and port of {url!r}; fix: write e.g. http://127.0.0.1:8080")
        for ip in _hosts_for(parts.hostname, port, resolve):
            found[Endpoint(ip, port)] = None
    return tuple(found)


@dataclass(frozen=True, slots=True)
class TableRow:
    """One decoded row of a socket table."""

    local: Endpoint
    remote: Endpoint
    state: str  # name from TCP_STATES, e.g. "TIME_WAIT"
    inode: int  # 0 for TIME_WAIT rows: they belong to no process any more


def parse_table(text: str, family: int) -> Iterator[TableRow]:
    """Decode every row of a `/proc/net/tcp` (family 4) or `/proc/net/tcp6` (family 6) text."""
    width = TOKEN_WIDTH[family]
    for line in text.splitlines()[1:]:  # first line is the column header
        fields = line.split()
        if len(fields) < 10 or len(fields[1]) != width:
            continue
        state = TCP_STATES.get(fields[3], f"UNKNOWN_{fields[3]}")
        yield TableRow(decode_address(fields[1]), decode_address(fields[2]), state, int(fields[9]))


@dataclass(frozen=True)
class SocketCounts:
    """Sockets of the targets by state and side (client: remote is a target; server: local is)."""

    tw_client: int = 0
    tw_server: int = 0
    est_client: int = 0
    est_server: int = 0


class _Matcher:
    """Precompiled patterns for one set of endpoints (built once, used on every sample)."""

    def __init__(self, endpoints: tuple[Endpoint, ...]) -> None:
        self.patterns: dict[tuple[int, str], re.Pattern[str]] = {}
        for family, width in TOKEN_WIDTH.items():
            tokens = sorted({e.table_tokens()[family] for e in endpoints if family in e.table_tokens()})
            if not tokens:
                continue
            target = "(?:" + "|".join(map(re.escape, tokens)) + ")"
            # Rows start "NNNN: LOCAL REMOTE ST ".  Anchoring on ": " (once per row) and using a
            # fixed-width "." run for the other token keeps this a single C-level scan; the
            # group is the row's identity "LOCAL REMOTE ST".
            other = f".{{{width}}}"
            states = f"(?:{STATE_ESTABLISHED}|{STATE_TIME_WAIT})"
            self.patterns[family, "client"] = re.compile(f": ({other} {target} {states}) ")
            self.patterns[family, "server"] = re.compile(f": ({target} {other} {states}) ")

    def identities(self, tables: SocketTables, side: str, pause: Pause | None = None) -> Iterator[list[str]]:
        """Identities of the rows matching on ``side``, one list per chunk of table text."""
        for family, text in tables.items():
            pattern = self.patterns.get((family, side))
            if pattern is None:
                continue
            for start, end in _chunks(text, DEFAULT_CHUNK_CHARS):
                yield pattern.findall(text, start, end)
                if pause is not None:
                    pause()


def _chunks(text: str, size: int) -> Iterator[tuple[int, int]]:
    """Line-aligned (start, end) spans of about ``size`` characters."""
    start, length = 0, len(text)
    while start < length:
        end = text.find("\n", start + size)
        end = length if end < 0 else end + 1
        yield start, end
        start = end


@lru_cache(maxsize=32)
def _matcher(endpoints: tuple[Endpoint, ...]) -> _Matcher:
    return _Matcher(endpoints)


def _count_time_wait(identities: Iterable[SocketIdentity]) -> int:
    # Identities end in " ST" and tokens hold no spaces, so " 06\n" can only be a state; one
    # join and one count run in C, about twice as fast as a Python loop over the rows.
    return ("\n".join(identities) + "\n").count(f" {STATE_TIME_WAIT}\n")


def _tally(chunks: Iterable[list[SocketIdentity]], baseline: AbstractSet[SocketIdentity]) -> tuple[int, int]:
    """(TIME_WAIT, ESTABLISHED) counts of the identities that are not in the baseline."""
    time_wait = total = 0
    for identities in chunks:
        # Subtract the overlap instead of building a set of every row: `intersection` hashes
        # each row once and keeps only the (usually few) baseline sockets still present.
        common = baseline.intersection(identities) if baseline else ()
        time_wait += _count_time_wait(identities) - _count_time_wait(common)
        total += len(identities) - len(common)
    return time_wait, total - time_wait


def socket_identities(tables: SocketTables, endpoints: Iterable[Endpoint]) -> frozenset[SocketIdentity]:
    """Identities of the targets' ESTABLISHED/TIME_WAIT sockets: the baseline for `count_sockets`."""
    matcher = _matcher(tuple(endpoints))
    sides = (matcher.identities(tables, "client"), matcher.identities(tables, "server"))
    return frozenset(identity for side in sides for chunk in side for identity in chunk)


def count_sockets(
    texts: SocketTables,
    endpoints: Iterable[Endpoint],
    baseline: AbstractSet[SocketIdentity] = frozenset(),
    server_side: bool = True,
    pause: Pause | None = None,
) -> SocketCounts:
    """Count the targets' new sockets in tables ``{4: tcp text, 6: tcp6 text}``.

    Sockets whose identity is in ``baseline`` (taken with `socket_identities` when the run
    started) are left out, so a previous run's 60 s of TIME_WAIT does not count for this one.
    With ``server_side=False`` the server-side scan is skipped and its counts are 0.
    ``pause`` is called between chunks of `DEFAULT_CHUNK_CHARS`: the sampler's thread passes a
    GIL-releasing ``sleep(0)`` there, so that the gevent loop never waits for a whole scan.
    """
    matcher = _matcher(tuple(endpoints))
    tw_client, est_client = _tally(matcher.identities(texts, "client", pause), baseline)
    tw_server = est_server = 0
    if server_side:
        tw_server, est_server = _tally(matcher.identities(texts, "server", pause), baseline)
    return SocketCounts(tw_client, tw_server, est_client, est_server)


def _read_text(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def read_socket_tables(paths: Mapping[int, str] = DEFAULT_TABLE_PATHS) -> dict[int, str]:
    """Read the tables.  A missing IPv4 table is an error (not Linux, or /proc not mounted);
    a missing IPv6 table is read as empty, because IPv6 may simply be disabled."""
    tables: dict[int, str] = {}
    for family, path in paths.items():
        try:
            tables[family] = _read_text(path)
        except FileNotFoundError as exc:
            if family == 6:
                tables[family] = ""
                continue
            raise TelemetryError(
                f"{path} does not exist: socket telemetry needs Linux with /proc mounted; "
                "fix: run on Linux or turn socket telemetry off"
            ) from exc
        except OSError as exc:
            raise TelemetryError(f"cannot read {path}: {exc}; fix: check /proc permissions") from exc
    return tables
