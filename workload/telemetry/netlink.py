"""Netlink socket table: the targets' sockets counted from `sock_diag` dumps (see `sockdiag`).

The same table as `/proc/net/tcp{,6}` (see `socktable`), asked for over a netlink socket instead
of read as text.  It is cheaper in two ways: the kernel does not format text, and it filters for
us.  A count asks for one state at a time (so the replies have one size and are picked apart in
C), in one walk for both address families, with a bytecode filter keeping only sockets whose
remote (client side) or local (server side) endpoint is a target.  The rows are then sorted by
side here, with a `Counter` over the endpoint bytes of each row (no Python code per row), so the
counting never depends on the filter: a kernel that refuses it, or the one-walk request, is asked
without.  Sockets of a previous run are left out with the same `Baseline` as the /proc parser
(identities in the ``/proc`` text form, converted once to the binary form here), so a baseline
taken from either source serves the other.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, gt, not_
from typing import cast

from workload.telemetry.sockdiag import (
    AT,
    TCP_ESTABLISHED,
    TCP_TIME_WAIT,
    bytecode,
    columns,
    dump,
    fields,
    messages,
    open_socket,
    records_of,
    request,
    uniform_size,
)
from workload.telemetry.socktable import (
    TIME_WAIT_SLACK_S,
    TOKEN_WIDTH,
    Baseline,
    Endpoint,
    Pause,
    SocketCounts,
    SocketIdentity,
)

INF = float("inf")  # the limit of an ESTABLISHED baseline socket: never a new one
SIDES = ("client", "server")
STATES: Mapping[int, str] = {TCP_TIME_WAIT: "06", TCP_ESTABLISHED: "01"}  # -> /proc state column
# Offsets (from a message's start) of the bytes that say whether it is a target's socket, per
# side: the family, then the remote (client side) or local (server side) port and address.
SIDE_BYTES: Mapping[str, tuple[int, ...]] = {
    "client": (AT, AT + 6, AT + 7, *range(AT + 24, AT + 40)),
    "server": (AT, AT + 4, AT + 5, *range(AT + 8, AT + 24)),
}
KEY_FIELDS = f"{AT}xB3x36s"  # family and sockid: a socket's identity (`SockKey`)
EXPIRES_BYTES = tuple(range(AT + 52, AT + 56))  # ms left on the socket's timer (host-endian u32)

# A socket's identity as a dump returns it: family, then ports and addresses (36 bytes, raw).
SockKey = tuple[int, bytes]
# A target's endpoint as one side of a socket shows it: family byte, port, address (16 bytes).
SideKey = bytes


def expiries_ms(data: bytes) -> Sequence[int]:
    """The ms left on each message's timer, in one C call when the buffer is uniform."""
    size = uniform_size(data)
    if size and array("I").itemsize == 4:
        return array("I", columns(data, size, EXPIRES_BYTES))
    return [int.from_bytes(data[start + AT + 52 : start + AT + 56], sys.byteorder) for _, start in messages([data])]


def _packed(endpoint: Endpoint) -> bytes:
    return ipaddress.ip_address(endpoint.ip).packed


def _in_family(endpoint: Endpoint, family: int) -> bytes | None:
    """The 16 address bytes under which ``endpoint`` shows in a ``family`` socket, or None if
    it cannot (an IPv6 endpoint on an AF_INET socket).  IPv4 on AF_INET6 is ::ffff:a.b.c.d."""
    packed = _packed(endpoint)
    if family == socket.AF_INET:
        return None if len(packed) == 16 else packed + bytes(12)
    return packed if len(packed) == 16 else bytes(10) + b"\xff\xff" + packed


def side_keys(endpoints: Iterable[Endpoint]) -> frozenset[SideKey]:
    """The `SideKey` forms of ``endpoints`` in both families (what `SIDE_BYTES` pick)."""
    keys = set()
    for endpoint in endpoints:
        for family in (socket.AF_INET, socket.AF_INET6):
            address = _in_family(endpoint, family)
            if address is not None:
                keys.add(bytes([family]) + endpoint.port.to_bytes(2, "big") + address)
    return frozenset(keys)


