"""The netlink (sock_diag) socket table: wire format on canned bytes, then the real kernel table
against /proc and `ss`, and the sampler's fallback to /proc."""

from __future__ import annotations

import errno
import ipaddress
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from workload.errors import TelemetryError
from workload.telemetry import netlink, sockdiag, source
from workload.telemetry.netlink import NetlinkTable, proc_identity, sock_key
from workload.telemetry.sampler import SocketSampler
from workload.telemetry.sockdiag import (
    AT,
    NLMSG_HEADER,
    TCP_ESTABLISHED,
    TCP_TIME_WAIT,
    TCPDIAG_GETSOCK,
    bytecode,
    decode,
    dump,
    messages,
    records,
    request,
)
from workload.telemetry.socktable import (
    USER_HZ,
    Baseline,
    Endpoint,
    SocketCounts,
    count_sockets,
    read_socket_tables,
    socket_identities,
)
from workload.telemetry.source import SOURCE_ENV, TableSource

TARGET = Endpoint("127.0.0.1", 8080)
V6_TARGET = Endpoint("::1", 8080)
EXTRA = {TCP_TIME_WAIT: 8, TCP_ESTABLISHED: 36}  # attribute bytes after inet_diag_msg, as on 6.x


# -- canned messages -------------------------------------------------------------------------
def packed16(ip: str, family: int) -> bytes:
    raw = ipaddress.ip_address(ip).packed
    if family == socket.AF_INET:
        return raw.ljust(16, b"\0")
    return raw if len(raw) == 16 else bytes(10) + b"\xff\xff" + raw


def message(local: Endpoint, remote: Endpoint, state: int, left_ms: int = 0,
            family: int = socket.AF_INET, inode: int = 0) -> bytes:
    """One inet_diag reply as the kernel sends it (legacy dump: type 18, NLM_F_MULTI)."""
    body = struct.pack("=BBBB", family, state, 3 if state == TCP_TIME_WAIT else 0, 0)
    body += struct.pack(">HH", local.port, remote.port) + packed16(local.ip, family) + packed16(remote.ip, family)
    body += struct.pack("=I8sIIIII", 0, b"\x01" * 8, left_ms, 0, 0, 1000, inode) + b"\0" * EXTRA[state]
    return NLMSG_HEADER.pack(AT + len(body), TCPDIAG_GETSOCK, 2, 1, 4242) + body


def proc_row(local: Endpoint, remote: Endpoint, state: int, left_ms: int = 0, family: int = 4) -> str:
    """The same socket as a /proc/net/tcp{,6} line."""
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    identity = proc_identity(state, sock_key_of(local, remote, af))
    ticks = left_ms * USER_HZ // 1000
    timer = f"03:{ticks:08X}" if state == TCP_TIME_WAIT else "00:00000000"
    ids = identity.rsplit(" ", 1)[0]
    return f"   0: {ids} {state:02X} 00000000:00000000 {timer} 00000000     0        0 0 1 0000000000000000"


def sock_key_of(local: Endpoint, remote: Endpoint, family: int) -> tuple[int, bytes]:
    ports = struct.pack(">HH", local.port, remote.port)
    return family, ports + packed16(local.ip, family) + packed16(remote.ip, family)


class CannedTable(NetlinkTable):
    """A NetlinkTable whose dumps return canned replies (pure counting logic, no kernel), filtered
    by side the way the kernel's bytecode does, or not (``use_bytecode=False``)."""

    def __init__(self, endpoints: tuple[Endpoint, ...], rows: list[tuple[Endpoint, Endpoint, int, int, int]],
                 use_bytecode: bool = True) -> None:
        super().__init__(endpoints, use_bytecode=use_bytecode)
        self.rows = rows

    def _wanted(self, local: Endpoint, remote: Endpoint, sides: tuple[str, ...]) -> bool:
        ends = {"client": remote, "server": local}  # Endpoint reads ::ffff:a.b.c.d as a.b.c.d
        return not (sides and self.use_bytecode) or any(ends[side] in self.endpoints for side in sides)

    def dump(self, states: int, sides: tuple[str, ...] = ()) -> list[bytes]:
        wanted = [message(local, remote, state, left, family) for local, remote, state, left, family in self.rows
                  if states & (1 << state) and self._wanted(local, remote, sides)]
        return [b"".join(wanted[i : i + 3]) for i in range(0, len(wanted), 3)]  # several buffers


