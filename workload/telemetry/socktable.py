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

A socket identity ``"LOCAL REMOTE ST"`` is not unique over time: with ``net.ipv4.tcp_tw_reuse``
(default 2: loopback) or an explicit SO_REUSEADDR bind, a new connection takes over the port of a
TIME_WAIT socket to the same destination, and when it closes its TIME_WAIT row is identical to the
old one's.  So a `Baseline` also records when each of its TIME_WAIT sockets expires (the row's
``tr:tm->when`` column, ``03:`` then the remaining time in USER_HZ ticks): a row with a baseline
identity but a clearly later expiry is a new socket.  Only those rows' timers are ever decoded,
and only until the baseline's TIME_WAIT sockets are certainly gone (about 70 s).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import sys
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import compress, repeat
from operator import add, gt, lt, not_, truediv
from typing import cast
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
# The ``tr`` (timer type) of every TIME_WAIT row: its ``tm->when`` is the time left until the
# socket is destroyed.  (ESTABLISHED rows: 00 none, 01 retransmit, 02 keepalive, 04 probe.)
TIMER_TIME_WAIT = 3


def _user_hz() -> int:
    """Ticks per second of the ``tm->when`` column: the kernel prints jiffies as clock_t (USER_HZ)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        ticks = -1
    return ticks if ticks > 0 else 100


USER_HZ = _user_hz()
# A TIME_WAIT row with a baseline identity is a new socket when it expires more than this much
# later than the baseline socket did.  The expiries are bounded conservatively (the baseline's
# from after its read, a sample's from before it), so the same socket can only look later by the
# column's rounding (1/USER_HZ) and clock-rate drift (tens of ms over 60 s).  A takeover through
# tcp_tw_reuse needs a TIME_WAIT at least 1 s old (net.ipv4.tcp_tw_reuse_delay), so it always
# shows up more than 1 s later: the slack stays well below that.
TIME_WAIT_SLACK_S = 0.5
# How long past its expiry a TIME_WAIT row may still be listed (showing 0 left): the kernel's
# timer wheel fires a 60 s timer up to one bucket late, 2-5 s depending on CONFIG_HZ.  After its
# last socket's expiry plus this, a baseline's TIME_WAIT identities can only be new sockets.
TIME_WAIT_LINGER_S = 10.0

# Width of an ``IP:PORT`` token per address family (8 or 32 hex digits, a colon, 4 hex digits).
TOKEN_WIDTH: Mapping[int, int] = {4: 13, 6: 37}

# "host, port -> IP strings": how `endpoints_from_urls` turns a non-literal host into addresses.
Resolver = Callable[[str, int], Iterable[str]]
# Family (4 or 6) -> raw table text, as returned by `read_socket_tables`.
SocketTables = Mapping[int, str]
# A socket's identity as the table prints it: "LOCAL REMOTE ST" (raw hex slice of its row).
SocketIdentity = str
# Identity -> the row's ``tm->when`` (hex ticks), for the rows of one chunk of a table.
Timers = Mapping[SocketIdentity, str]
# (baseline identities seen in a chunk, the chunk's Timers) -> how many are new sockets.
RenewedCheck = Callable[[AbstractSet[SocketIdentity], Timers], int]
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
            raise TelemetryError(f"{self.ip!r} is not an IP address", fix="use e.g. 127.0.0.1 or ::1") from exc
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not 0 <= self.port <= 0xFFFF:
            raise TelemetryError(f"port {self.port} is out of range", fix="use 0..65535")
        object.__setattr__(self, "ip", str(address))

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse ``127.0.0.1:8080`` or ``[::1]:8080``."""
        host, sep, port = text.strip().rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise TelemetryError(f"{text!r} is not IP:PORT", fix="write 127.0.0.1:8080 or [::1]:8080")
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
        raise TelemetryError(f"cannot resolve {host!r}: {exc}", fix="use an IP address in the URL") from exc
    return [str(info[4][0]) for info in infos]