def _memory_order(printed: bytes) -> bytes:
    """/proc prints an address as native-endian 32-bit words (``%08X``): their bytes, reordered
    to the address's own (network) order, or back again: the same word-wise swap both ways."""
    if sys.byteorder == "big":
        return printed
    return b"".join(printed[i : i + 4][::-1] for i in range(0, len(printed), 4))


_CODES = {code: number for number, code in STATES.items()}


def sock_key(identity: SocketIdentity) -> tuple[int, SockKey] | None:
    """A `socktable` identity ``"LOCAL REMOTE ST"`` as (state, `SockKey`), or None for a state
    other than ESTABLISHED and TIME_WAIT.  A tcp6 row's address (``::ffff:a.b.c.d`` included)
    is the AF_INET6 socket's as it is; a tcp row's is padded, as the kernel pads AF_INET ones."""
    local, remote, state = identity.split(" ")
    if state not in _CODES:
        return None
    family = socket.AF_INET if len(local) == TOKEN_WIDTH[4] else socket.AF_INET6
    (local_ip, local_port), (remote_ip, remote_port) = (token.split(":") for token in (local, remote))
    addresses = [_memory_order(bytes.fromhex(ip)).ljust(16, b"\0") for ip in (local_ip, remote_ip)]
    return _CODES[state], (family, bytes.fromhex(local_port + remote_port) + addresses[0] + addresses[1])


def proc_identity(state: int, key: SockKey) -> SocketIdentity:
    """The inverse of `sock_key`: the identity `socktable` reads from /proc for this socket."""
    family, sockid = key
    width = 4 if family == socket.AF_INET else 16
    local = _memory_order(sockid[4 : 4 + width]).hex().upper() + ":" + sockid[0:2].hex().upper()
    remote = _memory_order(sockid[20 : 20 + width]).hex().upper() + ":" + sockid[2:4].hex().upper()
    return f"{local} {remote} {STATES[state]}"


def sides_of(key: SockKey, targets: Mapping[str, frozenset[SideKey]]) -> list[str]:
    """The sides on which a socket is a target's: client if its remote end is one, server if
    its local end is (both for a target talking to itself)."""
    family, sockid = bytes([key[0]]), key[1]
    ends = {"client": family + sockid[2:4] + sockid[20:36], "server": family + sockid[0:2] + sockid[4:20]}
    return [side for side, end in ends.items() if end in targets[side]]


@dataclass(frozen=True)
class NativeBaseline:
    """The identities a baseline leaves out, per state, as `SockKey`s, and the TIME_WAIT ones'
    limits (expiry + slack, `time.monotonic` in ms) when takeovers must be checked."""

    keys: Mapping[int, frozenset[SockKey]]
    limits: Mapping[SockKey, float] | None  # in ms
    on_side: Mapping[str, frozenset[SockKey]]  # the keys on each side (a key may be on both)
    # Per side, whether every key is on it: usual (a baseline is all client or all server side),
    # and then, like for a side with no key, a buffer's baseline rows need no lookup per side.
    all_on_side: Mapping[str, bool]


def native_baseline(left_out: Iterable[SocketIdentity], expiries: Mapping[SocketIdentity, float] | None,
                    targets: Mapping[str, frozenset[SideKey]]) -> NativeBaseline:
    keys: dict[int, set[SockKey]] = {}
    limits: dict[SockKey, float] = {}
    on_side: dict[str, set[SockKey]] = {side: set() for side in SIDES}
    for identity in left_out:
        found = sock_key(identity)
        if found is None:
            continue
        state, key = found
        keys.setdefault(state, set()).add(key)
        for side in sides_of(key, targets):
            on_side[side].add(key)
        if expiries is not None and identity in expiries:
            limits[key] = (expiries[identity] + TIME_WAIT_SLACK_S) * 1000
    every = set().union(*keys.values())
    return NativeBaseline({state: frozenset(value) for state, value in keys.items()},
                          None if expiries is None else limits,
                          {side: frozenset(value) for side, value in on_side.items()},
                          {side: value == every for side, value in on_side.items()})


