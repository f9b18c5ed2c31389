"""Arrival shape: the Locust shape of an open-model run (`load.arrival`).

On a master or local runner it keeps one `ArrivalDriver` per generator process for the
schedule's length, tells the workers how many share the rate (`SPLIT_OPTION`, forwarded in the
spawn message), and then ends the run, headless or in the web UI.

Imports locust: loaded only by `workload.main` (through the controller).
"""

from __future__ import annotations

from locust import LoadTestShape

from typing import Any

from workload.engine import shapes
from workload.engine.arrival import SPLIT_OPTION
from workload.errors import RunError
from workload.plan.arrivals import run_seconds
from workload.scenario.schema import Arrival, Load

SHAPE_CLASS_NAME = "ArrivalShape"


def make_shape(arrival: Arrival, duration: str | float) -> Any:
    """A shape keeping one driver per generator process for the schedule's length."""
    total = run_seconds(arrival, duration)

    def tick(self: Any) -> tuple[int, float] | None:
        if self.get_run_time() >= total:
            _mark_stopped(self.runner.environment)
            return None
        processes = max(1, int(getattr(self.runner, "worker_count", 1) or 1))
        options = self.runner.environment.parsed_options
        if options is not None:
            setattr(options, SPLIT_OPTION, processes)  # forwarded to workers in the spawn message
        return processes, float(processes)

    attrs = {"tick": tick, "peak_users": 1, "planned_s": total, "__module__": __name__}
    return type(SHAPE_CLASS_NAME, (LoadTestShape,), attrs)()


def _mark_stopped(environment: Any) -> None:
    """The schedule ended: the run's duration (and the generator's CPU and loop lag) end now, not
    after Locust's stop(), which first spends ~0.2 s of CPU in inspect.stack() with the loop
    blocked (the closed model's run clock does the same: workload.engine.runclock)."""
    recorder = getattr(getattr(environment, "workload", None), "recorder", None)
    if recorder is not None:
        recorder.mark_stopped()


def install_shape(environment: Any, load: Load) -> Any:
    """On a master or local runner: the arrival shape for an open-model scenario (or remove a
    previous one); the shape or None."""
    current = environment.shape_class
    if load.arrival is None:
        if current is not None and type(current).__name__ == SHAPE_CLASS_NAME:
            environment.shape_class = None
        return None
    if current is not None and type(current).__name__ == shapes.SHAPE_CLASS_NAME:
        raise RunError("--shape sets users, but this scenario starts iterations at an arrival rate "
                       "(load.arrival)", where="--shape",
                       fix="add --arrival closed to run it as closed users, or step the rate with --arrival")
    shape = make_shape(load.arrival, load.duration)
    shape.runner = environment.runner  # Environment wires only the shape present at its creation
    environment.shape_class = shape
    return shape
