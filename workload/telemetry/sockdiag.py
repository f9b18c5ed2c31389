"""sock_diag wire format: the netlink messages that dump the kernel's TCP sockets (inet_diag).

A request (`request`) asks for the TCP sockets in a set of states, optionally filtered in the
kernel by an ``INET_DIAG_REQ_BYTECODE`` program (`bytecode`: an OR of host conditions, address
and port, laid out the way iproute2 does, the only layout the kernel's audit accepts).  The legacy
``TCPDIAG_GETSOCK`` request dumps IPv4 and IPv6 in one walk of the kernel's hash table; the v2
``SOCK_DIAG_BY_FAMILY`` one needs a walk per family.  The reply (`dump`) is a list of buffers
of ``nlmsghdr`` + ``inet_diag_msg`` (+ attributes) messages.  A buffer whose messages all have
one size (the replies for one state, in practice) is picked apart by strided slices and
`struct.iter_unpack`, in C (`uniform_size`, `columns`, `fields`); any other by a walk (`messages`).
`decode` turns one message into a `TableRow`.  Standard library only; dumps need no privilege.
"""

from __future__ import annotations

import _socket
import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Iterator
from functools import lru_cache
from itertools import chain
from operator import itemgetter

from workload.errors import TelemetryError
from workload.telemetry.socktable import TCP_STATES, Endpoint, TableRow

NETLINK_SOCK_DIAG = 4  # = NETLINK_INET_DIAG
TCPDIAG_GETSOCK, SOCK_DIAG_BY_FAMILY = 18, 20  # request (and reply) types: legacy, v2
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
INET_DIAG_REQ_BYTECODE = 1
BC_JMP, BC_S_COND, BC_D_COND = 1, 7, 8
TCP_ESTABLISHED, TCP_TIME_WAIT = 1, 6
DUMP_TIMEOUT_S = 10.0
RECV_BYTES = 1 << 20  # the kernel fills at most one skb (~32 KiB) per recv: this is plenty
NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req (legacy): family, src_len, dst_len, ext, sockid (48 bytes), states, dbs.
LEGACY_REQUEST = struct.Struct("=BBBB48sII")
# inet_diag_req_v2: family, protocol, ext, pad, states, sockid (48 bytes).
V2_REQUEST = struct.Struct("=BBBxI48s")
NO_COOKIE = bytes(40) + b"\xff" * 8  # sockid: ports, addresses, if, then INET_DIAG_NOCOOKIE
# inet_diag_msg after the header: family, state, timer, retrans, then the sockid's ports and
# addresses (36 bytes: the socket's identity), if, cookie, expires (ms), rqueue, wqueue, uid, inode.
DIAG_MSG = struct.Struct("=BBBB36s4x8xIIIII")
DIAG_MSG_SIZE = 72
AT = NLMSG_HEADER.size  # where the inet_diag_msg starts in a message


def _packed(endpoint: Endpoint) -> bytes:
    return ipaddress.ip_address(endpoint.ip).packed


def host_condition(endpoint: Endpoint, side: str) -> bytes:
    """One S_COND/D_COND op: true when the local (server side) or remote (client side) endpoint
    is ``endpoint`` (an IPv4 one also matches ::ffff:a.b.c.d).  "yes" falls through to the
    next op; "no" skips it (see `bytecode`)."""
    address = _packed(endpoint)
    family = socket.AF_INET if len(address) == 4 else socket.AF_INET6
    size = 4 + 8 + len(address)  # op, inet_diag_hostcond {family, prefix_len, port}, address
    code = BC_S_COND if side == "server" else BC_D_COND
    return struct.pack("=BBHBBxxi", code, size, size + 4, family, 8 * len(address), endpoint.port) + address


def bytecode(conditions: Iterable[tuple[Endpoint, str]]) -> bytes:
    """An OR of host conditions (endpoint, side), laid out the way iproute2 does (the kernel's
    audit walks the "yes" chain): ``C1 JMP C2 JMP ... Cn``.  Ci's "no" skips its JMP, to C(i+1)
    or past the end (reject); each JMP's "no" jumps to the end (accept)."""
    ops = [host_condition(endpoint, side) for endpoint, side in conditions]
    total = sum(map(len, ops)) + 4 * (len(ops) - 1)
    out = b""
    for op in ops:
        out += op
        if len(out) < total:
            out += struct.pack("=BBH", BC_JMP, 4, total - len(out))
    return out


