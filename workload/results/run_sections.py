"""Run sections: the parts of run.json (`workload.results.run.RunResult`) as frozen models.

One model per section of docs/results-format.md.  Each keeps keys it does not name
(`extra="allow"`): their contents come from telemetry whose keys vary with the platform and the
socket source, and a run.json must survive a read and a write unchanged.  Numbers are strict: an
int stays an int on disk (3, not 3.0) and true is no number.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_serializer,
)

Number = StrictInt | StrictFloat  # an int stays an int on disk (3, not 3.0); a bool is no number
Name = Annotated[StrictStr, Field(min_length=1)]


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class Figures(Section):
    """The run's total row of Locust's stats."""

    requests: Number
    failures: Number
    rps: Number
    p50_ms: Number | None = None
    p95_ms: Number | None = None
    p99_ms: Number | None = None
    avg_ms: Number | None = None
    max_ms: Number | None = None


class EndpointFigures(Figures):
    """One endpoint's row: the total row's figures, named by `method` and `name` (written first,
    as in stats.csv)."""

    method: StrictStr = ""
    name: StrictStr = ""

    @model_serializer(mode="wrap")
    def _named_first(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        names: dict[str, Any] = {key: data.pop(key) for key in ("method", "name") if key in data}
        return {**names, **data}


class ErrorRow(Section):
    method: StrictStr = ""
    name: StrictStr = ""
    error: StrictStr = ""
    cause: StrictStr | None = None
    occurrences: Number = 0


class HistoryPoint(Section):
    t: Number
    users: Number | None = None
    rps: Number | None = None
    failures_per_s: Number | None = None
    p50_ms: Number | None = None
    p95_ms: Number | None = None


class Stats(Section):
    total: Figures
    endpoints: list[EndpointFigures] = []
    errors: list[ErrorRow] = []
    history: list[HistoryPoint] = []


class SetupMs(Section):
    count: Number | None = None
    avg: Number | None = None
    p50: Number | None = None
    p95: Number | None = None
    max: Number | None = None


class Connections(Section):
    tcp_connects: Number | None = None
    tls_handshakes: Number | None = None
    tls_failures: Number | None = None
    tls_resumed: Number | None = None  # of tls_handshakes: abbreviated (the server took the offered session)
    tls_full: Number | None = None
    pool_discards: Number | None = None
    pool_waits: Number | None = None  # requests that waited for a free pooled connection
    connect_errors: Number | None = None
    requests_per_connection: Number | None = None
    setup_ms: SetupMs | None = None
    # The protocol each connection spoke ("h2", "http/1.1", "h2c") and HTTP/2's streams (engine httpx).
    protocols: dict[str, Number] | None = None
    http2_connections: Number | None = None
    http2_streams: Number | None = None
    streams_per_connection: Number | None = None


class PeakEnd(Section):
    peak: Number | None = None
    end: Number | None = None


class Sockets(Section):
    endpoints: list[StrictStr] = []
    server_side_observable: StrictBool | None = None
    source: StrictStr | None = None
    source_fallback: StrictStr | None = None
    server_side: StrictStr | None = None  # "client host" | "agent" | null: where server figures were measured
    server_agent: StrictStr | None = None
    server_side_error: StrictStr | None = None
    time_wait_client: PeakEnd | None = None
    time_wait_server: PeakEnd | None = None
    established_client: PeakEnd | None = None
    established_server: PeakEnd | None = None
    samples: Number | None = None
    series: list[dict[str, Any]] | None = None
    error: StrictStr | None = None


class Ports(Section):
    range: list[StrictInt] | None = None
    size: Number | None = None
    tcp_tw_reuse: Number | None = None
    new_connections_per_s: Number | None = None
    time_wait_seconds: Number | None = None
    forecast_time_wait: Number | None = None
    forecast_share: Number | None = None


class Worker(Section):
    """One worker of a distributed run, as it reported itself.

    Copied from the worker's messages unchecked (`workload.telemetry.cluster.worker_entry`):
    whatever one worker sends, the master's run.json is still written, so these are `Any`."""

    id: Any = None
    index: Any = None
    host: Any = None
    netns: Any = None
    pid: Any = None
    final: StrictBool = False
    requests: Any = None
    connections: Any = None
    sockets: Any = None
    kernel: Any = None
    generator: Any = None  # its own loop lag and CPU (`workload.telemetry.generator.GeneratorHealth.summary`)


