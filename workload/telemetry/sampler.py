"""Socket sampler: the targets' TIME_WAIT and ESTABLISHED sockets over a run (run.json `sockets`).

Scanning `/proc/net/tcp` is Python work: with tens of thousands of rows (a ``close`` run leaves
~50,000 server-side TIME_WAIT rows on loopback) one sample costs ~100 ms, and wherever it runs
inside the load generator it holds the GIL that the gevent loop needs.  So by default (mode
``"process"``) the sampling loop runs in a child process, `workload.telemetry.sampler_process`:
it takes the baseline and then one sample per ``interval``, each written to its stdout as a JSON
line.  In this process a real OS thread reads those lines (a blocking read releases the GIL) and
keeps the latest figures and the series under a real lock, so `snapshot()` stays cheap.

The table is read through `workload.telemetry.source`: a netlink sock_diag dump where that works
(the kernel filters the rows; a few times cheaper at tens of thousands of sockets), else the
/proc text; the section's ``source`` says which, per process ("thread" mode or the child).

Mode ``"thread"`` (the fallback, and what a custom ``read_tables`` implies) runs the same loop on
a real OS thread here, yielding the GIL between scan chunks.  If the child cannot start, the
sampler starts in thread mode instead; if it dies during a run, the reading thread takes over
from where it stopped, with the child's baseline (which the child leaves in an unnamed temporary
file for that purpose), so a run never loses its socket figures for that reason.  Either way a
warning is logged.

The OS thread is the original, unpatched ``_thread.start_new_thread`` when gevent has
monkey-patched threading, a plain ``threading.Thread`` otherwise.  The two sides only share a
real (unpatched) lock, held just long enough to copy a few numbers, and the caller waits by
polling with ``time.sleep``, which is cooperative under gevent; spawning and reaping the child
use `subprocess`, gevent's cooperative one when patched.  The thread never logs (a patched
logging lock is greenlet-only): its warnings are logged by the next `snapshot()` or `stop()`.
This module never imports gevent or locust itself.
"""

from __future__ import annotations

import _thread
import bisect
import contextlib
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from functools import partial
from pathlib import Path
from typing import IO, Any

from workload.errors import TelemetryError
from workload.telemetry.kernel import kernel_delta, read_kernel_counters
from workload.telemetry.socktable import (
    Baseline,
    Endpoint,
    SocketCounts,
    SocketTables,
    read_socket_tables,
)
from workload.telemetry.source import TableSource

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 1.0
MAX_INTERVAL_S = 1.0  # run.json promises at least one sample per second
DEFAULT_WAIT_TIMEOUT_S = 10.0
KILL_GRACE_S = 5.0  # after killing a stuck child: time to reap it and take the final sample here
POLL_S = 0.005
THREAD_NAME = "workload-socket-sampler"
MODES = ("process", "thread")
# Not imported: it is run as __main__ in the child, and importing it here too would make runpy warn.
CHILD_MODULE = "workload.telemetry.sampler_process"
STOP_COMMAND = b"stop\n"
# SocketCounts field -> run.json `sockets` key.
SECTIONS = {
    "tw_client": "time_wait_client",
    "tw_server": "time_wait_server",
    "est_client": "established_client",
    "est_server": "established_server",
}
SERVER_FIELDS = frozenset({"tw_server", "est_server"})
COUNT_FIELDS = tuple(field.name for field in fields(SocketCounts))


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


def _package_root() -> str:
    """The directory holding the `workload` package, so the child imports this same copy."""
    return str(Path(__file__).resolve().parents[2])


