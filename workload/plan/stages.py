"""Load stages: a scenario's `load.stages` (or `--shape`) as steps on one time axis, without Locust.

A *stage* says how many users run by its end and for how long (`workload.scenario.schema.Stage`).
`compile_stages` turns the stages into `Step`s (absolute end time, users, spawn rate); `tick_at`
is a shape's whole tick logic as a pure function of the run time; `ladder` builds the stepped
stages of `workload capacity`; `ShapeSpec` is the `--shape` option.  `workload.engine.shapes`
runs these steps as a Locust `LoadTestShape`.  No locust import: `workload.commands.capacity`
uses this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

from workload.errors import RunError
from workload.scenario.schema import Load, Stage
from workload.scenario.timespan import seconds

DEFAULT_SPIKE_RISE_S = 1.0  # a spike's users start (and stop) within about this long
DEFAULT_STOP_AFTER = 2  # breaching stages in a row before stopping: one noisy stage is not a trend


@dataclass(frozen=True)
class Step:
    """One compiled stage: until `end_s` seconds into the run, `users` at `spawn_rate` users/s."""

    end_s: float
    users: int
    spawn_rate: float

    def to_dict(self) -> dict[str, Any]:
        return {"end_s": round(self.end_s, 3), "users": self.users, "spawn_rate": round(self.spawn_rate, 3)}


class ShapeSpec(BaseModel):
    """The `--shape` option: stages, and optional limits that stop the run once `stop_after`
    stages in a row breach them (per-stage p95 or failure ratio)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    stages: list[Stage] = Field(min_length=1)
    stop_p95_ms: PositiveFloat | None = None
    stop_failure_ratio: float | None = Field(None, ge=0, le=1)
    stop_after: PositiveInt = DEFAULT_STOP_AFTER


def _ramp_rate(delta: int, duration: float) -> float:
    # A plain stage spreads its change over the whole stage; no change still needs a positive rate.
    return abs(delta) / duration if delta else 1.0


def compile_stages(stages: Sequence[Stage]) -> tuple[Step, ...]:
    """The stages as steps on one time axis (spikes become a burst plus a fall back)."""
    steps: list[Step] = []
    now, users = 0.0, 0
    for stage in stages:
        if stage.spike is not None:
            burst = stage.spike.users
            rate = max(abs(burst - users), 1) / DEFAULT_SPIKE_RISE_S
            now += seconds(stage.spike.duration)
            steps.append(Step(now, burst, rate))
            now += DEFAULT_SPIKE_RISE_S
            steps.append(Step(now, users, rate))  # back to the level before the burst
            continue
        assert stage.duration is not None and stage.users is not None  # checked by the schema
        span = seconds(stage.duration)
        rate = stage.spawn_rate or _ramp_rate(stage.users - users, span)
        now += span
        users = stage.users
        steps.append(Step(now, users, rate))
    return tuple(steps)


def step_index(steps: Sequence[Step], run_time: float) -> int | None:
    """The index of the step running at `run_time` seconds, or None once the shape has ended."""
    for index, step in enumerate(steps):
        if run_time < step.end_s:
            return index
    return None


def tick_at(steps: Sequence[Step], run_time: float) -> tuple[int, float] | None:
    """What the shape's tick returns at `run_time`: (users, spawn rate), or None to stop."""
    index = step_index(steps, run_time)
    if index is None:
        return None
    return steps[index].users, steps[index].spawn_rate


def total_seconds(steps: Sequence[Step]) -> float:
    return steps[-1].end_s if steps else 0.0


def peak_users(steps: Sequence[Step]) -> int:
    return max((step.users for step in steps), default=0)


def ladder(step_users: int, step_s: float, max_users: int, max_s: float, rise_s: float = 1.0) -> list[dict[str, Any]]:
    """Stages that add `step_users` every `step_s` seconds up to `max_users` users or `max_s`
    seconds, whichever comes first (at least one stage); each rise takes about `rise_s`."""
    count = max(1, min(math.ceil(max_users / step_users), math.floor(max_s / step_s)))
    return [{"users": min(step_users * k, max_users), "duration": step_s, "spawn_rate": step_users / rise_s}
            for k in range(1, count + 1)]


def parse_spec(text: str) -> ShapeSpec:
    """The `--shape` JSON, or a RunError saying what is wrong with it."""
    try:
        return ShapeSpec.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise RunError(str(exc), where="--shape",
                       fix='pass JSON like {"stages": [{"users": 5, "duration": "10s", "spawn_rate": 5}]}') from exc


def breached(figures: dict[str, Any], spec: ShapeSpec) -> bool:
    p95, ratio = figures.get("p95_ms"), figures.get("failure_ratio")
    return bool((spec.stop_p95_ms is not None and p95 is not None and p95 > spec.stop_p95_ms)
                or (spec.stop_failure_ratio is not None and ratio is not None and ratio > spec.stop_failure_ratio))


def spec_for(load: Load, override: str | None) -> ShapeSpec | None:
    """The shape to run: `--shape` when given, else the scenario's `load.stages`, else None."""
    if override:
        return parse_spec(override)
    return ShapeSpec(stages=load.stages) if load.stages else None