def _hosts_for(host: str, port: int, resolve: Resolver | None) -> list[str]:
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if resolve is None:
            raise TelemetryError(
                f"host {host!r} is not an IP address",
                fix="use an IP in the URL or pass resolve=system_resolver to look it up",
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
            raise TelemetryError(f"bad port in URL {url!r}", fix="use a port in 1..65535") from exc
        if not parts.hostname or port is None:
            raise TelemetryError(f"cannot tell host and port of {url!r}", fix="write e.g. http://127.0.0.1:8080")
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
    timer: int = 0  # the `tr` column: `TIMER_TIME_WAIT` for every TIME_WAIT row
    timer_s: float = 0.0  # `tm->when` in seconds: for a TIME_WAIT row, the time left before it goes


def parse_timer(field: str, hz: int | None = None) -> tuple[int, float]:
    """Decode a ``tr:tm->when`` field such as ``03:00001770`` into (timer type, seconds left);
    the time is in USER_HZ ticks (``hz``, default `USER_HZ`), so 0x1770 is 60 s at 100 Hz."""
    kind, sep, when = field.partition(":")
    try:
        if not sep:
            raise ValueError(field)
        return int(kind, 16), int(when, 16) / (hz or USER_HZ)
    except ValueError:
        raise TelemetryError(f"{field!r} is not a tr:tm->when timer field", fix="pass e.g. 03:00001770") from None


def parse_table(text: str, family: int) -> Iterator[TableRow]:
    """Decode every row of a `/proc/net/tcp` (family 4) or `/proc/net/tcp6` (family 6) text."""
    width = TOKEN_WIDTH[family]
    for line in text.splitlines()[1:]:  # first line is the column header
        fields = line.split()
        if len(fields) < 10 or len(fields[1]) != width:
            continue
        state = TCP_STATES.get(fields[3], f"UNKNOWN_{fields[3]}")
        timer, timer_s = parse_timer(fields[5])
        yield TableRow(decode_address(fields[1]), decode_address(fields[2]), state, int(fields[9]), timer, timer_s)


def _hex_ticks(hexes: list[str]) -> Sequence[int]:
    """Decode ``tm->when`` hex strings in bulk (``%08lX``: 8 digits, unless it is huge)."""
    joined = "".join(hexes)
    if len(joined) != 8 * len(hexes) or array("I").itemsize != 4:
        return list(map(int, hexes, repeat(16)))
    ticks = array("I", bytes.fromhex(joined))  # big-endian words: one C call for all of them
    if sys.byteorder == "little":
        ticks.byteswap()
    return ticks


class Baseline(frozenset[SocketIdentity]):
    """The identities of the sockets present when a run started (see `socket_identities`), and
    for each TIME_WAIT one when it expires (``expiries``, `time.monotonic` seconds).

    `count_sockets` leaves these identities out, except a TIME_WAIT row whose socket expires more
    than `TIME_WAIT_SLACK_S` after the baseline socket with its identity: a new socket took over
    the old one's ports.  A plain frozenset also works as a baseline, without that exception.
    """

    expiries: Mapping[SocketIdentity, float]
    _limits: dict[SocketIdentity, float]  # (expiry + slack) in ticks: what the hot path compares
    _horizon: float  # after this, every baseline TIME_WAIT socket is gone
    _untimed: frozenset[SocketIdentity]  # the identities without an expiry (ESTABLISHED ones)

    def __new__(cls, identities: Iterable[SocketIdentity] = (),
                expiries: Mapping[SocketIdentity, float] | None = None) -> Baseline:
        self = super().__new__(cls, identities)
        self.expiries = {key: value for key, value in (expiries or {}).items() if key in self}
        self._limits = {key: (value + TIME_WAIT_SLACK_S) * USER_HZ for key, value in self.expiries.items()}
        self._horizon = max(self.expiries.values(), default=0.0) + TIME_WAIT_LINGER_S
        self._untimed = frozenset(self.difference(self.expiries))
        return self

    def __reduce__(self) -> tuple[type[Baseline], tuple[frozenset[SocketIdentity], dict[SocketIdentity, float]]]:
        return type(self), (frozenset(self), dict(self.expiries))

    def __repr__(self) -> str:
        return f"Baseline({len(self)} sockets, {len(self.expiries)} TIME_WAIT expiries)"

    def at(self, read_at: float) -> tuple[frozenset[SocketIdentity], RenewedCheck | None]:
        """For tables read at ``read_at``: the identities to leave out, and the count of renewed
        sockets among them (None when no timer needs reading)."""
        if not self.expiries:
            return self, None
        if read_at > self._horizon:
            return self._untimed, None  # every baseline TIME_WAIT socket is gone: no ambiguity
        return self, partial(self._renewed, read_at * USER_HZ)

    def _renewed(self, now_ticks: float, common: AbstractSet[SocketIdentity], timers: Timers) -> int:
        """How many of ``common`` (identities of this baseline seen in one chunk, with the chunk's
        ``timers``) are TIME_WAIT sockets expiring clearly later than the baseline's: new ones."""
        ids = tuple(common)
        ticks = _hex_ticks(list(map(timers.__getitem__, ids)))
        limits = list(map(self._limits.get, ids, repeat(float("inf"))))  # ESTABLISHED: never new
        # New when now + time left > expiry + slack.  All C-level maps: no bytecode per row.
        renewed = sum(map(gt, map(add, ticks, repeat(now_ticks)), limits))
        if 0 in ticks:
            # A row showing 0 left is an expired socket the kernel has not destroyed yet (the
            # timer wheel is coarse at 60 s): never a new one, whatever the clock says.
            renewed -= sum(map(lt, compress(limits, map(not_, ticks)), repeat(now_ticks)))
        return renewed


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
        self.timed: dict[tuple[int, str], re.Pattern[str]] = {}  # the same rows: (identity, tm->when)
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
            for side, identity in (("client", f"{other} {target} {states}"), ("server", f"{target} {other} {states}")):
                self.patterns[family, side] = re.compile(f": ({identity}) ")
                # Every row goes on "tx_queue:rx_queue tr:tm->when" (%08X:%08X is 17 characters).
                self.timed[family, side] = re.compile(f": ({identity}) .{{17}} [0-9A-F]{{2}}:([0-9A-F]+) ")

    def identities(self, tables: SocketTables, side: str, pause: Pause | None = None,
                   timed: bool = False) -> Iterator[list[SocketIdentity] | dict[SocketIdentity, str]]:
        """Identities of the rows matching on ``side``, one list per chunk of table text; with
        ``timed``, one dict per chunk, from identity to the row's ``tm->when`` (hex ticks)."""
        for family, text in tables.items():
            pattern = (self.timed if timed else self.patterns).get((family, side))
            if pattern is None:
                continue
            for start, end in _chunks(text, DEFAULT_CHUNK_CHARS):
                found = pattern.findall(text, start, end)
                yield dict(found) if timed else found
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


def _tally(chunks: Iterable[Collection[SocketIdentity]], baseline: frozenset[SocketIdentity] | set[SocketIdentity],
           renewed: RenewedCheck | None = None) -> tuple[int, int]:
    """(TIME_WAIT, ESTABLISHED) counts of the identities that are not in the baseline, plus the
    baseline ones that ``renewed`` finds to be new sockets (then the chunks are `Timers`)."""
    time_wait = total = 0
    for identities in chunks:
        # Subtract the overlap instead of building a set of every row: `intersection` hashes
        # each row once and keeps only the (usually few) baseline sockets still present.
        common = baseline.intersection(identities) if baseline else ()
        # Only rows in the overlap are ambiguous, so only their timers are ever decoded.
        # With a `renewed` check the chunks were read `timed`: each is a `Timers` mapping.
        new = renewed(common, cast(Timers, identities)) if common and renewed is not None else 0
        time_wait += _count_time_wait(identities) - _count_time_wait(common) + new
        total += len(identities) - len(common) + new
    return time_wait, total - time_wait


def socket_identities(tables: SocketTables, endpoints: Iterable[Endpoint], read_at: float | None = None) -> Baseline:
    """Identities of the targets' ESTABLISHED/TIME_WAIT sockets: the baseline for `count_sockets`,
    with the TIME_WAIT ones' expiries.  ``read_at`` is the `time.monotonic` time just *after*
    ``tables`` were read (default: now), so that no expiry is underestimated."""
    read_at = time.monotonic() if read_at is None else read_at
    matcher = _matcher(tuple(endpoints))
    timers: dict[SocketIdentity, str] = {}
    for side in ("client", "server"):
        for chunk in matcher.identities(tables, side, timed=True):
            timers.update(cast(Timers, chunk))  # `timed=True`: each chunk is a mapping
    # A TIME_WAIT row's timer (always type `TIMER_TIME_WAIT`) is its end; the others end nothing.
    time_wait = [identity for identity in timers if identity.endswith(f" {STATE_TIME_WAIT}")]
    seconds = map(truediv, _hex_ticks(list(map(timers.__getitem__, time_wait))), repeat(USER_HZ))
    return Baseline(timers, dict(zip(time_wait, map(add, seconds, repeat(read_at)), strict=True)))


def count_sockets(
    texts: SocketTables,
    endpoints: Iterable[Endpoint],
    baseline: AbstractSet[SocketIdentity] = frozenset(),
    server_side: bool = True,
    pause: Pause | None = None,
    read_at: float | None = None,
) -> SocketCounts:
    """Count the targets' new sockets in tables ``{4: tcp text, 6: tcp6 text}``.

    Sockets whose identity is in ``baseline`` (taken with `socket_identities` when the run
    started) are left out, so a previous run's 60 s of TIME_WAIT does not count for this one;
    but a TIME_WAIT row that expires clearly later than the baseline's row with its identity is
    a new socket on the same ports, and counts.  ``read_at`` is the `time.monotonic` time just
    *before* the tables were read (default: now).
    With ``server_side=False`` the server-side scan is skipped and its counts are 0.
    ``pause`` is called between chunks of `DEFAULT_CHUNK_CHARS`: the sampler's thread passes a
    GIL-releasing ``sleep(0)`` there, so that the gevent loop never waits for a whole scan.
    """
    renewed = None
    if isinstance(baseline, Baseline):
        baseline, renewed = baseline.at(time.monotonic() if read_at is None else read_at)
    elif not isinstance(baseline, frozenset | set):
        baseline = frozenset(baseline)  # `_tally` needs `intersection`, which the Set ABC lacks
    matcher = _matcher(tuple(endpoints))
    timed = renewed is not None  # then the scan also returns each row's timer (about 25 % dearer)
    tw_client, est_client = _tally(matcher.identities(texts, "client", pause, timed), baseline, renewed)
    tw_server = est_server = 0
    if server_side:
        tw_server, est_server = _tally(matcher.identities(texts, "server", pause, timed), baseline, renewed)
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
                "does not exist: socket telemetry needs Linux with /proc mounted",
                fix="run on Linux or turn socket telemetry off", where=str(path),
            ) from exc
        except OSError as exc:
            raise TelemetryError(f"cannot read it: {exc}", fix="check /proc permissions", where=str(path)) from exc
    return tables