def _close_fd(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


class _ChildPipe:
    """The write end of the child's stdin: writing "stop" (or closing it) asks for the final sample.

    Shared by the sampler and its finalizer, so a sampler dropped without stop() still stops its
    child (at garbage collection, or at interpreter exit at the latest)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.owner = os.getpid()

    def stop(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None or os.getpid() != self.owner:
            return  # a forked copy of this process (exiting, say) must not stop the owner's child
        with contextlib.suppress(OSError):  # the child is gone already
            os.write(fd, STOP_COMMAND)
        _close_fd(fd)


class _Child:
    """One sampler child process and the parent's ends of its pipes and baseline file."""

    def __init__(self, endpoints: tuple[Endpoint, ...], interval: float, server_side: bool) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        # Unnamed once open; kept until the sampler goes (sample_once() after stop() still needs it).
        self.baseline_file = tempfile.TemporaryFile(prefix="workload-sampler-")  # noqa: SIM115
        in_read = in_write = out_read = out_write = None
        try:
            in_read, in_write = os.pipe()
            out_read, out_write = os.pipe()
            config = {"endpoints": [str(endpoint) for endpoint in endpoints], "interval": interval,
                      "server_side": server_side, "ppid": os.getpid(),
                      "baseline_fd": self.baseline_file.fileno()}
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [_package_root(), env.get("PYTHONPATH")]))
            if not sys.executable:
                raise OSError("no Python interpreter path (sys.executable is empty)")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, json.dumps(config)],
                stdin=in_read, stdout=out_write, pass_fds=(self.baseline_file.fileno(),), env=env,
                close_fds=True,
                # Not in the terminal's process group: a Ctrl-C is for the load process, which stops
                # this child itself (stdin EOF, parent gone); it would print a traceback mid-start-up.
                start_new_session=True,
            )
            self.stdout = open(out_read, "rb", buffering=1 << 16)  # noqa: SIM115  (closed by the reader)
            out_read = None
            self.stdin = _ChildPipe(in_write)
            in_write = None
        except BaseException:
            self.baseline_file.close()
            _close_fd(in_write)
            _close_fd(out_read)
            raise
        finally:
            _close_fd(in_read)  # the child's ends: ours must go, or we would never see its EOF
            _close_fd(out_write)

    def load_baseline(self) -> Baseline:
        """The child's baseline, from the file it wrote before it said "ready"."""
        fd = self.baseline_file.fileno()
        size, data = os.fstat(fd).st_size, b""
        while len(data) < size:  # pread: the file offset is shared with the child
            chunk = os.pread(fd, size - len(data), len(data))
            if not chunk:
                break
            data += chunk
        baseline = pickle.loads(data)
        if not isinstance(baseline, Baseline):
            raise TelemetryError("the sampler process left no baseline", fix="see the warnings above")
        return baseline

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(OSError):
                self.proc.kill()

    def reap(self, timeout: float) -> None:
        """Wait for the child to exit (cooperatively under gevent), killing it after ``timeout``."""
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(KILL_GRACE_S)


def _read_child(ref: weakref.ReferenceType[SocketSampler], stream: IO[bytes], token: object, done: Any) -> None:
    """The reading thread: hands the child's lines to the sampler (``ref``), then its EOF.

    Holds only a weak reference while it waits for a line, so that a sampler dropped without
    stop() can be collected (its finalizer then stops the child, whose EOF ends this thread)."""
    try:
        for line in stream:  # a blocking read on an OS thread: the GIL is released meanwhile
            sampler = ref()
            if sampler is None or sampler._reader is not token:
                return
            sampler._on_child_line(line)
            del sampler
        sampler = ref()
        if sampler is not None and sampler._reader is token:
            sampler._on_child_exit()
    finally:
        stream.close()
        done.release()


