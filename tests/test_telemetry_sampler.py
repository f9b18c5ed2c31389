"""Socket sampler: unit tests on canned tables, and a check against the real kernel table and `ss`.

All traffic is to 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from workload.errors import TelemetryError
from workload.telemetry.sampler import SocketSampler
from workload.telemetry.socktable import Endpoint, read_socket_tables

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TARGET = Endpoint("127.0.0.1", 8080)
CLIENT_PORTS = 40
SERVER_PORTS = 30
PRE_CLIENT, PRE_SERVER = 5, 3
DEADLINE_S = 5.0


def tw_row(local: str, remote: str) -> str:
    return f"   0: {local} {remote} 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0\n"


def canned(client_ports: range) -> dict[int, str]:
    rows = "".join(tw_row(f"0100007F:{port:04X}", "0100007F:1F90") for port in client_ports)
    return {4: HEADER + rows, 6: ""}


# -- unit tests on canned tables --------------------------------------------------------------
def test_sampler_section_shape_and_baseline() -> None:
    # Baseline: ports 40000-1.  Then 40000-4 (3 new), then 40001-4 (still 3), then 40003-4 (2).
    readings = iter([canned(range(40000, 40002)), canned(range(40000, 40005)), canned(range(40001, 40005))])
    last = canned(range(40003, 40005))
    sampler = SocketSampler([TARGET], interval=0.05, read_tables=lambda: next(readings, last))
    sampler.start()
    time.sleep(0.2)
    live = sampler.snapshot()
    assert live["running"] and live["current"]["tw_client"] in (2, 3)
    section = sampler.stop()
    assert section["time_wait_client"] == {"peak": 3, "end": 2}
    assert section["established_server"] == {"peak": 0, "end": 0}
    assert section["samples"] == len(section["series"]) >= 3
    times = [point["t"] for point in section["series"]]
    assert times == sorted(times) and times[0] > 0
    assert section["endpoints"] == ["127.0.0.1:8080"] and not sampler.snapshot()["running"]
    json.dumps(section)


def test_server_side_is_null_for_remote_targets() -> None:
    sampler = SocketSampler([TARGET], interval=0.05, server_side_observable=False,
                            read_tables=lambda: canned(range(40000, 40003)))
    section = sampler.stop()  # never started: one sample, no baseline
    assert section["time_wait_client"] == {"peak": 3, "end": 3}
    assert section["time_wait_server"] == {"peak": None, "end": None}
    assert section["series"][0]["est_server"] is None
    assert "null" in json.dumps(section)


def test_unreadable_table_and_bad_interval_raise() -> None:
    def broken() -> dict[int, str]:
        raise TelemetryError("no /proc here")

    with pytest.raises(TelemetryError, match="no /proc"):
        SocketSampler([TARGET], interval=0.05, read_tables=broken).start()
    with pytest.raises(TelemetryError, match="interval"):
        SocketSampler([TARGET], interval=2.0)


# -- the real kernel table -----------------------------------------------------------------------
def _serve(listener: socket.socket, stop: threading.Event) -> None:
    """Accept loop: the first byte says who closes first ("C" client, "S" server)."""
    deadline = time.monotonic() + DEADLINE_S * 2
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(DEADLINE_S)
            if conn.recv(1) == b"C":
                conn.recv(1)  # b"": the client's FIN; our close then leaves the client in TIME_WAIT


def _connect(port: int, who_closes: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as client:
        client.sendall(who_closes)
        if who_closes == b"S":
            client.recv(1)  # b"": wait for the server's FIN so it, not us, ends in TIME_WAIT


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(0.1)
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(server, stop), daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(DEADLINE_S)
    server.close()


def ss_time_wait(port: int) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(client side, server side) TIME_WAIT (local, peer) pairs for ``port``, as `ss` sees them."""
    filter_ = f"( sport = :{port} or dport = :{port} )"
    out = subprocess.run(["ss", "-Htan", "state", "time-wait", filter_], capture_output=True, text=True,
                         timeout=DEADLINE_S, check=True).stdout
    client, server = set(), set()
    for line in out.splitlines():
        local, peer = line.split()[2:4]
        if local.rsplit(":", 1)[1] == str(port):
            server.add((local, peer))
        elif peer.rsplit(":", 1)[1] == str(port):
            client.add((local, peer))
    return client, server


def settle(port: int, expect: tuple[int, int]) -> tuple[set, set]:
    """Poll `ss` (bounded) until the close handshakes are done and the TIME_WAIT counts arrive."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        client, server = ss_time_wait(port)
        if (len(client), len(server)) == expect or time.monotonic() > deadline:
            return client, server
        time.sleep(0.02)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_sampler_matches_ss_on_real_sockets(listener: int) -> None:
    try:
        read_socket_tables()
    except TelemetryError as exc:
        pytest.skip(str(exc))
    for who, count in ((b"C", PRE_CLIENT), (b"S", PRE_SERVER)):
        for _ in range(count):
            _connect(listener, who)
    pre_client, pre_server = settle(listener, (PRE_CLIENT, PRE_SERVER))
    assert (len(pre_client), len(pre_server)) == (PRE_CLIENT, PRE_SERVER)

    sampler = SocketSampler([Endpoint("127.0.0.1", listener)], interval=0.1)
    sampler.start()  # the pre-existing TIME_WAITs become the baseline
    for who, count in ((b"C", CLIENT_PORTS), (b"S", SERVER_PORTS)):
        for _ in range(count):
            _connect(listener, who)
    client, server = settle(listener, (PRE_CLIENT + CLIENT_PORTS, PRE_SERVER + SERVER_PORTS))
    counts = sampler.sample_once()
    section = sampler.stop()

    new_client, new_server = client - pre_client, server - pre_server
    assert (counts.tw_client, counts.tw_server) == (len(new_client), len(new_server))
    assert (counts.tw_client, counts.tw_server) == (CLIENT_PORTS, SERVER_PORTS)
    assert (counts.est_client, counts.est_server) == (0, 0)
    assert section["time_wait_client"]["end"] == CLIENT_PORTS
    assert section["time_wait_server"]["end"] == SERVER_PORTS
    assert section["samples"] >= 2