def proc_tables(rows: list[tuple[Endpoint, Endpoint, int, int, int]]) -> dict[int, str]:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    lines = {4: [header], 6: [header]}
    for local, remote, state, left, family in rows:
        number = 4 if family == socket.AF_INET else 6
        lines[number].append(proc_row(local, remote, state, left, number) + "\n")
    return {number: "".join(text) for number, text in lines.items()}


def client(port: int, ip: str = "127.0.0.1") -> Endpoint:
    return Endpoint(ip, port)


CANNED = [
    (client(40001), TARGET, TCP_TIME_WAIT, 60_000, socket.AF_INET),
    (client(40002), TARGET, TCP_TIME_WAIT, 59_000, socket.AF_INET),
    (TARGET, client(40003), TCP_TIME_WAIT, 58_000, socket.AF_INET),
    (client(40004), TARGET, TCP_ESTABLISHED, 0, socket.AF_INET),
    (TARGET, client(40004), TCP_ESTABLISHED, 0, socket.AF_INET),
    (client(40005), Endpoint("127.0.0.1", 8081), TCP_TIME_WAIT, 60_000, socket.AF_INET),  # other port
    (client(40006), Endpoint("127.0.0.2", 8080), TCP_TIME_WAIT, 60_000, socket.AF_INET),  # other IP
    (client(40007), TARGET, TCP_TIME_WAIT, 60_000, socket.AF_INET6),  # ::ffff:127.0.0.1
    (client(40008, "::1"), V6_TARGET, TCP_ESTABLISHED, 0, socket.AF_INET6),
    (V6_TARGET, client(40009, "::1"), TCP_TIME_WAIT, 30_000, socket.AF_INET6),
]


# -- (a) wire format on canned bytes ---------------------------------------------------------
def test_bytecode_one_condition_and_an_or_laid_out_like_iproute2() -> None:
    one = bytecode([(TARGET, "client")])
    # D_COND (8), yes = 16 (its own size), no = 20 (past the end: reject); hostcond AF_INET /32 :8080.
    assert one == struct.pack("=BBHBBxxi", 8, 16, 20, socket.AF_INET, 32, 8080) + bytes([127, 0, 0, 1])
    two = bytecode([(TARGET, "client"), (V6_TARGET, "server")])
    assert len(two) == 16 + 4 + 28
    assert two[16:20] == struct.pack("=BBH", 1, 4, 4 + 28)  # JMP: "no" lands exactly on the end
    assert two[20:24] == struct.pack("=BBH", 7, 28, 32)  # S_COND, yes = 28, no = past the end
    assert struct.unpack_from("=BBxxi", two, 24) == (socket.AF_INET6, 128, 8080)


def test_requests_legacy_and_v2() -> None:
    legacy = request(1 << TCP_TIME_WAIT, b"\x01\x02\x03\x04", seq=9)
    length, kind, flags, seq, _ = NLMSG_HEADER.unpack_from(legacy)
    assert (length, kind, flags, seq) == (len(legacy), 18, 0x301, 9)
    assert len(legacy) == 16 + 60 + 4 + 4
    assert struct.unpack_from("=I", legacy, 16 + 52)[0] == 1 << 6  # idiag_states
    assert legacy[-8:] == struct.pack("=HH", 8, 1) + b"\x01\x02\x03\x04"  # INET_DIAG_REQ_BYTECODE
    v2 = request(1 << TCP_ESTABLISHED, family=socket.AF_INET6)
    assert NLMSG_HEADER.unpack_from(v2)[1] == 20 and len(v2) == 16 + 56
    assert struct.unpack_from("=BBBxI", v2, 16) == (socket.AF_INET6, socket.IPPROTO_TCP, 0, 1 << 1)


