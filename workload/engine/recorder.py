"""Run recorder: one run's figures gathered while it runs and written to `results/<run-id>/`.

It starts the connection counters and the kernel socket sampler when a run starts, keeps a
1-second history of throughput and latency, and at the end writes `run.json` (exact final
figures from Locust's in-memory stats, not the stale `_stats.csv`) plus CSV tables.  An
interrupted run is written too, marked `complete: false`.  Duck-typed on Locust's
environment and stats objects, so it does not import locust.
"""

from __future__ import annotations

import csv
import gc
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workload.errors import ResultsError, TelemetryError
from workload.redaction import redact_data
from workload.results import paths, progress, verdict
from workload.results.faults import by_cause, classify
from workload.results.run import RUN_FILE, RUN_SCHEMA, RunResult, validate_run, write_run
from workload.telemetry import (
    Endpoint,
    KernelCounters,
    SocketSampler,
    endpoints_from_urls,
    forecast,
    port_headroom,
    system_resolver,
)
from workload.telemetry.agent import RunServerSide
from workload.telemetry.connections import COUNTER_KEYS, STATS
from workload.telemetry.generator import GeneratorHealth

if TYPE_CHECKING:
    from locust.stats import RequestStats, StatsEntry

log = logging.getLogger(__name__)
DEFAULT_RESULTS_DIR = "results"
PERCENTILES = (0.5, 0.95, 0.99)
Merge = Callable[[dict[str, Any]], dict[str, Any]]  # run.json document -> the same, a cluster's figures in