class NetlinkTable:
    """A sock_diag socket and the dumps that find one set of targets' sockets.

    `count` is the sampler's hot path (the equivalent of `socktable.count_sockets`); `baseline`
    takes the baseline (the equivalent of `socktable.socket_identities`); `rows` decodes every
    TCP socket, for tests.  Each dump asks for one state, so that its replies have one size and
    are picked apart in C.  Raises OSError (or TelemetryError on a malformed reply) on failure.
    """

    def __init__(self, endpoints: Iterable[Endpoint], legacy: bool = True, use_bytecode: bool = True) -> None:
        self.endpoints = tuple(endpoints)
        self.legacy = legacy  # one walk for both families (TCPDIAG_GETSOCK), else one per family
        self.use_bytecode = use_bytecode
        self.targets = {side: side_keys(self.endpoints) for side in SIDES}
        self._sock = open_socket()
        self._seq = 0
        self._native: tuple[object, NativeBaseline] | None = None  # (the set it is for, its form)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NetlinkTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dump(self, states: int, sides: Iterable[str] = ()) -> list[bytes]:
        """The replies for sockets in ``states`` (a mask), filtered by the kernel to the targets
        on ``sides`` where it can (none: every socket).  A kernel that refuses the filter or the
        legacy request (EINVAL, ...) is asked again without it: the counting never needs either."""
        code = bytecode([(e, side) for side in sides for e in self.endpoints]) if self.use_bytecode else b""
        try:
            if self.legacy:
                return self._ask(request(states, code))
            return [data for family in (socket.AF_INET, socket.AF_INET6)
                    for data in self._ask(request(states, code, family))]
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOENT) or not (code or self.legacy):
                raise
            if self.legacy:
                self.legacy = False  # then a v2 request per family, still filtered
            else:
                self.use_bytecode = False
            return self.dump(states, sides)

    def _ask(self, message: bytes) -> list[bytes]:
        self._seq += 1
        return dump(self._sock, message[:8] + struct.pack("=I", self._seq) + message[12:])

    def _count(self, state: int, sides: tuple[str, ...], native: NativeBaseline, read_at: float,
               pause: Pause | None) -> dict[str, int]:
        seen: dict[str, Counter[bytes]] = {side: Counter() for side in sides}
        left_out = dict.fromkeys(sides, 0)
        keys = native.keys.get(state)
        for data in self.dump(1 << state, sides):  # ~32 KiB (~300 rows) per buffer: short C calls
            for side in sides:
                seen[side].update(records_of(data, SIDE_BYTES[side]))
            if keys:
                for side, number in self._baseline_rows_in(data, keys, native, read_at, sides).items():
                    left_out[side] += number
            if pause is not None:
                pause()
        return {side: sum(seen[side][key] for key in self.targets[side]) - left_out[side] for side in sides}

    @staticmethod
    def _baseline_rows_in(data: bytes, keys: frozenset[SockKey], native: NativeBaseline, read_at: float,
                          sides: tuple[str, ...]) -> dict[str, int]:
        """Per side, how many rows of one reply buffer are baseline sockets: identities in the
        baseline, except TIME_WAIT ones expiring clearly later than the baseline's (new sockets
        on the same ports, see `Baseline`)."""
        found: list[SockKey] = fields(data, KEY_FIELDS)  # type: ignore[assignment]
        common = keys.intersection(found)
        if common and native.limits is not None:
            left_ms = expiries_ms(data)
            # New when now + time left > expiry + slack (never for a row that is not in the
            # baseline: its limit is infinite).  C-level maps: no bytecode per row.
            ends = map(add, left_ms, repeat(read_at * 1000))
            renewed = set(compress(found, map(gt, ends, map(native.limits.get, found, repeat(INF)))))
            if renewed and 0 in left_ms:
                # A row with 0 ms left is an expired socket not yet destroyed: never a new one.
                renewed.difference_update(compress(found, map(not_, left_ms)))
            if renewed:
                common = common.difference(renewed)
        if not common:
            return dict.fromkeys(sides, 0)
        # (A side with no key: the intersection with an empty set is immediate.)
        return {side: len(common) if native.all_on_side[side] else len(native.on_side[side].intersection(common))
                for side in sides}

    def _native_for(self, baseline: AbstractSet[SocketIdentity], read_at: float) -> NativeBaseline:
        expiries: Mapping[SocketIdentity, float] | None = None
        left_out = baseline
        if isinstance(baseline, Baseline):
            left_out, renewed = baseline.at(read_at)
            expiries = baseline.expiries if renewed is not None else None
        cached = self._native
        if cached is None or cached[0] is not left_out or (cached[1].limits is None) != (expiries is None):
            cached = self._native = (left_out, native_baseline(left_out, expiries, self.targets))
        return cached[1]

    def count(self, baseline: AbstractSet[SocketIdentity] = frozenset(), server_side: bool = True,
              read_at: float | None = None, pause: Pause | None = None) -> SocketCounts:
        """Count the targets' new sockets, as `socktable.count_sockets` does on the /proc text
        (same arguments; ``read_at`` is `time.monotonic` just before the read, default now;
        ``pause`` is called between reply buffers)."""
        read_at = time.monotonic() if read_at is None else read_at
        native = self._native_for(baseline, read_at)
        sides = SIDES if server_side else SIDES[:1]
        time_wait = self._count(TCP_TIME_WAIT, sides, native, read_at, pause)
        established = self._count(TCP_ESTABLISHED, sides, native, read_at, pause)
        return SocketCounts(time_wait.get("client", 0), time_wait.get("server", 0),
                            established.get("client", 0), established.get("server", 0))

    def baseline(self) -> tuple[Baseline, float]:
        """The targets' ESTABLISHED/TIME_WAIT sockets now, as a `Baseline` in /proc identity form
        (as `socket_identities` makes), and the `time.monotonic` time just after the read.  The
        binary form of the baseline is kept for `count`, so it is not converted back."""
        rows = self.baseline_rows()
        read_at = time.monotonic()  # after the read: an upper bound for the expiries (see Baseline)
        baseline = baseline_of(rows, read_at)
        keys: dict[int, set[SockKey]] = {}
        on_side: dict[str, set[SockKey]] = {side: set() for side in SIDES}
        for state, key, _, sides in rows:
            keys.setdefault(state, set()).add(key)
            for side in sides:
                on_side[side].add(key)
        limits = {key: (read_at + left / 1000 + TIME_WAIT_SLACK_S) * 1000
                  for state, key, left, _ in rows if state == TCP_TIME_WAIT}
        every = set().union(*keys.values())
        native = NativeBaseline({state: frozenset(value) for state, value in keys.items()}, limits,
                                {side: frozenset(value) for side, value in on_side.items()},
                                {side: value == every for side, value in on_side.items()})
        self._native = (baseline, native)  # what `_native_for` finds while the takeover check is due
        return baseline, read_at

    def baseline_rows(self) -> list[tuple[int, SockKey, int, list[str]]]:
        """(state, key, ms left, sides) of the targets' ESTABLISHED/TIME_WAIT sockets."""
        rows: list[tuple[int, SockKey, int, list[str]]] = []
        for state in (TCP_ESTABLISHED, TCP_TIME_WAIT):
            for data in self.dump(1 << state, SIDES):
                keys = cast(list[SockKey], fields(data, KEY_FIELDS))  # KEY_FIELDS unpacks (family, sockid)
                found = zip(keys, expiries_ms(data), strict=True)
                with_sides = ((state, key, left, sides_of(key, self.targets)) for key, left in found)
                rows.extend(row for row in with_sides if row[3])
        return rows


def baseline_of(rows: Iterable[tuple[int, SockKey, int, list[str]]], read_at: float) -> Baseline:
    """A `Baseline` of `NetlinkTable.baseline_rows` read just before ``read_at`` (monotonic)."""
    identities = {proc_identity(state, key): (state, left) for state, key, left, _ in rows}
    expiries = {identity: read_at + left / 1000
                for identity, (state, left) in identities.items() if state == TCP_TIME_WAIT}
    return Baseline(identities, expiries)
