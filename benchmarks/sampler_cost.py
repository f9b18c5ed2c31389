"""Sampler cost: the time one socket-table sample takes when the table holds ~30,000 rows.

Fills this network namespace's TCP table over loopback only (127.0.0.1), then times
`SocketSampler.sample_once()` and its parts.  Rows are TIME_WAIT sockets (client closes first),
at most 60 % of ``net.ipv4.tcp_max_tw_buckets`` (shared with everything else in the namespace),
then, if the table is still short of ``--rows``, ESTABLISHED pairs, which cost the same per row
to print and to scan.  Other processes' sockets are in the table too: it is per namespace.
Connections are spread over 16 listener ports so that no destination uses more than a fraction
of the ephemeral port range.

    python benchmarks/sampler_cost.py [--time-wait 30000] [--rows 30000] [--samples 20] [--gevent] [--sources]

It also compares one sample's cost through each table source, netlink sock_diag and /proc
(`workload.telemetry.source`), with the same baseline, in one run (``--sources``: only that).
``--gevent`` monkey-patches first and also measures the worst stall of a 5 ms ticker greenlet
while the sampler runs (child process or OS thread, each source) versus inline on the gevent loop.  The script
stops by itself: every loop is bounded in count and by ``--budget`` seconds.  The TIME_WAIT
sockets it leaves expire after 60 s.
"""

from __future__ import annotations

import sys

if "--gevent" in sys.argv:  # must precede every socket/threading import
    from gevent import monkey

    monkey.patch_all()

import argparse
import os
import resource
import socket
import statistics
import struct
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled
from workload.telemetry import (
    Endpoint,
    KernelCounters,
    SocketSampler,
    count_sockets,
    read_socket_tables,
    socket_identities,
)
from workload.telemetry.socktable import Baseline
from workload.telemetry.source import SOURCE_ENV, TableSource

DEFAULT_TIME_WAIT = 30_000
DEFAULT_ROWS = 30_000
DEFAULT_SAMPLES = 20
# Many destinations: connects to one destination walk the ephemeral range in random steps, and
# once they wrap, tcp_tw_reuse=2 (loopback) recycles our own TIME_WAIT sockets (TWRecycled).
DEFAULT_LISTENERS = 16
DEFAULT_BUDGET_S = 120.0
# Leave the rest of the TIME_WAIT buckets to whatever else runs in this namespace.
TIME_WAIT_SHARE_OF_BUCKETS = 0.6
TW_BUCKETS_PATH = "/proc/sys/net/ipv4/tcp_max_tw_buckets"
SPARE_FDS = 256  # ESTABLISHED pairs hold two descriptors each; keep some for everything else
LOOPBACK = "127.0.0.1"
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0 s}: close with RST, no TIME_WAIT


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def check(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise SystemExit(f"time budget exceeded while {what}")


def table_rows() -> int:
    return sum(max(text.count("\n") - 1, 0) for text in read_socket_tables().values())


def open_listeners(count: int) -> list[socket.socket]:
    listeners = []
    for _ in range(count):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        listener.listen(1024)
        listeners.append(listener)
    return listeners


def connect_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname(), timeout=5)
    server, _ = listener.accept()
    return client, server


def make_time_wait(listeners: list[socket.socket], count: int, budget: Budget) -> None:
    for i in range(count):
        client, server = connect_pair(listeners[i % len(listeners)])
        client.close()  # client closes first: the client side ends in TIME_WAIT
        server.settimeout(5)
        server.recv(1)  # b"": the FIN has arrived, so our close completes the handshake
        server.close()
        if i % 1000 == 0:
            budget.check("creating TIME_WAIT sockets")


def make_established(listeners: list[socket.socket], pairs: int, budget: Budget) -> list[socket.socket]:
    held: list[socket.socket] = []
    for i in range(pairs):
        held.extend(connect_pair(listeners[i % len(listeners)]))
        if i % 1000 == 0:
            budget.check("creating ESTABLISHED sockets")
    return held


