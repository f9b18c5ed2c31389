"""Kernel TCP counters and ephemeral-port headroom, for the `kernel` and `ports` sections of run.json.

Counters come from `/proc/net/snmp` (``Tcp:``) and `/proc/net/netstat` (``TcpExt:``); both are
pairs of lines, a header of names and a line of values, and both are per network namespace, so a
delta covers everything in the namespace during the run, not only this process.

Parsers take text (unit-testable on canned input); the ``read_*`` functions wrap them.  What is
missing degrades as follows: no `/proc/net/snmp` or no `ip_local_port_range` raises
`TelemetryError` (not Linux); no `/proc/net/netstat` drops the TcpExt counters; a counter the
kernel does not have is left out; no `tcp_tw_reuse` gives ``None``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from workload.errors import TelemetryError

DEFAULT_SNMP_PATH = "/proc/net/snmp"
DEFAULT_NETSTAT_PATH = "/proc/net/netstat"
DEFAULT_PORT_RANGE_PATH = "/proc/sys/net/ipv4/ip_local_port_range"
DEFAULT_TW_REUSE_PATH = "/proc/sys/net/ipv4/tcp_tw_reuse"
# TCP_TIMEWAIT_LEN is a compile-time constant (60 s) in Linux; there is no sysctl for it.
DEFAULT_TIME_WAIT_SECONDS = 60
FORECAST_SHARE_DIGITS = 4
RATE_DIGITS = 2

TCP_COUNTERS = (
    "ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab", "RetransSegs",
    "InErrs", "OutRsts",
)
TCPEXT_COUNTERS = (
    "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnTimeout", "TCPTimeWaitOverflow", "TW",
    "TWRecycled", "TWKilled", "ListenOverflows", "ListenDrops",
)


def parse_proc_counters(text: str) -> dict[str, dict[str, int]]:
    """Parse snmp/netstat text into ``{"Tcp": {"ActiveOpens": 12, ...}, "TcpExt": {...}}``."""
    groups: dict[str, dict[str, int]] = {}
    pending: dict[str, list[str]] = {}
    for line in text.splitlines():
        prefix, sep, rest = line.partition(":")
        if not sep:
            continue
        if prefix not in pending:  # first line of a pair: the names
            pending[prefix] = rest.split()
            continue
        names = pending.pop(prefix)
        groups[prefix] = {name: int(value) for name, value in zip(names, rest.split(), strict=False)}
    return groups


def select_counters(groups: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """The counters run.json reports, flattened; names the kernel lacks are left out."""
    wanted = (("Tcp", TCP_COUNTERS), ("TcpExt", TCPEXT_COUNTERS))
    return {
        name: groups[group][name]
        for group, names in wanted
        for name in names
        if name in groups.get(group, {})
    }


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def read_kernel_counters(
    snmp_path: str = DEFAULT_SNMP_PATH, netstat_path: str = DEFAULT_NETSTAT_PATH
) -> dict[str, int]:
    """Current values of `TCP_COUNTERS` and `TCPEXT_COUNTERS` for this network namespace."""
    try:
        groups = parse_proc_counters(_read(snmp_path))
    except OSError as exc:
        raise TelemetryError(
            f"cannot read it ({exc}): kernel counters need Linux with /proc mounted",
            fix="run on Linux or turn kernel telemetry off", where=str(snmp_path),
        ) from exc
    # TcpExt is a bonus: without it the Tcp counters alone are still worth reporting.
    with contextlib.suppress(OSError):
        groups.update(parse_proc_counters(_read(netstat_path)))
    return select_counters(groups)


def kernel_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """``after - before`` for every counter present in both (order of ``after``).

    CurrEstab is a gauge, not a counter: its delta is the change in open connections.
    """
    return {name: value - before[name] for name, value in after.items() if name in before}


def parse_port_range(text: str) -> tuple[int, int]:
    """Parse `ip_local_port_range` ("32768\\t60999")."""
    try:
        low, high = (int(part) for part in text.split())
    except ValueError as exc:
        raise TelemetryError(f"unexpected ip_local_port_range {text!r}", fix="expect 'LOW HIGH'") from exc
    return low, high


def port_headroom(range_path: str = DEFAULT_PORT_RANGE_PATH, reuse_path: str = DEFAULT_TW_REUSE_PATH) -> dict:
    """``{"range": [low, high], "size": n, "tcp_tw_reuse": 0|1|2|None}`` (run.json ``ports``).

    ``size`` is the number of ephemeral ports per (source IP, destination IP, destination port):
    that is how many connections to one target can sit in TIME_WAIT at once.
    """
    try:
        low, high = parse_port_range(_read(range_path))
    except OSError as exc:
        raise TelemetryError(
            f"cannot read it ({exc}): port headroom needs Linux", fix="run on Linux", where=str(range_path)
        ) from exc
    try:
        reuse: int | None = int(_read(reuse_path).strip())
    except (OSError, ValueError):
        reuse = None
    return {"range": [low, high], "size": high - low + 1, "tcp_tw_reuse": reuse}


def forecast(
    new_connections_per_s: float, range_size: int, time_wait_seconds: float = DEFAULT_TIME_WAIT_SECONDS
) -> dict:
    """Steady-state TIME_WAIT sockets if every new connection ends in TIME_WAIT on this side.

    Little's law: sockets in TIME_WAIT = arrival rate x time spent there.  ``forecast_share`` is
    that over the port range; at 1.0 or more, connects fail with EADDRNOTAVAIL (unless
    ``tcp_tw_reuse`` lets the kernel recycle them).  It is an upper bound: sockets the server
    closes first leave TIME_WAIT on the server, not here.
    """
    if range_size <= 0:
        raise TelemetryError(f"port range size {range_size} is not positive", fix="check ip_local_port_range")
    in_time_wait = new_connections_per_s * time_wait_seconds
    return {
        "new_connections_per_s": round(new_connections_per_s, RATE_DIGITS),
        "time_wait_seconds": time_wait_seconds,
        "forecast_time_wait": round(in_time_wait),
        "forecast_share": round(in_time_wait / range_size, FORECAST_SHARE_DIGITS),
    }
