"""Load shapes: a scenario's `load.stages` (or `--shape`) run as a Locust `LoadTestShape`.

The pure half lives in `workload.plan.stages` (stages as steps on one time axis, the tick as a
function of run time, `ladder`, `--shape` parsing; re-exported here).  `make_shape` wraps the
steps in a thin `LoadTestShape` subclass created at run time (locust is imported there only),
which also measures each stage (`workload.telemetry.stages`) and can stop the run when a stage
breaches a latency/failure limit.  `install` wires a shape into a Locust environment built from
the command line (`shape.runner = ...; environment.shape_class = ...`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workload.plan.stages import (  # re-exported: the shape's pure half
    DEFAULT_SPIKE_RISE_S,
    DEFAULT_STOP_AFTER,
    ShapeSpec,
    Step,
    breached,
    compile_stages,
    ladder,
    parse_spec,
    peak_users,
    spec_for,
    step_index,
    tick_at,
    total_seconds,
)
from workload.scenario.schema import Load
from workload.telemetry.stages import StageMeter

if TYPE_CHECKING:
    from locust.env import Environment

SHAPE_OPTION = "shape"  # parsed_options attribute of `--shape`
SHAPE_CLASS_NAME = "StagesShape"
__all__ = ["DEFAULT_SPIKE_RISE_S", "DEFAULT_STOP_AFTER", "ShapeSpec", "Step", "compile_stages", "ladder",
           "parse_spec", "peak_users", "spec_for", "step_index", "tick_at", "total_seconds",
           "make_shape", "install", "run_figures"]


def make_shape(spec: ShapeSpec) -> Any:
    """A `LoadTestShape` instance running `spec`'s stages; its `meter.results` are per-stage figures."""
    from locust import LoadTestShape  # here, not at import: callers without locust use the pure parts

    steps = compile_stages(spec.stages)

    def __init__(self: Any) -> None:
        LoadTestShape.__init__(self)
        self.steps, self.spec, self.meter, self.breaches = steps, spec, StageMeter(steps), 0

    def reset_time(self: Any) -> None:
        LoadTestShape.reset_time(self)
        self.meter.reset()  # the web UI may start the same shape again
        self.breaches = 0

    def tick(self: Any) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        index = step_index(self.steps, run_time)
        closed = self.meter.observe(index, self.runner.stats.total, self.runner.user_count)
        if closed is not None:
            self.breaches = self.breaches + 1 if breached(closed, self.spec) else 0
            if self.breaches >= self.spec.stop_after:
                closed["stopped_run"] = True  # the rest of the stages are not run
                return None
        return tick_at(self.steps, run_time)

    attrs = {"__init__": __init__, "reset_time": reset_time, "tick": tick,
             "peak_users": peak_users(steps), "__module__": __name__}
    return type(SHAPE_CLASS_NAME, (LoadTestShape,), attrs)()


def install(environment: Environment, load: Load) -> Any:
    """Install (or remove) the shape for the active scenario; the shape or None."""
    override = getattr(environment.parsed_options, SHAPE_OPTION, None) if environment.parsed_options else None
    spec = spec_for(load, override)
    current = environment.shape_class
    if spec is None:
        if current is not None and type(current).__name__ == SHAPE_CLASS_NAME:
            environment.shape_class = None  # the previous scenario's shape, not this one's
        return None
    shape = make_shape(spec)
    if type(environment.runner).__name__ == "MasterRunner":
        # A master sends no requests: its connection counters say nothing about the stages.
        shape.meter = StageMeter(shape.steps, connects=lambda: None)
    # Environment wires only the shape present when the runner is created (locust env.py).
    shape.runner = environment.runner
    environment.shape_class = shape
    return shape


def run_figures(environment: Environment) -> dict[str, Any]:
    """run.json additions of a shape run: its planned `load` and the measured `stages`."""
    shape = getattr(environment, "shape_class", None)
    if shape is None or type(shape).__name__ != SHAPE_CLASS_NAME:
        return {}
    load = {"users": shape.peak_users, "spawn_rate": None, "duration_s": total_seconds(shape.steps),
            "stages": [step.to_dict() for step in shape.steps]}
    if shape.spec.stop_p95_ms is not None or shape.spec.stop_failure_ratio is not None:
        load["stop_if"] = {"p95_ms": shape.spec.stop_p95_ms, "failure_ratio": shape.spec.stop_failure_ratio,
                           "stages_in_a_row": shape.spec.stop_after}
    return {"load": load, "stages": shape.meter.results}