def close_with_reset(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        sock.close()


def timed_ms(fn: Callable[[], object], samples: int) -> tuple[float, float]:
    costs = []
    for _ in range(samples):
        began = time.perf_counter()
        fn()
        costs.append((time.perf_counter() - began) * 1000)
    costs.sort()
    return statistics.median(costs), costs[min(len(costs) - 1, round(0.95 * (len(costs) - 1)))]


def report(label: str, fn: Callable[[], object], samples: int) -> None:
    median, p95 = timed_ms(fn, samples)
    print(f"  {label:<52} median {median:7.2f} ms   p95 {p95:7.2f} ms")


def cpu_ms(fn: Callable[[], object], samples: int) -> tuple[float, float]:
    """Median (wall, CPU) ms of ``fn``: CPU is user + system time of this process (the kernel's
    work for a netlink dump or a /proc read included), which other load on the machine inflates less."""
    walls, cpus = [], []
    for _ in range(samples):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    return statistics.median(walls), statistics.median(cpus)


def compare_sources(targets: list[Endpoint], samples: int, before: Baseline) -> None:
    """One sample's cost through netlink vs through /proc, with the same baseline, in one run:
    ``before`` (taken before the sockets were made: they are all new, the usual case during a
    run) and one taken now (they are all a previous run's: the baseline check for each)."""
    proc, netlink = TableSource(targets, prefer="proc"), TableSource(targets, prefer="netlink")
    if netlink.name != "netlink":
        print(f"netlink unavailable here: {netlink.fallback_reason}")
        return
    for label, baseline in (("new sockets", before), ("all in the baseline", netlink.baseline()[0])):
        results = {}
        for source in (netlink, proc):
            counts = source.count(baseline, True, None, time.monotonic())
            results[source.name] = cpu_ms(lambda s=source, b=baseline: s.count(b, True, None, time.monotonic()),
                                          samples)
            print(f"  {source.name:<8} {counts}")
        print(f"per-sample cost, both sides, {label}, over {samples} samples (median):")
        for name, (wall, cpu) in results.items():
            print(f"  {name:<8} wall {wall:7.2f} ms   CPU {cpu:7.2f} ms")
        wall_ratio = results["proc"][0] / results["netlink"][0]
        cpu_ratio = results["proc"][1] / results["netlink"][1]
        print(f"  /proc / netlink: {wall_ratio:.1f}x wall, {cpu_ratio:.1f}x CPU")
    netlink.close()


def measure(targets: list[Endpoint], samples: int) -> None:
    tables = read_socket_tables()
    baseline = socket_identities(tables, targets)
    elsewhere = [Endpoint(LOOPBACK, 9)]  # nothing listens on the discard port here
    ours = count_sockets(tables, targets)
    print(f"rows of our listeners: {ours}")
    print(f"timings over {samples} samples:")
    report("sample_once(), targets = all our listeners", SocketSampler(targets).sample_once, samples)
    report(f"sample_once(), one listener (1/{len(targets)} of our rows)", SocketSampler(targets[:1]).sample_once,
           samples)
    report("sample_once(), a target with no rows", SocketSampler(elsewhere).sample_once, samples)
    report("  of which read_socket_tables()", read_socket_tables, samples)
    report("  of which count_sockets(), our listeners", lambda: count_sockets(tables, targets), samples)
    report("  of which count_sockets(), ... all in the baseline",
           lambda: count_sockets(tables, targets, baseline), samples)
    report("  of which count_sockets(), no row matches", lambda: count_sockets(tables, elsewhere), samples)


def worst_gap_ms(duration: float, work: Callable[[], None]) -> float:
    """Worst stall seen by a 5 ms ticker greenlet while ``work`` runs (gevent mode only)."""
    import gevent

    gaps: list[float] = []

    def ticker() -> None:
        last = time.perf_counter()
        end = last + duration
        while last < end:
            gevent.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    greenlet = gevent.spawn(ticker)
    work()
    greenlet.join(duration + 5)
    return max(gaps) * 1000


def measure_gevent_stall(targets: list[Endpoint], duration: float = 3.0) -> None:
    import gevent

    def inline() -> None:
        sampler = SocketSampler(targets, interval=0.1)
        for _ in range(round(duration / 0.1)):
            sampler.sample_once()
            gevent.sleep(0.1)

    def started(mode: str, source: str) -> Callable[[], None]:
        def run() -> None:
            os.environ[SOURCE_ENV] = source
            try:
                sampler = SocketSampler(targets, interval=0.1, mode=mode)
                sampler.start()
                gevent.sleep(duration)
                section = sampler.stop()
                assert section["source"] == source, section.get("source_fallback")
            finally:
                del os.environ[SOURCE_ENV]
        return run

    print("worst stall of a 5 ms ticker greenlet, sampling every 0.1 s for 3 s:")
    print(f"  no sampling (reference)                          {worst_gap_ms(duration, lambda: None):7.2f} ms")
    for mode in ("process", "thread"):
        for source in ("netlink", "proc"):
            label = f"SocketSampler.start(), {mode} mode, {source}"
            print(f"  {label:<48} {worst_gap_ms(duration, started(mode, source)):7.2f} ms")
    print(f"  sample_once() inline on the gevent loop          {worst_gap_ms(duration, inline):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-wait", type=int, default=DEFAULT_TIME_WAIT, help="TIME_WAIT sockets to create")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="fill up to this with ESTABLISHED")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--listeners", type=int, default=DEFAULT_LISTENERS)
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="seconds, then give up")
    parser.add_argument("--gevent", action="store_true", help="monkey-patch and measure loop stalls")
    parser.add_argument("--sources", action="store_true", help="only compare netlink with /proc (and stalls)")
    args = parser.parse_args()

    budget = Budget(args.budget)
    with open(TW_BUCKETS_PATH) as handle:
        buckets = int(handle.read())
    time_wait = min(args.time_wait, int(buckets * TIME_WAIT_SHARE_OF_BUCKETS))
    listeners = open_listeners(args.listeners)
    targets = [Endpoint(LOOPBACK, listener.getsockname()[1]) for listener in listeners]
    held: list[socket.socket] = []
    try:
        began = time.monotonic()
        before, _ = TableSource(targets, prefer="proc").baseline()
        kernel = KernelCounters()
        kernel.start()
        make_time_wait(listeners, time_wait, budget)
        delta = kernel.stop()
        print("kernel while creating TIME_WAIT:",
              {name: delta.get(name) for name in ("ActiveOpens", "TW", "TWRecycled", "TWKilled",
                                                  "TCPTimeWaitOverflow")})
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        pairs = max(0, min((args.rows - table_rows()) // 2, (fd_limit - SPARE_FDS) // 2))
        held = make_established(listeners, pairs, budget)
        print(f"created {time_wait} TIME_WAIT + {pairs} ESTABLISHED pairs on {args.listeners} loopback ports "
              f"in {time.monotonic() - began:.1f} s (tcp_max_tw_buckets={buckets})")
        print(f"socket table rows: {table_rows()}  (all of them: the table is per network namespace)")
        if not args.sources:
            measure(targets, args.samples)
        compare_sources(targets, args.samples, before)
        if args.gevent:
            measure_gevent_stall(targets)
    finally:
        close_with_reset(held)
        for listener in listeners:
            listener.close()


if __name__ == "__main__":
    main()