def test_decode_and_records_of_uniform_and_mixed_buffers() -> None:
    tw = message(client(40001), TARGET, TCP_TIME_WAIT, 59_990)
    est = message(client(40002, "::1"), V6_TARGET, TCP_ESTABLISHED, family=socket.AF_INET6, inode=77)
    row = decode(tw)
    assert (str(row.local), str(row.remote), row.state, row.timer, row.timer_s) == (
        "127.0.0.1:40001", "127.0.0.1:8080", "TIME_WAIT", 3, 59.99)
    assert decode(est).state == "ESTABLISHED" and decode(est).inode == 77 and str(decode(est).remote) == "[::1]:8080"
    uniform, mixed = tw * 4, tw + est + tw
    assert sockdiag.uniform_size(uniform) == len(tw) and sockdiag.uniform_size(mixed) == 0
    remote = netlink.SIDE_BYTES["client"]
    for buffer in (uniform, mixed):  # the C path and the walk agree
        walked = [bytes(data[start + k] for k in remote) for data, start in messages([buffer])]
        assert list(records([buffer], remote)) == walked
    assert list(records([mixed], remote))[1] == bytes([socket.AF_INET6]) + struct.pack(">H", 8080) + packed16(
        "::1", socket.AF_INET6)


def test_malformed_replies_are_errors() -> None:
    tw = message(client(40001), TARGET, TCP_TIME_WAIT)
    with pytest.raises(TelemetryError, match="malformed reply"):
        list(messages([tw[:50]]))
    short = NLMSG_HEADER.pack(40, TCPDIAG_GETSOCK, 2, 1, 1) + bytes(24)
    with pytest.raises(TelemetryError, match="short inet_diag_msg"):
        list(messages([short]))


def test_dump_reads_until_done_and_raises_kernel_errors() -> None:
    # A datagram socketpair stands in for the kernel end: the replies are canned bytes.
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, kernel:
        tw = message(client(40001), TARGET, TCP_TIME_WAIT)
        done = NLMSG_HEADER.pack(20, 3, 2, 1, 1) + bytes(4)
        kernel.send(tw * 2)
        kernel.send(tw + done)
        assert dump(ours, b"request") == [tw * 2, tw]
        assert kernel.recv(100) == b"request"
        kernel.send(NLMSG_HEADER.pack(36, 2, 0, 1, 1) + struct.pack("=i", -errno.EINVAL) + bytes(16))
        with pytest.raises(OSError) as raised:
            dump(ours, b"request")
        assert raised.value.errno == errno.EINVAL


def test_identities_round_trip_with_proc_form() -> None:
    assert proc_identity(TCP_TIME_WAIT, sock_key_of(client(45680), TARGET, socket.AF_INET)) == (
        "0100007F:B270 0100007F:1F90 06")
    mapped = sock_key_of(client(45680), TARGET, socket.AF_INET6)
    identity = proc_identity(TCP_ESTABLISHED, mapped)
    assert identity == "0000000000000000FFFF00000100007F:B270 0000000000000000FFFF00000100007F:1F90 01"
    assert sock_key(identity) == (TCP_ESTABLISHED, mapped)
    assert sock_key("0100007F:1F90 00000000:0000 0A") is None  # LISTEN: never asked for


@pytest.mark.parametrize("filtered", [True, False], ids=["kernel-filtered", "unfiltered"])
def test_counts_match_proc_on_canned_tables_with_baseline_and_takeover(filtered: bool) -> None:
    targets = (TARGET, V6_TARGET)
    with CannedTable(targets, CANNED, use_bytecode=filtered) as table:
        expected = count_sockets(proc_tables(CANNED), targets)
        assert expected == SocketCounts(tw_client=3, tw_server=2, est_client=2, est_server=1)
        assert table.count() == expected
        assert table.count(server_side=False) == count_sockets(proc_tables(CANNED), targets, server_side=False)
        baseline, now = table.baseline()
        assert baseline == socket_identities(proc_tables(CANNED), targets, now)
        # The binary form kept from the dump is the one a /proc baseline converts to.
        assert table._native == (baseline, netlink.native_baseline(baseline, baseline.expiries, table.targets))
        assert baseline.expiries == pytest.approx(socket_identities(proc_tables(CANNED), targets, now).expiries)
        assert table.count(baseline, read_at=now) == SocketCounts()
        # 20 s later: one baseline TIME_WAIT socket's ports were taken over (a full 60 s left
        # again), another is gone, the rest are the same sockets running down.
        later = now + 20
        rows = [(a, b, s, max(left - 20_000, 0), f) for a, b, s, left, f in CANNED[1:]]
        rows[0] = (rows[0][0], rows[0][1], TCP_TIME_WAIT, 60_000, socket.AF_INET)
        table.rows = rows
        renewed = table.count(baseline, read_at=later)
        assert renewed == count_sockets(proc_tables(rows), targets, baseline, read_at=later)
        assert renewed == SocketCounts(tw_client=1)
        # Plain frozensets work as baselines too (no takeover check).
        assert table.count(frozenset(baseline), read_at=later) == SocketCounts()
        # 61 s later every baseline TIME_WAIT socket has expired; the kernel still lists some
        # with 0 ms left (never new sockets), and one identity holds a new socket again.
        expired = now + 61
        rows = [(a, b, s, 0, f) for a, b, s, _, f in CANNED]
        rows[1] = (rows[1][0], rows[1][1], TCP_TIME_WAIT, 45_000, socket.AF_INET)
        table.rows = rows
        lingering = table.count(baseline, read_at=expired)
        assert lingering == count_sockets(proc_tables(rows), targets, baseline, read_at=expired)
        assert lingering == SocketCounts(tw_client=1)


