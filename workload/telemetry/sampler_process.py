"""The socket sampler's child process: ``python -m workload.telemetry.sampler_process CONFIG``.

`SocketSampler` (mode "process") runs this so that scanning a large socket table never holds the
load generator's GIL.  CONFIG is one JSON object::

    {"endpoints": ["127.0.0.1:8080", "[::1]:8080"], "interval": 1.0, "server_side": true,
     "ppid": 1234, "baseline_fd": 5}

The child takes the baseline, pickles it to the inherited file ``baseline_fd`` (the parent
reads it only if it has to go on sampling by itself), then writes JSON lines to stdout:

* ``{"ready": true, "t0": T0, "pid": PID, "source": S}`` once, after the baseline (``T0``:
  `time.monotonic` just after the baseline read; CLOCK_MONOTONIC is system-wide, so the parent
  can use it; ``S``: "netlink" or "proc", see `workload.telemetry.source`, with ``"fallback":
  REASON`` when netlink was wanted but is not used);
* ``{"t": T, "counts": {"tw_client": N, ...}, "ms": COST, "source": S}`` per sample (``T``:
  seconds since T0), every ``interval`` seconds; the last one, taken when asked to stop, also has
  ``"final": true``;
* ``{"error": MESSAGE}`` if the table cannot be read, after which it exits with status 1.

It stops (after a final sample) when it reads ``stop`` or end-of-file on stdin, and it exits
at once, without a final sample, when its parent is gone (``os.getppid()`` is no longer
``ppid``): checked at least every `PARENT_CHECK_S`, so it never outlives its parent for long
even if some other process still holds its stdin open.  It ignores SIGINT: a Ctrl-C in the
terminal reaches the whole process group, and the parent still wants the final sample.
This module imports neither gevent nor locust.
"""

from __future__ import annotations

import json
import os
import pickle
import select
import signal
import sys
import time
from dataclasses import asdict
from typing import Any

from workload.errors import ExitCode, TelemetryError
from workload.telemetry.socktable import Endpoint
from workload.telemetry.source import TableSource

PARENT_CHECK_S = 0.5
STOP_COMMAND = b"stop"
STDIN = 0
STDOUT = 1


class ParentGone(Exception):
    """The parent exited (or closed our stdout): nobody wants the figures any more."""


def _emit(message: dict[str, Any]) -> None:
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
    try:
        while data:  # unbuffered: each line reaches the parent at once
            data = data[os.write(STDOUT, data):]
    except (BrokenPipeError, OSError) as exc:
        raise ParentGone from exc


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


class _Stdin:
    """Watches stdin for the stop command or end-of-file without blocking past a deadline."""

    def __init__(self) -> None:
        self.stopped = False
        self._pending = b""

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds; return early when a stop arrives."""
        if self.stopped:
            return
        readable, _, _ = select.select([STDIN], [], [], max(0.0, timeout))
        if not readable:
            return
        chunk = os.read(STDIN, 4096)
        self._pending = (self._pending + chunk)[-64:]
        if not chunk or STOP_COMMAND in self._pending:
            self.stopped = True


def _source_fields(source: TableSource) -> dict[str, str]:
    fields = {"source": source.name}
    if source.fallback_reason is not None:
        fields["fallback"] = source.fallback_reason
    return fields


def run(config: dict[str, Any]) -> int:
    endpoints = tuple(Endpoint.parse(text) for text in config["endpoints"])
    interval = float(config["interval"])
    server_side = bool(config["server_side"])
    ppid = int(config["ppid"])
    baseline_fd = config.get("baseline_fd")

    def parent_alive() -> bool:
        return os.getppid() == ppid

    if not parent_alive():
        return 0
    try:
        source = TableSource(endpoints)  # netlink if it works here, else /proc (see `source`)
        baseline, t0 = source.baseline()  # t0: after the read, an upper bound for the expiries
    except (TelemetryError, OSError) as exc:
        _emit({"error": str(exc)})
        return 1
    if baseline_fd is not None:
        try:
            _write_all(int(baseline_fd), pickle.dumps(baseline, protocol=pickle.HIGHEST_PROTOCOL))
        finally:
            os.close(int(baseline_fd))
    _emit({"ready": True, "t0": t0, "pid": os.getpid(), **_source_fields(source)})

    stdin = _Stdin()
    due = time.monotonic() + interval
    while parent_alive():
        stdin.wait(min(due - time.monotonic(), PARENT_CHECK_S))
        if not parent_alive():
            break
        now = time.monotonic()
        if not stdin.stopped and now < due:
            continue
        began = time.perf_counter()
        read_at = time.monotonic()  # before the read: a lower bound for the expiries
        try:
            counts = source.count(baseline, server_side, None, read_at)
        except (TelemetryError, OSError) as exc:
            _emit({"error": str(exc)})
            return 1
        message: dict[str, Any] = {"t": round(time.monotonic() - t0, 3), "counts": asdict(counts),
                                   "ms": round((time.perf_counter() - began) * 1000, 3), **_source_fields(source)}
        if stdin.stopped:
            _emit({**message, "final": True})
            return 0
        _emit(message)
        # Fixed schedule without drift; after a stall, resume from now instead of bursting.
        due = max(due + interval, time.monotonic())
    return 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m workload.telemetry.sampler_process CONFIG_JSON", file=sys.stderr)
        return ExitCode.BAD_INPUT
    try:
        return run(json.loads(args[0]))
    except ParentGone:
        return 0


if __name__ == "__main__":
    sys.exit(main())