@dataclass
class RunInfo:
    """What is being run: written into run.json as is."""

    scenario: str
    scenario_path: str
    policy: str
    policy_type: str
    policy_settings: dict[str, Any]
    urls: list[str]
    local_target: bool
    load: dict[str, Any]
    server_stats: Callable[[], dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    requested_s: float | None = None  # -t / the web UI's run time / a shape's planned length
    # Sections measured by the end of the run (the open model's `arrival`), given its duration.
    sections: Callable[[float], dict[str, Any]] | None = None
    agent: str | None = None  # target.agent: a server agent measuring the server side (remote target)


def target_endpoints(urls: list[str]) -> tuple[Endpoint, ...]:
    """The targets' address:port pairs.  A remote target named by host name is resolved (the
    load itself resolves it too); if that fails, the socket figures stay empty, the run goes on."""
    try:
        return endpoints_from_urls(urls, resolve=system_resolver)
    except TelemetryError as exc:
        log.warning("socket-table sampling is off for this run: %s", exc)
        return ()


def new_run_id(scenario: str, policy: str) -> str:
    """Time, scenario and policy: readable, not unique (`paths.fresh_dir` adds a suffix)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return re.sub(r"[^\w.-]+", "-", f"{stamp}-{scenario}-{policy}")


class RunRecorder:
    def __init__(self, info: RunInfo, out_dir: Path):
        self.started_at = time.time()  # set again when start() is done: the run's first moment
        self._started_mono = time.monotonic()
        self._stopped: tuple[float, float] | None = None  # (wall, monotonic) when the load stopped
        self._drained: float | None = None  # monotonic: when the last user finished its task
        self.info = info
        self.out_dir = out_dir
        self.history: list[dict[str, Any]] = []
        endpoints = target_endpoints(info.urls)
        self.sampler = SocketSampler(endpoints, server_side_observable=info.local_target)
        self.server_side = RunServerSide(info.agent, endpoints, info.local_target)
        self.kernel = KernelCounters()
        self.generator = GeneratorHealth()  # fed by the engine's hiccup greenlet (engine/hiccup.py)
        self._server_before = self._server_stats()
        self.finished: RunResult | None = None  # redacted, as written
        self._finishing: threading.Event | None = None  # set while finish() runs (gevent-patched)

    def start(self) -> None:
        """Start counting; the run's clock starts when this returns (Locust starts the users
        right after test_start), so the seconds spent here are not counted as load."""
        STATS.reset()
        self.kernel.start()
        self.sampler.start()
        self.server_side.start()
        self.started_at, self._started_mono = time.time(), time.monotonic()

    def tick(self, stats: RequestStats, users: int, open_model: tuple[float, int] | None = None) -> None:
        """Called about once a second while running: the time series for the report charts.
        `open_model`: (offered iterations/s so far, iterations in flight) of an open-model run."""
        total = stats.total
        t = round(time.time() - self.started_at, 1)
        self.history.append({
            "t": t, "users": users,
            "rps": round(total.current_rps, 2), "failures_per_s": round(total.current_fail_per_sec, 2),
            "p50_ms": total.get_current_response_time_percentile(0.5),
            "p95_ms": total.get_current_response_time_percentile(0.95),
        })
        offered, in_flight = open_model if open_model is not None else (None, None)
        progress.publish(progress.Progress(t=t, users=users, requests=total.num_requests,
                                           failures=total.num_failures, rps=round(total.current_rps, 2),
                                           offered=offered, in_flight=in_flight))

    def live(self, stats: RequestStats) -> dict[str, Any]:
        """Figures for the web UI's Connections tab."""
        return {"connections": STATS.snapshot(stats.total.num_requests), "sockets": self.sampler.snapshot()}

    def mark_stopped(self) -> None:
        """The load stops (Locust's test_stopping): the end of the run's duration, even if
        run.json is written later (a master waits for its workers' last reports).  The first
        call wins."""
        if self._stopped is None:
            self._stopped = (time.time(), time.monotonic())
            self.generator.stop()

    def mark_drained(self) -> None:
        """Every user has finished (Locust's test_stop, after --stop-timeout at most)."""
        if self._drained is None:
            self._drained = time.monotonic()

    @property
    def stopped(self) -> bool:
        return self._stopped is not None

    @property
    def stopped_monotonic(self) -> float | None:
        """When the load stopped (monotonic clock), if it has."""
        return self._stopped[1] if self._stopped is not None else None

    def elapsed(self) -> float:
        end = self._stopped[1] if self._stopped is not None else time.monotonic()
        return max(end - self._started_mono, 1e-9)

    def finish(self, stats: RequestStats, complete: bool, workers: list[dict[str, Any]] | None = None,
               merge: Merge | None = None) -> RunResult:
        """Stop sampling and build run.json (idempotent: the first call wins).  `complete` False
        means interrupted; a run that ended too short is marked incomplete here as well.  `merge`
        replaces a master's sections by its cluster's figures.  The run is redacted here: the
        gate, the files and the reports all see the same, redacted, figures."""
        if self.finished is not None:
            return self.finished
        if self._finishing is not None:
            # Another greenlet is finishing this run (test_stop and quitting can overlap): stopping
            # the sampler twice would fail, and a second dict would replace the first.
            self._finishing.wait()
            assert self.finished is not None, "the other finish() failed"
            return self.finished
        self._finishing = threading.Event()
        try:
            document = self._finish(stats, complete, workers)
            if merge is not None:
                document = merge(document)
            redact_data(document)
            try:
                self.finished = validate_run(document, self.out_dir / RUN_FILE)
            except ResultsError as exc:
                # Our bug, not the run's: its figures are still kept, unvalidated, for a person to read.
                saved = _save_unvalidated(document, self.out_dir)
                log.error("workload: the run's figures do not fit the run.json model (%s); saved them "
                          "unvalidated to %s", exc, saved)
                raise
            return self.finished
        finally:
            self._finishing.set()

    def _finish(self, stats: RequestStats, complete: bool, workers: list[dict[str, Any]] | None) -> dict[str, Any]:
        self.mark_stopped()
        assert self._stopped is not None
        ended, duration = self._stopped[0], self.elapsed()
        # Users killed mid-request (Locust's stop) keep their connection referenced from the killed
        # greenlet's traceback until a cyclic collection: free them now, so those sockets are closed
        # (by the client) before the final sample rather than just after it.
        gc.collect()
        sockets = _rebased(self._stop_sampler(), self.sampler.started_monotonic - self._started_mono)
        sockets = self.server_side.finish(sockets)
        kernel = self.kernel.stop()
        total = stats.total
        connections = _merge_connections(STATS.snapshot(total.num_requests), workers)
        stages = self.info.extra.get("stages") or []
        reason = verdict.completion(duration, self.info.requested_s, interrupted=not complete,
                                    stopped_by_shape=any(s.get("stopped_run") for s in stages))
        section = stats_section(stats, self.history)
        return {
            "schema": RUN_SCHEMA,
            "run_id": self.out_dir.name,
            "complete": reason is None,
            "incomplete_reason": reason,
            "scenario": {"name": self.info.scenario, "path": self.info.scenario_path},
            "policy": {"name": self.info.policy, "type": self.info.policy_type,
                       "settings": self.info.policy_settings},
            "target": {"urls": self.info.urls, "local": self.info.local_target},
            "load": self.info.load,
            "started_at": self.started_at, "ended_at": ended, "duration_s": round(duration, 3),
            "requested_duration_s": self.info.requested_s,
            "stop_drain_s": round(self._drained - self._stopped[1], 3) if self._drained is not None else None,
            "stats": section,
            "failures_by_cause": by_cause(section["errors"]),
            "connections": connections,
            "sockets": sockets,
            "kernel": kernel,
            "ports": _ports(connections["tcp_connects"], duration),
            "server": self._server_delta(),
            "workers": workers or [],
            "generator": self.generator.summary(),
            **self.info.extra,
            **(self.info.sections(duration) if self.info.sections is not None else {}),
        }

    def write(self, stats: RequestStats, html: str | None = None) -> Path:
        """Write the run's files into its folder; if that fails, into a new temporary folder
        (logged), so a finished run is never lost.  The folder actually written."""
        assert self.finished is not None, "finish() first"
        try:
            return self._write_files(self.out_dir, html)
        except OSError as exc:
            fallback = paths.fallback_dir(self.out_dir.name)
            log.error("workload: could not write the results to %s (%s); saving them to %s instead",
                      self.out_dir, exc, fallback)
            self.out_dir = fallback
            return self._write_files(fallback, html)

    def _write_files(self, folder: Path, html: str | None) -> Path:
        """The one place run files are written: each path proven inside the run folder first."""
        assert self.finished is not None
        folder.mkdir(parents=True, exist_ok=True)
        write_run(folder, self.finished)
        stats = self.finished.dump()["stats"]
        write_csv(paths.inside(folder, "stats.csv"), stats["endpoints"])
        write_csv(paths.inside(folder, "failures.csv"), stats["errors"])
        if html is not None:
            paths.inside(folder, "report.html").write_text(html, encoding="utf-8")
        return folder

    def _stop_sampler(self) -> dict[str, Any]:
        try:
            return self.sampler.stop()
        except Exception as exc:  # its figures are a part of the run; the run must still be written
            log.warning("the socket sampler did not stop cleanly: %r", exc)
            return {"endpoints": [], "samples": 0, "error": f"the socket sampler failed: {exc!r}"}

    def _server_stats(self) -> dict[str, Any] | None:
        if self.info.server_stats is None:
            return None
        try:
            return self.info.server_stats()
        except Exception as exc:  # the report notes the absence; a run must not die for it
            log.warning("could not read the demo target's counters: %s", exc)
            return None

    def _server_delta(self) -> dict[str, Any] | None:
        after, before = self._server_stats(), self._server_before
        if after is None or before is None:
            return None
        keys = ("connections_accepted", "requests")
        return {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in keys}