# -- (b) the real kernel table ---------------------------------------------------------------
def listen(ip: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((ip, 0))
    listener.listen(1024)
    return listener


def churn(listener: socket.socket, count: int, client_closes: bool, deadline: float) -> None:
    """``count`` connections to ``listener``, closed at once: TIME_WAIT on the side closing first."""
    address = listener.getsockname()[:2]
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        near = socket.create_connection(address, timeout=5)
        far, _ = listener.accept()
        first, second = (near, far) if client_closes else (far, near)
        first.close()
        second.settimeout(5)
        second.recv(1)  # the FIN has arrived: closing now completes the handshake
        second.close()


def reset_close(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME_WAIT
        sock.close()


def ss_count(state: str, side: str, endpoints: list[Endpoint]) -> int:
    key = "dst" if side == "client" else "src"
    expression = " or ".join(f"{key} {e.ip if ':' not in e.ip else f'[{e.ip}]'}:{e.port}" for e in endpoints)
    out = subprocess.run(["ss", "-Htan", "state", state, f"( {expression} )"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


@pytest.fixture
def big_table() -> Iterator[list[Endpoint]]:
    """>= 20,000 sockets of our own listeners (127.0.0.1 and ::1, ports from 0), bounded in time."""
    # Many destinations: a connect may take over its own TIME_WAIT to the same destination
    # (tcp_tw_reuse), which would keep the table smaller than the number of connections.
    listeners = [listen() for _ in range(10)] + [listen("::1")]
    held: list[socket.socket] = []
    deadline = time.monotonic() + 25
    try:
        for listener in listeners[:10]:
            churn(listener, 2_000, client_closes=True, deadline=deadline)
        churn(listeners[1], 1_500, client_closes=False, deadline=deadline)
        churn(listeners[10], 300, client_closes=True, deadline=deadline)
        for listener in listeners:
            for _ in range(40):
                near = socket.create_connection(listener.getsockname()[:2], timeout=5)
                held += [near, listener.accept()[0]]
        yield [Endpoint(*listener.getsockname()[:2]) for listener in listeners]
    finally:
        reset_close(held)
        for listener in listeners:
            listener.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss")
def test_netlink_proc_and_ss_agree_on_a_table_of_20000_sockets(big_table: list[Endpoint]) -> None:
    endpoints = big_table
    with NetlinkTable(endpoints) as table:
        by_netlink = table.count()
        by_proc = count_sockets(read_socket_tables(), endpoints)
        again = table.count()
    assert by_netlink == by_proc == again
    assert by_netlink.tw_client + by_netlink.tw_server + 2 * by_netlink.est_client >= 20_000
    assert by_netlink.est_client == by_netlink.est_server == 40 * len(endpoints)
    assert by_netlink.tw_server >= 1_400
    assert by_netlink == SocketCounts(
        ss_count("time-wait", "client", endpoints), ss_count("time-wait", "server", endpoints),
        ss_count("established", "client", endpoints), ss_count("established", "server", endpoints))


def test_kernel_refusing_the_filter_or_the_legacy_dump_still_counts_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    listener = listen()
    endpoint = Endpoint(*listener.getsockname())
    try:
        churn(listener, 50, client_closes=True, deadline=time.monotonic() + 10)
        with NetlinkTable([endpoint]) as table:
            expected = table.count()
        assert expected.tw_client == 50
        assert expected == count_sockets(read_socket_tables(), [endpoint])
        # A legacy request type the kernel does not know (EINVAL): v2 requests per family.
        monkeypatch.setattr(sockdiag, "TCPDIAG_GETSOCK", 0x7F)
        with NetlinkTable([endpoint]) as table:
            assert table.count() == expected and not table.legacy and table.use_bytecode
            # Bytecode with an unknown op (EINVAL): no filter, the rows are sorted out here.
            monkeypatch.setattr(netlink, "bytecode", lambda conditions: struct.pack("=BBH", 99, 4, 8))
            assert table.count() == expected and not table.use_bytecode
    finally:
        listener.close()


# -- (c) the fallback to /proc -----------------------------------------------------------------
def test_no_netlink_falls_back_to_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockdiag, "NETLINK_SOCK_DIAG", 0xBAD)  # no such netlink protocol: socket() fails
    listener = listen()
    endpoint = Endpoint(*listener.getsockname())
    try:
        sampler = SocketSampler([endpoint], interval=0.1, mode="thread")
        sampler.start()
        churn(listener, 30, client_closes=True, deadline=time.monotonic() + 10)
        section = sampler.stop()
    finally:
        listener.close()
    assert section["source"] == "proc"
    assert "netlink sock_diag unavailable" in section["source_fallback"]
    assert section["time_wait_client"]["end"] == 30


def test_netlink_failing_mid_run_switches_to_proc() -> None:
    listener = listen()
    endpoint = Endpoint(*listener.getsockname())
    try:
        table_source = TableSource([endpoint])
        assert table_source.name == "netlink" and table_source.fallback_reason is None
        baseline, _ = table_source.baseline()
        churn(listener, 20, client_closes=True, deadline=time.monotonic() + 10)
        assert table_source._netlink is not None
        table_source._netlink._sock.close()  # the next dump fails: EBADF
        counts = table_source.count(baseline, True, None, time.monotonic())
    finally:
        listener.close()
    assert counts.tw_client == 20
    assert table_source.name == "proc" and "failed during the run" in (table_source.fallback_reason or "")


def test_source_choice_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SOURCE_ENV, "proc")
    assert TableSource([TARGET]).name == "proc" and TableSource([TARGET]).fallback_reason is None
    monkeypatch.setenv(SOURCE_ENV, "ebpf")
    with pytest.raises(TelemetryError,
                       match="WORKLOAD_SOCKET_SOURCE='ebpf' is not a socket source\n    fix: use one of netlink, proc"):
        TableSource([TARGET])
    monkeypatch.delenv(SOURCE_ENV)
    assert TableSource([TARGET], read_tables=lambda: {4: "", 6: ""}).name == "proc"  # custom text


def test_sampler_child_reports_its_source(monkeypatch: pytest.MonkeyPatch) -> None:
    listener = listen()
    endpoint = Endpoint(*listener.getsockname())
    try:
        for wanted in ("netlink", "proc"):
            monkeypatch.setenv(SOURCE_ENV, wanted)  # the child inherits the environment
            sampler = SocketSampler([endpoint], interval=0.1)
            sampler.start()
            churn(listener, 10, client_closes=True, deadline=time.monotonic() + 10)
            section = sampler.stop()
            assert sampler.mode == "process"
            assert section["source"] == wanted and "source_fallback" not in section
            assert section["time_wait_client"]["end"] == 10
    finally:
        listener.close()
    assert source.SOURCES == ("netlink", "proc")


def test_baselines_are_interchangeable_between_sources() -> None:
    listener = listen()
    endpoint = Endpoint(*listener.getsockname())
    try:
        churn(listener, 25, client_closes=True, deadline=time.monotonic() + 10)
        with NetlinkTable([endpoint]) as table:
            from_netlink, _ = table.baseline()
            from_proc = socket_identities(read_socket_tables(), [endpoint])
            assert set(from_netlink) == set(from_proc) and len(from_netlink) == 25
            churn(listener, 5, client_closes=False, deadline=time.monotonic() + 10)
            for baseline in (from_netlink, from_proc):
                assert table.count(baseline) == count_sockets(read_socket_tables(), [endpoint], baseline)
                assert table.count(baseline) == SocketCounts(tw_server=5)
    finally:
        listener.close()
    assert isinstance(from_netlink, Baseline)
