"""Socket sampler: the targets' TIME_WAIT and ESTABLISHED sockets over a run (run.json `sockets`).

Reading `/proc/net/tcp` is file I/O, which gevent cannot make cooperative: with tens of thousands
of rows one read stalls every greenlet for tens of milliseconds.  So all table reads (the
baseline, the periodic samples and the final one) happen on a real OS thread: the original,
unpatched ``_thread.start_new_thread`` when gevent has monkey-patched threading, a plain
``threading.Thread`` otherwise.  The two sides only share a real (unpatched) lock, held just long
enough to copy a few numbers, and the caller waits for the thread by polling with ``time.sleep``,
which is cooperative under gevent.  This module never imports gevent or locust itself.
"""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from workload.errors import TelemetryError
from workload.telemetry.kernel import kernel_delta, read_kernel_counters
from workload.telemetry.socktable import (
    Baseline,
    Endpoint,
    SocketCounts,
    SocketTables,
    count_sockets,
    read_socket_tables,
    socket_identities,
)

DEFAULT_INTERVAL_S = 1.0
MAX_INTERVAL_S = 1.0  # run.json promises at least one sample per second
DEFAULT_WAIT_TIMEOUT_S = 10.0
POLL_S = 0.005
THREAD_NAME = "workload-socket-sampler"
# SocketCounts field -> run.json `sockets` key.
SECTIONS = {
    "tw_client": "time_wait_client",
    "tw_server": "time_wait_server",
    "est_client": "established_client",
    "est_server": "established_server",
}
SERVER_FIELDS = frozenset({"tw_server", "est_server"})


def _gevent_patched_threading() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _real_lock() -> Any:
    """A lock that blocks the OS thread, also under gevent (a patched lock is greenlet-only)."""
    if _gevent_patched_threading():
        return sys.modules["gevent.monkey"].get_original("_thread", "allocate_lock")()
    return _thread.allocate_lock()


