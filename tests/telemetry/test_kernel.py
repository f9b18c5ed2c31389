"""Kernel counters and port headroom, parsed from canned /proc text."""

from __future__ import annotations

import pytest

from workload.errors import TelemetryError
from workload.telemetry.kernel import (
    forecast,
    kernel_delta,
    parse_port_range,
    parse_proc_counters,
    port_headroom,
    read_kernel_counters,
    select_counters,
)
from workload.telemetry.sampler import KernelCounters

SNMP = """\
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams
Ip: 1 64 1062 0 0 0
Icmp: InMsgs InErrors InCsumErrors
Icmp: 0 0 0
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab \
InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 14 2 0 0 3 1062 628 0 0 10 0
Udp: InDatagrams NoPorts InErrors OutDatagrams
Udp: 5 0 0 5
"""
NETSTAT = """\
TcpExt: SyncookiesSent SyncookiesRecv TW TWRecycled TWKilled PAWSActive ListenOverflows ListenDrops \
TCPAbortOnData TCPAbortOnClose TCPAbortOnMemory TCPAbortOnTimeout TCPTimeWaitOverflow
TcpExt: 0 0 8 0 0 0 1 2 7 0 0 0 0
IpExt: InNoRoutes InTruncatedPkts InMcastPkts
IpExt: 0 0 0
"""


def test_parse_proc_counters_pairs_lines() -> None:
    groups = parse_proc_counters(SNMP)
    assert groups["Tcp"]["MaxConn"] == -1 and groups["Tcp"]["ActiveOpens"] == 14
    assert groups["Udp"] == {"InDatagrams": 5, "NoPorts": 0, "InErrors": 0, "OutDatagrams": 5}


def test_select_counters_flattens_and_skips_missing() -> None:
    groups = parse_proc_counters(SNMP) | parse_proc_counters(NETSTAT)
    got = select_counters(groups)
    assert got["ActiveOpens"] == 14 and got["OutRsts"] == 10 and got["CurrEstab"] == 3
    assert got["TW"] == 8 and got["ListenDrops"] == 2 and got["TCPAbortOnData"] == 7
    assert "MaxConn" not in got and "SyncookiesSent" not in got
    assert "ActiveOpens" in select_counters(parse_proc_counters(SNMP))  # no netstat: Tcp only
    assert "TW" not in select_counters(parse_proc_counters(SNMP))


def test_kernel_delta() -> None:
    before = {"ActiveOpens": 14, "TW": 8, "CurrEstab": 3, "Gone": 1}
    after = {"ActiveOpens": 26, "TW": 20, "CurrEstab": 1, "New": 4}
    assert kernel_delta(before, after) == {"ActiveOpens": 12, "TW": 12, "CurrEstab": -2}


def test_read_kernel_counters_from_files(tmp_path) -> None:
    snmp, netstat = tmp_path / "snmp", tmp_path / "netstat"
    snmp.write_text(SNMP)
    netstat.write_text(NETSTAT)
    assert read_kernel_counters(str(snmp), str(netstat))["TCPAbortOnData"] == 7
    assert "TW" not in read_kernel_counters(str(snmp), str(tmp_path / "missing"))
    with pytest.raises(TelemetryError, match="Linux"):
        read_kernel_counters(str(tmp_path / "missing"), str(netstat))


def test_kernel_counters_recorder() -> None:
    readings = iter([{"ActiveOpens": 10, "TW": 1}, {"ActiveOpens": 25, "TW": 4}])
    recorder = KernelCounters(read=lambda: next(readings))
    with pytest.raises(TelemetryError):
        recorder.stop()
    recorder.start()
    assert recorder.stop() == {"ActiveOpens": 15, "TW": 3}


def test_parse_port_range() -> None:
    assert parse_port_range("32768\t60999\n") == (32768, 60999)
    with pytest.raises(TelemetryError):
        parse_port_range("32768\n")


def test_port_headroom(tmp_path) -> None:
    port_range, reuse = tmp_path / "range", tmp_path / "reuse"
    port_range.write_text("32768\t60999\n")
    reuse.write_text("2\n")
    expected = {"range": [32768, 60999], "size": 28232, "tcp_tw_reuse": 2}
    assert port_headroom(str(port_range), str(reuse)) == expected
    assert port_headroom(str(port_range), str(tmp_path / "missing"))["tcp_tw_reuse"] is None
    with pytest.raises(TelemetryError):
        port_headroom(str(tmp_path / "missing"), str(reuse))


def test_forecast_matches_results_format_example() -> None:
    assert forecast(0.4, 28232) == {
        "new_connections_per_s": 0.4, "time_wait_seconds": 60, "forecast_time_wait": 24,
        "forecast_share": 0.0009,
    }


def test_forecast_past_the_port_range() -> None:
    got = forecast(500.0, 28232, time_wait_seconds=60)
    assert got["forecast_time_wait"] == 30000
    assert got["forecast_share"] == pytest.approx(30000 / 28232, abs=1e-4) and got["forecast_share"] > 1
    assert forecast(0.0, 28232)["forecast_time_wait"] == 0
    with pytest.raises(TelemetryError):
        forecast(1.0, 0)
