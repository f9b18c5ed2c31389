"""Kernel-side connection telemetry: what the TCP stack saw while a run was going on.

* `socktable` parses `/proc/net/tcp{,6}` and counts the targets' TIME_WAIT and ESTABLISHED
  sockets, client side and server side, excluding a baseline taken at the start;
* `netlink` counts the same sockets from `sock_diag` dumps (`sockdiag`: the wire format), which
  the kernel filters by state and endpoint (several times cheaper at tens of thousands of
  sockets), and `source` picks it wherever it works, with /proc as the fallback (run.json
  `sockets.source`);
* `kernel` reads the namespace's TCP counters and the ephemeral-port headroom;
* `sampler` samples the socket table during a run, in a child process (`sampler_process`) so
  that scanning a large table never holds the load generator's GIL, or on an OS thread.

Everything here is Linux-only, works on the whole network namespace, and never imports locust.

Beside the kernel's view, the process's own: `connections` counts every TCP connect, TLS
handshake and pool discard of the engine's urllib3 connections; `stages` meters a shape's
stages; `cluster` merges workers' telemetry on a master.  May import: `workload.errors`.
"""

from workload.telemetry.kernel import (
    DEFAULT_TIME_WAIT_SECONDS,
    forecast,
    kernel_delta,
    parse_port_range,
    parse_proc_counters,
    port_headroom,
    read_kernel_counters,
    select_counters,
)
from workload.telemetry.sampler import DEFAULT_INTERVAL_S, KernelCounters, SocketSampler
from workload.telemetry.socktable import (
    TCP_STATES,
    Endpoint,
    SocketCounts,
    TableRow,
    count_sockets,
    decode_address,
    endpoints_from_urls,
    parse_table,
    read_socket_tables,
    socket_identities,
    system_resolver,
)

__all__ = [
    "DEFAULT_INTERVAL_S",
    "DEFAULT_TIME_WAIT_SECONDS",
    "TCP_STATES",
    "Endpoint",
    "KernelCounters",
    "SocketCounts",
    "SocketSampler",
    "TableRow",
    "count_sockets",
    "decode_address",
    "endpoints_from_urls",
    "forecast",
    "kernel_delta",
    "parse_port_range",
    "parse_proc_counters",
    "parse_table",
    "port_headroom",
    "read_kernel_counters",
    "read_socket_tables",
    "select_counters",
    "socket_identities",
    "system_resolver",
]
