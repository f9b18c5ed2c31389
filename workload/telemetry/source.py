"""Table source: where the socket sampler reads the kernel's socket table from.

``"netlink"`` (`netlink.NetlinkTable`, a sock_diag dump filtered by the kernel) is the default
wherever it works; ``"proc"`` (`socktable`, parsing ``/proc/net/tcp{,6}``) is the fallback.  A
probe at start (one real count) decides: any failure (no AF_NETLINK, EPERM, a kernel refusing the
request, a reply that does not parse) selects /proc, and so does a failure later in the run, for
the rest of it.  A custom table reader (tests) always means /proc text.  Both sources count the
same sockets the same way, and their baselines are interchangeable (identities in /proc form).
The name of the source in use goes into run.json (`sockets.source`).
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet

from workload.errors import TelemetryError
from workload.telemetry.netlink import NetlinkTable
from workload.telemetry.socktable import (
    Baseline,
    Endpoint,
    Pause,
    SocketCounts,
    SocketIdentity,
    SocketTables,
    count_sockets,
    read_socket_tables,
    socket_identities,
)

SOURCES = ("netlink", "proc")
# Set to "proc" to skip netlink (to compare, or on a kernel whose netlink replies are suspect).
SOURCE_ENV = "WORKLOAD_SOCKET_SOURCE"
# What may go wrong with netlink: the socket, the kernel's answer, or its parse.
NETLINK_FAILURES = (OSError, TelemetryError, struct.error, ValueError, IndexError)


class TableSource:
    """Counts the targets' sockets from netlink if it works here, else from /proc text."""

    def __init__(self, endpoints: Iterable[Endpoint], read_tables: Callable[[], SocketTables] = read_socket_tables,
                 prefer: str | None = None) -> None:
        self.endpoints = tuple(endpoints)
        self._read_tables = read_tables
        self._netlink: NetlinkTable | None = None
        self.fallback_reason: str | None = None  # why netlink is not used, if it was wanted
        prefer = prefer or os.environ.get(SOURCE_ENV) or "netlink"
        if prefer not in SOURCES:
            raise TelemetryError(f"{SOURCE_ENV}={prefer!r} is not a socket source",
                                 fix=f"use one of {', '.join(SOURCES)}")
        if prefer == "netlink" and read_tables is read_socket_tables:
            self._probe()

    @property
    def name(self) -> str:
        return "netlink" if self._netlink is not None else "proc"

    def _probe(self) -> None:
        table = None
        try:
            table = NetlinkTable(self.endpoints)
            table.count()  # both states, both sides: every request the run will make
        except NETLINK_FAILURES as exc:
            if table is not None:
                table.close()
            self.fallback_reason = f"netlink sock_diag unavailable ({exc}); reading /proc/net/tcp instead"
            return
        self._netlink = table

    def _give_up_netlink(self, exc: BaseException) -> None:
        assert self._netlink is not None
        self._netlink.close()
        self._netlink = None
        self.fallback_reason = f"netlink sock_diag failed during the run ({exc}); reading /proc/net/tcp instead"

    def baseline(self) -> tuple[Baseline, float]:
        """The baseline and the `time.monotonic` time just after it was read."""
        if self._netlink is not None:
            try:
                return self._netlink.baseline()
            except NETLINK_FAILURES as exc:
                self._give_up_netlink(exc)
        tables = self._read_tables()
        read_at = time.monotonic()  # after the read: an upper bound for the expiries (see Baseline)
        return socket_identities(tables, self.endpoints, read_at), read_at

    def count(self, baseline: AbstractSet[SocketIdentity], server_side: bool, pause: Pause | None,
              read_at: float) -> SocketCounts:
        """`count_sockets` from the source in use; ``read_at``: `time.monotonic` before the read."""
        if self._netlink is not None:
            try:
                return self._netlink.count(baseline, server_side, read_at, pause)
            except NETLINK_FAILURES as exc:
                self._give_up_netlink(exc)
        return count_sockets(self._read_tables(), self.endpoints, baseline, server_side, pause, read_at)

    def close(self) -> None:
        if self._netlink is not None:
            self._netlink.close()