def _merge_connections(local: dict[str, Any], workers: list[dict[str, Any]] | None) -> dict[str, Any]:
    """On a master, the workers' counters are the run's (the master sends no requests)."""
    if not workers:
        return local
    merged = dict(local)
    for key in COUNTER_KEYS:
        merged[key] = sum(int(w.get("connections", {}).get(key, 0) or 0) for w in workers)
    return _merge_protocols(merged, [w.get("connections") or {} for w in workers])


def _merge_protocols(merged: dict[str, Any], reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Connections per protocol and HTTP/2 streams, summed over the workers."""
    protocols: dict[str, int] = {}
    for report in reports:
        for name, count in (report.get("protocols") or {}).items():
            protocols[str(name)] = protocols.get(str(name), 0) + int(count or 0)
    h2 = protocols.get("h2", 0) + protocols.get("h2c", 0)
    streams = sum(int(r.get("http2_streams", 0) or 0) for r in reports)
    return {**merged, "protocols": dict(sorted(protocols.items())), "http2_connections": h2, "http2_streams": streams,
            "streams_per_connection": round(streams / h2, 2) if h2 else None}


def _ports(connects: int, duration: float) -> dict[str, Any]:
    headroom = port_headroom()
    rate = connects / duration
    return {**headroom, "new_connections_per_s": round(rate, 2), **forecast(rate, headroom["size"])}


def stats_section(stats: RequestStats, history: list[dict[str, Any]]) -> dict[str, Any]:
    endpoints = [{"method": e.method, "name": e.name, **_entry(e)}
                 for e in sorted(stats.entries.values(), key=lambda e: (e.name, e.method))]
    errors = [{"method": err.method, "name": err.name, "error": str(err.error),
               "cause": classify(str(err.error)), "occurrences": err.occurrences}
              for err in stats.errors.values()]
    return {"total": _entry(stats.total), "endpoints": endpoints, "errors": errors, "history": history}


def _entry(entry: StatsEntry) -> dict[str, Any]:
    p50, p95, p99 = (entry.get_response_time_percentile(q) if entry.num_requests else None
                     for q in PERCENTILES)
    return {"requests": entry.num_requests, "failures": entry.num_failures,
            "rps": round(entry.total_rps, 2), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "avg_ms": round(entry.avg_response_time, 2), "max_ms": entry.max_response_time}


def _rebased(sockets: dict[str, Any], offset: float) -> dict[str, Any]:
    """`sockets.series[].t` in seconds since the run's start, as run.json documents it: the
    sampler counts from its own start, which comes before the run's (taking its baseline)."""
    for point in sockets.get("series") or []:
        point["t"] = round(point["t"] + offset, 3)
    return sockets


def _save_unvalidated(document: dict[str, Any], out_dir: Path) -> Path:
    text = json.dumps(document, indent=2, default=str) + "\n"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        target = paths.inside(out_dir, "run.unvalidated.json")
        paths.write_atomic(target, text)
    except OSError:
        target = paths.fallback_dir(out_dir.name) / "run.unvalidated.json"
        target.write_text(text, encoding="utf-8")
    return target


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