class SocketSampler:
    """Samples the targets' sockets once per ``interval`` between start() and stop(), in a child
    process (``mode="process"``, the default) or on an OS thread here (``mode="thread"``, the
    default when ``read_tables`` is given: a custom reader cannot cross a process boundary).

    One sampler covers one run: make a new one for the next run (its baseline differs).
    """

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        interval: float = DEFAULT_INTERVAL_S,
        server_side_observable: bool = True,
        read_tables: Callable[[], SocketTables] = read_socket_tables,
        mode: str | None = None,
    ) -> None:
        if not 0 < interval <= MAX_INTERVAL_S:
            raise TelemetryError(f"sampling interval {interval} s is out of range",
                                 fix=f"use 0 < interval <= {MAX_INTERVAL_S}")
        custom_reader = read_tables is not read_socket_tables
        if mode is None:
            mode = "thread" if custom_reader else "process"
        if mode not in MODES:
            raise TelemetryError(f"unknown sampler mode {mode!r}", fix=f"use one of {', '.join(MODES)}")
        if mode == "process" and custom_reader:
            raise TelemetryError("a custom read_tables cannot run in a child process", fix="use mode='thread'")
        self.endpoints = tuple(endpoints)
        self.interval = interval
        self.server_side_observable = server_side_observable
        self.mode = mode  # where sampling runs now: "process" falls back to "thread" (see the module doc)
        self._read_tables = read_tables
        self._baseline: Baseline = Baseline()
        self._lock = _real_lock()
        self._t0 = time.monotonic()
        self._series: list[dict[str, Any]] = []
        self._peak: dict[str, int] = dict.fromkeys(SECTIONS, 0)
        self._last: SocketCounts | None = None
        self._last_t: float | None = None
        self._last_cost_ms: float | None = None
        self._error: str | None = None
        self._running = False
        self._wake: Any = None  # held by the caller; released to stop the thread
        self._done: Any = None  # held by the thread; released when it has exited
        # Process mode.
        self._child: _Child | None = None
        self._reader: object | None = None  # token of the current reading thread
        self._ready: Any = None  # held by the reading thread until the child is ready (or gone)
        self._child_ready = False
        self._child_final = False
        self._child_baseline = False  # self._baseline is the child's
        self._warnings: list[str] = []
        self._finalizer: weakref.finalize | None = None
        self._sources: dict[str, TableSource] = {}  # see _source()
        self._source_name: str | None = None  # the source of the latest figures (run.json `source`)
        self._source_fallback: str | None = None  # why that is not netlink, when netlink was wanted

    @property
    def started_monotonic(self) -> float:
        """CLOCK_MONOTONIC at the sampler's time zero: its series' `t` counts from here."""
        return self._t0

    # -- sampling ---------------------------------------------------------------------------
    def sample_once(self) -> SocketCounts:
        """Read the tables now (in the calling thread), record one sample and return it.  In process
        mode it uses the child's baseline (loaded on the first call)."""
        if self._child is not None and not self._child_baseline:
            self._adopt_child_baseline()
        return self._sample(pause=None, caller="inline")

    def _source(self, caller: str) -> TableSource:
        """The table source of the sampling thread or of sample_once() callers ("thread",
        "inline"): one each, because a netlink socket serves one dump at a time."""
        source = self._sources.get(caller)
        if source is None:
            source = self._sources[caller] = TableSource(self.endpoints, self._read_tables)
        return source

    def _note_source(self, name: str, fallback: str | None) -> None:
        with self._lock:
            self._source_name, self._source_fallback = name, fallback

    def _sample(self, pause: Callable[[], None] | None, caller: str = "thread") -> SocketCounts:
        began = time.perf_counter()
        read_at = time.monotonic()  # before the read: a lower bound for the expiries (see Baseline)
        source = self._source(caller)
        counts = source.count(self._baseline, self.server_side_observable, pause, read_at)
        cost_ms = (time.perf_counter() - began) * 1000
        self._note_source(source.name, source.fallback_reason)
        self._record(counts, round(time.monotonic() - self._t0, 3), cost_ms)
        return counts

    def _record(self, counts: SocketCounts, t: float, cost_ms: float) -> None:
        point: dict[str, Any] = {"t": t, **self._visible(counts)}
        with self._lock:
            if self._series and t < self._series[-1]["t"]:  # a sample_once() and the child's crossed
                bisect.insort(self._series, point, key=lambda p: p["t"])
            else:
                self._series.append(point)
            self._peak = {name: max(self._peak[name], getattr(counts, name)) for name in SECTIONS}
            if self._last_t is None or t >= self._last_t:
                self._last, self._last_t, self._last_cost_ms = counts, t, cost_ms

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
        source = self._source("thread")
        # t0 is just after the read: an upper bound for the expiries, so the same socket never looks newer.
        self._baseline, self._t0 = source.baseline()
        self._note_source(source.name, source.fallback_reason)

    def _warn(self, message: str) -> None:
        with self._lock:
            self._warnings.append(message)

    def _flush_warnings(self) -> None:
        """Log the reading thread's warnings here, in the caller's thread or greenlet."""
        with self._lock:
            warnings, self._warnings = self._warnings, []
        for message in warnings:
            log.warning("workload: %s", message)

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

    def _start_thread(self, timeout: float) -> None:
        ready, self._wake, self._done = _real_lock(), _real_lock(), _real_lock()
        for lock in (ready, self._wake, self._done):
            lock.acquire()
        self._running = True
        _start_os_thread(lambda: self._run(ready))
        if not _wait_released(ready, timeout):
            raise TelemetryError(f"taking the socket baseline took over {timeout} s", fix="check /proc")
        if self._error is not None:
            self._running = False
            raise TelemetryError(self._error)

    # -- the child process (read on an OS thread) -------------------------------------------
    def _on_child_line(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                return
            if "counts" in message:
                counts = SocketCounts(**{name: int(message["counts"][name]) for name in COUNT_FIELDS})
                t, cost_ms = float(message["t"]), float(message["ms"])
        except (ValueError, TypeError, KeyError):
            return  # not a line of ours (nothing else should write there): ignore it
        if isinstance(message.get("source"), str):
            fallback = message.get("fallback")
            self._note_source(message["source"], fallback if isinstance(fallback, str) else None)
        if "counts" in message:
            self._record(counts, t, cost_ms)
            if message.get("final"):
                self._child_final = True
        elif message.get("ready"):
            self._t0 = float(message["t0"])  # CLOCK_MONOTONIC: the same clock in every process
            self._child_ready = True
            self._ready.release()
        elif "error" in message:
            with self._lock:
                self._error = str(message["error"])
            if not self._child_ready:
                self._ready.release()
                self._ready = None

    def _on_child_exit(self) -> None:
        """The child closed its stdout: it finished, failed, or died; in the last case, go on here."""
        if not self._child_ready:
            if self._ready is not None:
                self._ready.release()  # start() sees no "ready" and falls back to thread mode
            return
        if self._child_final or self._error is not None:
            return  # stopped as asked, or stopped by an error (as the thread would have)
        self._warn("the socket sampler process exited unexpectedly; sampling goes on in this process")
        try:
            self._adopt_child_baseline()
        except Exception as exc:  # any failure here must end up in the section, not kill the thread
            with self._lock:
                self._error = f"the socket sampler process died and its baseline is unreadable: {exc}"
            return
        self.mode = "thread"
        self._loop()  # until stop() releases _wake (at once if it already has), then the final sample

    def _adopt_child_baseline(self) -> None:
        assert self._child is not None
        self._baseline = self._child.load_baseline()
        self._child_baseline = True

    def _start_process(self, timeout: float) -> bool:
        """Start the child and wait for its baseline; False if it could not start (then the
        caller falls back to thread mode).  Raises TelemetryError if the child cannot read the table."""
        self._child_ready = self._child_final = self._child_baseline = False
        try:
            child = _Child(self.endpoints, self.interval, self.server_side_observable)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._warn(f"cannot start the socket sampler process ({exc}); sampling in this process instead")
            return False
        self._ready, self._wake, self._done = _real_lock(), _real_lock(), _real_lock()
        for lock in (self._ready, self._wake, self._done):
            lock.acquire()
        ready = self._ready
        self._child, self._reader = child, object()
        self._finalizer = weakref.finalize(self, child.stdin.stop)
        self._running = True
        assert child.stdout is not None
        _start_os_thread(partial(_read_child, weakref.ref(self), child.stdout, self._reader, self._done))
        started = _wait_released(ready, timeout)
        if started and self._child_ready:
            return True
        self._running = False
        self._reader = None  # the reading thread now ignores this child
        self._finalizer()
        if not started:
            child.kill()
        child.reap(KILL_GRACE_S)
        child.baseline_file.close()
        self._child = None
        if self._error is not None:
            raise TelemetryError(self._error)
        if started:
            reason = f"the socket sampler process exited at start (status {child.proc and child.proc.returncode})"
        else:
            reason = f"the socket sampler process took over {timeout} s to start"
        self._warn(f"{reason}; sampling in this process instead")
        return False

    def _stop_process(self, timeout: float) -> None:
        child = self._child
        assert child is not None and self._finalizer is not None
        self._finalizer()  # "stop": the child takes the final sample and exits
        self._wake.release()  # the same for the reading thread, if it has taken over
        if not _wait_released(self._done, timeout):
            child.kill()  # stuck: its EOF makes the reading thread take the final sample itself
            if not _wait_released(self._done, KILL_GRACE_S + timeout):
                with self._lock:
                    self._error = self._error or f"the socket sampler did not stop within {timeout} s"
        child.reap(KILL_GRACE_S)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = DEFAULT_WAIT_TIMEOUT_S) -> None:
        """Take the baseline (in the child, or on the sampling thread) and start sampling; raises
        TelemetryError if the socket table cannot be read."""
        if self._running:
            return
        try:
            if self.mode == "process" and self._start_process(timeout):
                return
            self.mode = "thread"
            self._start_thread(timeout)
        finally:
            self._flush_warnings()

    def stop(self, timeout: float = DEFAULT_WAIT_TIMEOUT_S) -> dict[str, Any]:
        """Stop sampling (a final sample is taken) and return the run.json `sockets` section."""
        if self._running:
            if self._child is not None:
                self._stop_process(timeout)
            else:
                self._wake.release()
                if not _wait_released(self._done, timeout):
                    self._error = self._error or f"the sampling thread did not stop within {timeout} s"
            self._running = False
        elif self._last is None:
            self._sample_safely(pause=None)  # never started: one sample so the section is not empty
        self._close_sources()
        self._flush_warnings()
        return self._section(include_series=True)

    def _close_sources(self) -> None:
        """Release the netlink sockets (a later sample_once() opens a new one)."""
        sources, self._sources = self._sources, {}
        for source in sources.values():
            source.close()

    def snapshot(self, include_series: bool = False) -> dict[str, Any]:
        """Live figures for a UI; safe to call from any thread or greenlet at any time."""
        self._flush_warnings()
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
            source, fallback = self._source_name, self._source_fallback
        section: dict[str, Any] = {
            "endpoints": [str(endpoint) for endpoint in self.endpoints],
            "server_side_observable": self.server_side_observable,
            "source": source,  # "netlink" or "proc": how the figures were read; null before any
        }
        if fallback is not None:
            section["source_fallback"] = fallback
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
            raise TelemetryError("KernelCounters.stop() before start()", fix="call start() first")
        return kernel_delta(self._before, self._read())