def request(states: int, code: bytes = b"", family: int | None = None, seq: int = 1) -> bytes:
    """A dump request for TCP sockets in the states of the bit mask ``states``, with an optional
    bytecode filter.  Without ``family``, the legacy TCPDIAG_GETSOCK form, which dumps IPv4 and
    IPv6 in one walk of the kernel's hash table (a walk costs milliseconds even when nothing
    matches); with it, a SOCK_DIAG_BY_FAMILY (v2) request for that family only."""
    if family is None:
        kind, body = TCPDIAG_GETSOCK, LEGACY_REQUEST.pack(0, 0, 0, 0, NO_COOKIE, states, 0)
    else:
        kind, body = SOCK_DIAG_BY_FAMILY, V2_REQUEST.pack(family, socket.IPPROTO_TCP, 0, states, NO_COOKIE)
    if code:
        body += struct.pack("=HH", 4 + len(code), INET_DIAG_REQ_BYTECODE) + code
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def open_socket() -> _socket.socket:
    """A blocking sock_diag socket; raises OSError where there is none (not Linux, seccomp, ...).
    It is the C-level `_socket.socket`, which gevent never patches: a sampler thread or process
    blocks in recv() with the GIL released instead of needing a gevent hub of its own."""
    family = getattr(_socket, "AF_NETLINK", None)
    if family is None:
        raise OSError(errno.EAFNOSUPPORT, "no AF_NETLINK sockets on this platform")
    sock = _socket.socket(family, _socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    sock.settimeout(DUMP_TIMEOUT_S)  # a kernel that never answers is a failure, not a hang
    return sock


def dump(sock: _socket.socket | socket.socket, message: bytes) -> list[bytes]:
    """Send one dump request; return the buffers of the reply, the NLMSG_DONE excluded.
    A kernel error (NLMSG_ERROR) is raised as OSError with its errno."""
    sock.send(message)
    buffers: list[bytes] = []
    while True:
        data = sock.recv(RECV_BYTES)
        if not data:
            raise OSError(errno.EIO, "netlink: the kernel closed the sock_diag socket mid-dump")
        end = None if uniform_size(data) else _end_of_dump(data)
        if end is None:
            buffers.append(data)
            continue
        if end:
            buffers.append(data[:end])
        return buffers


def _end_of_dump(data: bytes) -> int | None:
    """Offset of NLMSG_DONE in ``data``, or None; raises OSError for NLMSG_ERROR."""
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind = NLMSG_HEADER.unpack_from(data, offset)[:2]
        if kind == NLMSG_DONE:
            return offset
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, offset + NLMSG_HEADER.size)[0]
            raise OSError(code, f"netlink sock_diag: {os.strerror(code)}")
        if length < NLMSG_HEADER.size:
            raise OSError(errno.EPROTO, f"netlink: bad message length {length}")
        offset += (length + 3) & ~3
    return None


def uniform_size(data: bytes) -> int:
    """The message size if ``data`` is all inet_diag replies of one size (the usual case: one
    state asked for), else 0.  Checked on strided slices (C), with no Python loop per message."""
    if len(data) < AT + DIAG_MSG_SIZE:
        return 0
    size, kind = NLMSG_HEADER.unpack_from(data)[:2]
    if kind not in (TCPDIAG_GETSOCK, SOCK_DIAG_BY_FAMILY) or size < AT + DIAG_MSG_SIZE or size % 4 or len(data) % size:
        return 0
    count = len(data) // size
    return size if all(data[k::size] == data[k : k + 1] * count for k in range(6)) else 0


def columns(data: bytes, size: int, offsets: tuple[int, ...]) -> bytes:
    """The bytes at ``offsets`` of each message of a uniform buffer, as one record per message
    (strided copies, in C: a few calls per buffer rather than a few per message)."""
    width, count = len(offsets), len(data) // size
    out = bytearray(width * count)
    for column, offset in enumerate(offsets):
        out[column::width] = data[offset::size]
    return bytes(out)


@lru_cache(maxsize=8)
def _record_format(width: int) -> struct.Struct:
    return struct.Struct(f"{width}s")


@lru_cache(maxsize=32)
def _fields_format(fields: str, size: int) -> struct.Struct:
    return struct.Struct(f"={fields}{size - struct.calcsize('=' + fields)}x")


def fields(data: bytes, layout: str) -> list[tuple[object, ...]]:
    """The ``layout`` fields (a struct format from a message's start) of each message of one
    reply buffer: one `iter_unpack` (C) if the buffer is uniform, else a walk."""
    size = uniform_size(data)
    if size:
        return list(_fields_format(layout, size).iter_unpack(data))
    head = _fields_format(layout, struct.calcsize("=" + layout))
    return [head.unpack_from(buf, start) for buf, start in messages([data])]


def records(buffers: Iterable[bytes], offsets: tuple[int, ...]) -> Iterator[bytes]:
    """The bytes at ``offsets`` of every reply message, one bytes object per message."""
    return chain.from_iterable(records_of(data, offsets) for data in buffers)


def records_of(data: bytes, offsets: tuple[int, ...]) -> Iterable[bytes]:
    size = uniform_size(data)
    if size:  # all C: strided copies, then one bytes object per record
        return map(itemgetter(0), _record_format(len(offsets)).iter_unpack(columns(data, size, offsets)))
    return [bytes(buf[start + k] for k in offsets) for buf, start in messages([data])]


def messages(buffers: Iterable[bytes]) -> Iterator[tuple[bytes, int]]:
    """(buffer, offset) of each reply message of a dump, one by one: the slow, general walk.
    Raises TelemetryError on a malformed reply."""
    for data in buffers:
        offset = 0
        while offset + NLMSG_HEADER.size <= len(data):
            length, kind = NLMSG_HEADER.unpack_from(data, offset)[:2]
            if length < NLMSG_HEADER.size or offset + length > len(data):
                raise TelemetryError(f"netlink: malformed reply (message length {length} at {offset})")
            if kind in (TCPDIAG_GETSOCK, SOCK_DIAG_BY_FAMILY):
                if length < AT + DIAG_MSG_SIZE:
                    raise TelemetryError(f"netlink: short inet_diag_msg ({length} bytes)")
                yield data, offset
            offset += (length + 3) & ~3


def _address(raw: bytes, family: int, port: bytes) -> Endpoint:
    packed = raw[:4] if family == socket.AF_INET else raw
    return Endpoint(str(ipaddress.ip_address(packed)), int.from_bytes(port, "big"))


def decode(data: bytes, offset: int = 0) -> TableRow:
    """One reply message as a `TableRow` (timer_s: ms left / 1000; inode 0 for TIME_WAIT)."""
    family, state, timer, _, sockid, expires, _, _, _, inode = DIAG_MSG.unpack_from(data, offset + AT)
    local = _address(sockid[4:20], family, sockid[0:2])
    remote = _address(sockid[20:36], family, sockid[2:4])
    name = TCP_STATES.get(f"{state:02X}", f"UNKNOWN_{state:02X}")
    return TableRow(local, remote, name, inode, timer, expires / 1000)