def _yield_gil() -> None:
    """Let other threads (the gevent loop) take the GIL now instead of after the switch interval."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("time"):
        monkey.get_original("time", "sleep")(0)  # gevent's sleep would need a hub on this thread
    else:
        time.sleep(0)


def _start_os_thread(target: Callable[[], None]) -> None:
    if _gevent_patched_threading():
        sys.modules["gevent.monkey"].get_original("_thread", "start_new_thread")(target, ())
    else:
        threading.Thread(target=target, name=THREAD_NAME, daemon=True).start()


def _wait_released(lock: Any, timeout: float) -> bool:
    """Wait until another thread releases ``lock`` without blocking the gevent loop."""
    deadline = time.monotonic() + timeout
    while not lock.acquire(False):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)  # gevent.sleep when monkey-patched: other greenlets keep running
    return True


class SocketSampler:
    """Samples the targets' sockets once per ``interval`` on an OS thread, between start() and stop().

    One sampler covers one run: make a new one for the next run (its baseline differs).
    """

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        interval: float = DEFAULT_INTERVAL_S,
        server_side_observable: bool = True,
        read_tables: Callable[[], SocketTables] = read_socket_tables,
    ) -> None:
        if not 0 < interval <= MAX_INTERVAL_S:
            raise TelemetryError(f"sampling interval {interval} s; fix: use 0 < interval <= {MAX_INTERVAL_S}")
        self.endpoints = tuple(endpoints)
        self.interval = interval
        self.server_side_observable = server_side_observable
        self._read_tables = read_tables
        self._baseline: Baseline = Baseline()
        self._lock = _real_lock()
        self._t0 = time.monotonic()
        self._series: list[dict[str, Any]] = []
        self._peak: dict[str, int] = dict.fromkeys(SECTIONS, 0)
        self._last: SocketCounts | None = None
        self._last_cost_ms: float | None = None
        self._error: str | None = None
        self._running = False
        self._wake: Any = None  # held by the caller; released to stop the thread
        self._done: Any = None  # held by the thread; released when it has exited

    # -- sampling ---------------------------------------------------------------------------
    def sample_once(self) -> SocketCounts:
        """Read the tables now (in the calling thread), record one sample and return it."""
        return self._sample(pause=None)

    def _sample(self, pause: Callable[[], None] | None) -> SocketCounts:
        began = time.perf_counter()
        read_at = time.monotonic()  # before the read: a lower bound for the expiries (see Baseline)
        tables = self._read_tables()
        counts = count_sockets(tables, self.endpoints, self._baseline, self.server_side_observable, pause, read_at)
        cost_ms = (time.perf_counter() - began) * 1000
        point: dict[str, Any] = {"t": round(time.monotonic() - self._t0, 3), **self._visible(counts)}
        with self._lock:
            self._series.append(point)
            self._peak = {name: max(self._peak[name], getattr(counts, name)) for name in SECTIONS}
            self._last, self._last_cost_ms = counts, cost_ms
        return counts

    def _visible(self, counts: SocketCounts) -> dict[str, int | None]:
        """Counts as reported: server-side ones are None when the server is not on this host."""
        return {k: (None if k in SERVER_FIELDS and not self.server_side_observable else v)
                for k, v in asdict(counts).items()}

    def _sample_safely(self, pause: Callable[[], None] | None = _yield_gil) -> bool:
        try:
            # On the thread, yielding between scan chunks keeps the gevent loop's GIL waits short.
            self._sample(pause)
        except (TelemetryError, OSError) as exc:
            with self._lock:
                self._error = str(exc)
            return False
        return True

    def _take_baseline(self) -> None:
        tables = self._read_tables()
        # After the read: an upper bound for the expiries, so the same socket never looks newer.
        self._t0 = time.monotonic()
        self._baseline = socket_identities(tables, self.endpoints, self._t0)

    # -- the thread -------------------------------------------------------------------------
    def _run(self, ready: Any) -> None:
        try:
            try:
                self._take_baseline()
            except (TelemetryError, OSError) as exc:
                self._error = str(exc)
                return
            finally:
                ready.release()
            self._loop()
        finally:
            self._done.release()

    def _loop(self) -> None:
        due = time.monotonic() + self.interval
        while not self._wake.acquire(True, max(0.0, due - time.monotonic())):
            if not self._sample_safely():
                return
            # Fixed schedule without drift; after a stall, resume from now instead of bursting.
            due = max(due + self.interval, time.monotonic())
        self._sample_safely()  # the final figures, taken when stop() asked

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = DEFAULT_WAIT_TIMEOUT_S) -> None:
        """Take the baseline (on the sampling thread) and start sampling; raises TelemetryError
        if the socket table cannot be read."""
        if self._running:
            return
        ready, self._wake, self._done = _real_lock(), _real_lock(), _real_lock()
        for lock in (ready, self._wake, self._done):
            lock.acquire()
        self._running = True
        _start_os_thread(lambda: self._run(ready))
        if not _wait_released(ready, timeout):
            raise TelemetryError(f"taking the socket baseline took over {timeout} s; fix: check /proc")
        if self._error is not None:
            self._running = False
            raise TelemetryError(self._error)

    def stop(self, timeout: float = DEFAULT_WAIT_TIMEOUT_S) -> dict[str, Any]:
        """Stop sampling (the thread takes a final sample) and return the run.json `sockets` section."""
        if self._running:
            self._wake.release()
            if not _wait_released(self._done, timeout):
                self._error = self._error or f"the sampling thread did not stop within {timeout} s"
            self._running = False
        elif self._last is None:
            self._sample_safely(pause=None)  # never started: one sample so the section is not empty
        return self._section(include_series=True)

    def snapshot(self, include_series: bool = False) -> dict[str, Any]:
        """Live figures for a UI; safe to call from any thread or greenlet at any time."""
        section = self._section(include_series)
        with self._lock:
            last, cost = self._last, self._last_cost_ms
        section.update(
            running=self._running,
            t=round(time.monotonic() - self._t0, 3),
            current=self._visible(last) if last is not None else None,
            last_sample_ms=None if cost is None else round(cost, 3),
        )
        return section

    def _section(self, include_series: bool) -> dict[str, Any]:
        with self._lock:
            last, peak, samples = self._last, dict(self._peak), len(self._series)
            series = [dict(point) for point in self._series] if include_series else None
            error = self._error
        section: dict[str, Any] = {
            "endpoints": [str(endpoint) for endpoint in self.endpoints],
            "server_side_observable": self.server_side_observable,
        }
        end = self._visible(last) if last is not None else dict.fromkeys(SECTIONS)
        for name, key in SECTIONS.items():
            # No sample yet, or a server we cannot see: null, never a misleading 0.
            section[key] = {"peak": None if end[name] is None else peak[name], "end": end[name]}
        section["samples"] = samples
        if series is not None:
            section["series"] = series
        if error is not None:
            section["error"] = error
        return section


class KernelCounters:
    """Records kernel TCP counters at start() and returns their deltas at stop() (run.json `kernel`)."""

    def __init__(self, read: Callable[[], dict[str, int]] = read_kernel_counters) -> None:
        self._read = read
        self._before: dict[str, int] | None = None

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> dict[str, int]:
        if self._before is None:
            raise TelemetryError("KernelCounters.stop() before start(); fix: call start() first")
        return kernel_delta(self._before, self._read())