class Generator(Section):
    """The load generator's own health (`workload.telemetry.generator`): loop lag and CPU."""

    loop_lag_samples: Number | None = None
    loop_lag_interval_ms: Number | None = None
    loop_lag_p50_ms: Number | None = None
    loop_lag_p99_ms: Number | None = None
    loop_lag_max_ms: Number | None = None
    cpu_percent: Number | None = None
    cpu_percent_max: Number | None = None
    saturated: StrictBool | None = None
    saturated_because: list[StrictStr] = []
    # Distributed: the workers it covers (lag merged, CPU the busiest one's); 1 for a local run.
    processes: StrictInt | None = None
    lag_reports: StrictInt | None = None  # workers whose lag histogram decoded (distributed only)


class Stage(Section):
    """One stage of a shape run: planned users, then the measured figures (if it had two ticks)."""

    stage: StrictInt
    users: Number | None = None
    spawn_rate: Number | None = None
    users_reached: Number | None = None
    started_at: Number | None = None
    ended_at: Number | None = None
    measured_from: Number | None = None
    measured_s: Number | None = None
    requests: Number | None = None
    failures: Number | None = None
    rps: Number | None = None
    failure_ratio: Number | None = None
    avg_ms: Number | None = None
    p50_ms: Number | None = None
    p95_ms: Number | None = None
    p99_ms: Number | None = None
    tcp_connects: Number | None = None
    connects_per_s: Number | None = None
    stopped_run: StrictBool | None = None


class ThresholdRow(Section):
    policy: StrictStr
    scope: StrictStr
    metric: StrictStr
    limit: Number
    actual: Number | None
    passed: StrictBool
    message: StrictStr


class ThresholdSummary(Section):
    passed: StrictBool
    evaluated: StrictInt
    failed: StrictInt
    results: list[ThresholdRow]


class Named(Section):
    name: Name


class ScenarioRef(Named):
    path: StrictStr | None = None


class PolicyRef(Named):
    type: StrictStr | None = None
    settings: dict[str, Any] | None = None


class Target(Section):
    urls: list[StrictStr] = []
    local: StrictBool | None = None


class Load(Section):
    users: Number | None = None
    spawn_rate: Number | None = None
    duration_s: Number | None = None


class LatencyFigures(Section):
    """A lossless (HdrHistogram) latency summary, in milliseconds."""

    count: Number = 0
    mean: Number | None = None
    p50: Number | None = None
    p90: Number | None = None
    p95: Number | None = None
    p99: Number | None = None
    p99_9: Number | None = None
    max: Number | None = None


class LagFigures(Section):
    p50: Number | None = None
    p99: Number | None = None
    max: Number | None = None


class ArrivalSecond(Section):
    """One second of an open-model schedule (`workload.telemetry.openmodel.Seconds`)."""

    t: StrictInt
    scheduled: Number = 0
    started: Number = 0
    dropped: Number = 0
    late: Number = 0
    completed: Number = 0
    failed: Number = 0
    response_p50_ms: Number | None = None
    response_p99_ms: Number | None = None
    response_max_ms: Number | None = None


class ArrivalFigures(Section):
    """The open model (`load.arrival`): offered vs achieved, and the two latencies."""

    rate: Number | None = None
    stages: list[dict[str, Any]] | None = None
    poisson: StrictBool | None = None
    max_in_flight: Number | None = None
    generators: Number | None = None
    offered_rate: Number | None = None
    achieved_rate: Number | None = None
    scheduled: Number = 0
    started: Number = 0
    dropped: Number = 0
    missed: Number = 0
    late: Number = 0
    completed: Number = 0
    failed: Number = 0
    unfinished: Number = 0
    identities: Number | None = None
    peak_in_flight: Number | None = None
    dropped_ratio: Number | None = None
    late_ratio: Number | None = None
    lag_ms: LagFigures | None = None
    response_time_ms: LatencyFigures | None = None
    service_time_ms: LatencyFigures | None = None
    histograms: dict[str, StrictStr] | None = None
    series: list[ArrivalSecond] = []  # per second of the schedule
