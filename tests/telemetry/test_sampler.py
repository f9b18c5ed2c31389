"""Socket sampler: unit tests on canned tables, checks against the real kernel table and `ss` (in
both modes: child process and in-process thread), and the child process's lifetime.

All traffic is to 127.0.0.1; every loop is bounded in count and time; every process started here
stops by itself (the parents of the lifetime tests sleep a bounded time, the sampler children
follow their parent).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workload.errors import TelemetryError
from workload.telemetry.sampler import SocketSampler
from workload.telemetry.socktable import (
    TIME_WAIT_SLACK_S,
    USER_HZ,
    Endpoint,
    count_sockets,
    parse_table,
    read_socket_tables,
    socket_identities,
)

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
TARGET = Endpoint("127.0.0.1", 8080)
CLIENT_PORTS = 40
SERVER_PORTS = 30
PRE_CLIENT, PRE_SERVER = 5, 3
DEADLINE_S = 5.0
MODES = ("thread", "process")
ROOT = Path(__file__).resolve().parents[2]


def tw_row(local: str, remote: str, seconds_left: float = 60.0) -> str:
    when = f"03:{max(0, round(seconds_left * USER_HZ)):08X}"  # TIME_WAIT timer, in USER_HZ ticks
    return f"   0: {local} {remote} 06 00000000:00000000 {when} 00000000     0        0 0 3 0\n"


def canned(client_ports: range, expires: float | None = None) -> dict[int, str]:
    """TIME_WAIT rows for ``client_ports``: as if all expired at ``expires`` (monotonic; default in 60 s)."""
    seconds_left = 60.0 if expires is None else expires - time.monotonic()
    rows = "".join(tw_row(f"0100007F:{port:04X}", "0100007F:1F90", seconds_left) for port in client_ports)
    return {4: HEADER + rows, 6: ""}


# -- unit tests on canned tables --------------------------------------------------------------
def test_sampler_section_shape_and_baseline() -> None:
    # Baseline: ports 40000-1.  Then 40000-4 (3 new), then 40001-4 (still 3), then 40003-4 (2).
    # The rows' timers run down as real ones do, so baseline rows stay the same sockets.
    expires = time.monotonic() + 60
    readings = iter([range(40000, 40002), range(40000, 40005), range(40001, 40005)])
    sampler = SocketSampler([TARGET], interval=0.05,
                            read_tables=lambda: canned(next(readings, range(40003, 40005)), expires))
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


def test_modes() -> None:
    assert SocketSampler([TARGET]).mode == "process"  # the default
    assert SocketSampler([TARGET], read_tables=lambda: canned(range(0))).mode == "thread"  # implied
    with pytest.raises(TelemetryError, match="mode='thread'"):
        SocketSampler([TARGET], read_tables=lambda: canned(range(0)), mode="process")
    with pytest.raises(TelemetryError, match="mode"):
        SocketSampler([TARGET], mode="fork")


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
@pytest.mark.parametrize("mode", MODES)
def test_sampler_matches_ss_on_real_sockets(listener: int, mode: str) -> None:
    try:
        read_socket_tables()
    except TelemetryError as exc:
        pytest.skip(str(exc))
    for who, count in ((b"C", PRE_CLIENT), (b"S", PRE_SERVER)):
        for _ in range(count):
            _connect(listener, who)
    pre_client, pre_server = settle(listener, (PRE_CLIENT, PRE_SERVER))
    assert (len(pre_client), len(pre_server)) == (PRE_CLIENT, PRE_SERVER)

    sampler = SocketSampler([Endpoint("127.0.0.1", listener)], interval=0.1, mode=mode)
    sampler.start()  # the pre-existing TIME_WAITs become the baseline
    assert sampler.mode == mode
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


def _close_first_from(port: int, local_port: int = 0) -> int:
    """Connect from ``local_port`` (0: any free one) with SO_REUSEADDR, close first; returns the port.

    Binding a port held by a TIME_WAIT socket needs SO_REUSEADDR on both the old socket and the
    new one (else EADDRINUSE); a connect from it to the same destination then takes the TIME_WAIT
    over at once (the kernel's check for bound ports; it needs TCP timestamps, on by default).
    Unbound connects do the same through net.ipv4.tcp_tw_reuse (2: loopback only) once the
    TIME_WAIT is tcp_tw_reuse_delay (1 s) old: that is what happens between two runs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        client.settimeout(DEADLINE_S)
        client.bind(("127.0.0.1", local_port))
        client.connect(("127.0.0.1", port))
        client.sendall(b"C")  # the server waits for our FIN, so we end in TIME_WAIT
        return client.getsockname()[1]


def _time_wait_expiry(port: int, local_ports: set[int]) -> dict[int, float]:
    """When (monotonic) the client-side TIME_WAIT rows from ``local_ports`` to ``port`` expire."""
    now, rows = time.monotonic(), parse_table(read_socket_tables()[4], 4)
    return {row.local.port: now + row.timer_s for row in rows
            if row.state == "TIME_WAIT" and row.remote == Endpoint("127.0.0.1", port) and row.local.port in local_ports}


@pytest.mark.parametrize("mode", MODES)
def test_sampler_counts_time_wait_that_took_over_a_baseline_socket(listener: int, mode: str) -> None:
    """A previous run's TIME_WAIT sockets are the baseline; connections of this run reuse their
    ports (same destination), and their TIME_WAIT rows look exactly like the baseline's."""
    try:
        read_socket_tables()
    except TelemetryError as exc:
        pytest.skip(str(exc))
    target = Endpoint("127.0.0.1", listener)
    old_ports = {_close_first_from(listener) for _ in range(PRE_CLIENT * 2)}
    assert len(settle(listener, (len(old_ports), 0))[0]) == len(old_ports)
    before = _time_wait_expiry(listener, old_ports)
    assert before.keys() == old_ports
    assert all(55 < expiry - time.monotonic() <= 60 for expiry in before.values())  # USER_HZ is right: ~60 s

    baseline = socket_identities(read_socket_tables(), [target])  # what the old code compared to
    sampler = SocketSampler([target], interval=0.1, mode=mode)
    sampler.start()
    assert sampler.sample_once().tw_client == 0  # the previous run's TIME_WAITs are left out

    time.sleep(TIME_WAIT_SLACK_S + 0.5)  # a takeover by tcp_tw_reuse comes at least 1 s later
    for old_port in sorted(old_ports):
        try:
            assert _close_first_from(listener, old_port) == old_port
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                sampler.stop()
                pytest.skip(f"this kernel does not let a new connection take over a TIME_WAIT: {exc}")
            raise
    fresh = CLIENT_PORTS // 4
    for _ in range(fresh):
        _connect(listener, b"C")
    settle(listener, (len(old_ports) + fresh, 0))
    # The kernel really replaced them: same identities, timers restarted (expiring ~1 s later).
    after = _time_wait_expiry(listener, old_ports)
    assert after.keys() == old_ports
    assert all(after[port] > before[port] + TIME_WAIT_SLACK_S for port in old_ports)

    deadline = time.monotonic() + DEADLINE_S
    while (counts := sampler.sample_once()).tw_client < len(old_ports) + fresh and time.monotonic() < deadline:
        time.sleep(0.05)
    section = sampler.stop()
    assert counts.tw_client == len(old_ports) + fresh
    assert section["time_wait_client"]["end"] == len(old_ports) + fresh
    # Comparing identities alone (the old behaviour) misses every one of the taken-over sockets.
    assert count_sockets(read_socket_tables(), [target], frozenset(baseline)).tw_client == fresh


# -- the child process: fallbacks and lifetime -----------------------------------------------------
def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def _wait_gone(pid: int, timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_if_alive(pid: int) -> None:
    """For processes that are not our children (we cannot tell whether they were reaped)."""
    if pid and not _gone(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill_child(proc: subprocess.Popen) -> None:
    """A sampler's child, if a failed test left it running (Popen never signals a reaped pid)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(DEADLINE_S)


def _needs_proc() -> None:
    try:
        read_socket_tables()
    except TelemetryError as exc:
        pytest.skip(str(exc))


def test_child_process_reports_and_exits_at_stop() -> None:
    _needs_proc()
    sampler = SocketSampler([TARGET], interval=0.05)
    sampler.start()
    assert sampler.mode == "process"
    proc = sampler._child.proc
    pid = proc.pid
    try:
        assert pid != os.getpid() and not _gone(pid)
        deadline = time.monotonic() + DEADLINE_S
        while (live := sampler.snapshot())["samples"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert live["running"] and live["current"] is not None and live["last_sample_ms"] is not None
        section = sampler.stop()
        assert proc.returncode == 0, "stop() did not reap the child"
    finally:
        _kill_child(proc)
    assert section["samples"] == len(section["series"]) >= 4  # the periodic ones and the final one
    times = [point["t"] for point in section["series"]]
    assert times == sorted(times) and times[0] > 0
    assert "error" not in section and not sampler.snapshot()["running"]
    json.dumps(section)


def test_dropped_sampler_stops_its_child() -> None:
    """A sampler dropped without stop() (a run that never ended properly) takes its child along."""
    _needs_proc()
    sampler = SocketSampler([TARGET], interval=0.05)
    sampler.start()
    proc = sampler._child.proc
    try:
        del sampler
        gc.collect()
        proc.wait(DEADLINE_S)  # raises TimeoutExpired if the child outlived its sampler
        assert proc.returncode == 0
    finally:
        _kill_child(proc)


def test_falls_back_to_thread_when_the_child_cannot_start(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    _needs_proc()
    monkeypatch.setattr(sys, "executable", str(ROOT / "no-such-python"))
    sampler = SocketSampler([TARGET], interval=0.05)
    with caplog.at_level(logging.WARNING, logger="workload.telemetry.sampler"):
        sampler.start()
    assert sampler.mode == "thread" and sampler._child is None
    assert "cannot start the socket sampler process" in caplog.text
    time.sleep(0.2)
    section = sampler.stop()
    assert section["samples"] >= 2 and "error" not in section


FAKE_CHILDREN = {
    # Reports what sampler_process reports when it cannot read the table: start() raises, as the
    # thread would (this process could not read the table either).
    "error": 'import os; os.write(1, b\'{"error": "no /proc here"}\\n\'); raise SystemExit(1)',
    # Exits without a word (a broken installation, say): a failed start, so thread mode.
    "silent": "raise SystemExit(3)",
}


@pytest.mark.parametrize("kind", sorted(FAKE_CHILDREN))
def test_child_failing_at_start(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    _needs_proc()
    (tmp_path / "fake_sampler_child.py").write_text(FAKE_CHILDREN[kind] + "\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setattr("workload.telemetry.sampler.CHILD_MODULE", "fake_sampler_child")
    sampler = SocketSampler([TARGET], interval=0.05)
    with caplog.at_level(logging.WARNING, logger="workload.telemetry.sampler"):
        if kind == "error":
            with pytest.raises(TelemetryError, match="no /proc here"):
                sampler.start()
            assert not sampler.snapshot()["running"]
            return
        sampler.start()
    assert sampler.mode == "thread" and "exited at start (status 3)" in caplog.text
    assert sampler.stop()["samples"] >= 1


@pytest.mark.parametrize("mode", ["kill", "hang"])
def test_takes_over_when_the_child_dies_or_hangs(listener: int, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    """The child's baseline survives it: after the takeover, old TIME_WAITs are still left out."""
    _needs_proc()
    for _ in range(PRE_CLIENT):
        _connect(listener, b"C")
    settle(listener, (PRE_CLIENT, 0))
    sampler = SocketSampler([Endpoint("127.0.0.1", listener)], interval=0.05)
    sampler.start()
    proc = sampler._child.proc
    pid = proc.pid
    try:
        time.sleep(0.2)
        with caplog.at_level(logging.WARNING, logger="workload.telemetry.sampler"):
            if mode == "kill":
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + DEADLINE_S
                while sampler.mode != "thread" and time.monotonic() < deadline:
                    time.sleep(0.02)  # the reading thread sees EOF and takes over
                before = sampler.snapshot()["samples"]
            else:
                os.kill(pid, signal.SIGSTOP)  # stuck: stop() must kill it and finish here
            for _ in range(CLIENT_PORTS // 4):
                _connect(listener, b"C")
            settle(listener, (PRE_CLIENT + CLIENT_PORTS // 4, 0))
            time.sleep(0.3)
            began = time.monotonic()
            section = sampler.stop(timeout=1.0 if mode == "hang" else DEADLINE_S)
            took = time.monotonic() - began
            if mode == "kill":
                assert section["samples"] > before + 2  # sampling went on in this process
            else:
                assert 1.0 <= took < 1.0 + DEADLINE_S
            assert sampler.snapshot()["samples"] == section["samples"]
            assert proc.returncode == -signal.SIGKILL  # reaped by stop()
    finally:
        _kill_child(proc)
    assert sampler.mode == "thread"
    assert "exited unexpectedly" in caplog.text
    assert section["time_wait_client"]["end"] == CLIENT_PORTS // 4  # the baseline's 5 left out
    assert "error" not in section


PARENT = textwrap.dedent("""
    import os, sys, time
    from workload.telemetry import Endpoint, SocketSampler

    sampler = SocketSampler([Endpoint("127.0.0.1", 9)], interval=0.1)
    sampler.start()
    holder = 0
    if sys.argv[1] == "hold":  # a forked process keeps the child's stdin open: no EOF for it
        holder = os.fork()
        if holder == 0:
            time.sleep(20)
            os._exit(0)
    print(sampler.mode, sampler._child.proc.pid, holder, flush=True)
    time.sleep(20)  # bounded: this parent ends by itself if the test does not kill it
""")


@pytest.mark.parametrize("how", ["eof", "hold"])
def test_child_exits_when_its_parent_is_killed(how: str) -> None:
    """SIGKILL the process that started a sampler: its child goes too, by stdin EOF or, when a
    forked process still holds that pipe, by noticing its parent changed."""
    _needs_proc()
    parent = subprocess.Popen([sys.executable, "-c", PARENT, how], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = holder = 0
    try:
        mode, child, holder = parent.stdout.readline().split()
        child, holder = int(child), int(holder)
        assert mode == "process" and not _gone(child)
        parent.kill()
        parent.wait(DEADLINE_S)
        assert _wait_gone(child), "the sampler child outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(DEADLINE_S)
        for pid in (child, holder):  # not our children: reaped (if at all) by init
            _kill_if_alive(pid)
