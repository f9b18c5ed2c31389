"""Arrival schedule: the intended start times of an open-model run (`load.arrival`), locust-free.

The rate is piecewise linear in time: a constant `rate` for `load.duration`, or `stages` that
each ramp linearly from the previous rate to theirs (over `ramp`, default the whole stage) and
then hold.  The expected number of starts by time t is the integral of the rate, Λ(t); evenly
spaced starts are the times where Λ(t) = 0, 1, 2, ..., Poisson starts the times where Λ(t)
equals the running sum of exponential gaps with mean 1 (a non-homogeneous Poisson process by
time change), so a ramp's starts follow its rate exactly.

Several generator processes split one schedule: with evenly spaced starts, process i of n takes
starts i, i+n, i+2n, ... of the whole schedule (together exactly the one schedule); with Poisson
starts, each runs its own Poisson process at 1/n of the rate (their sum is one at the full rate).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from workload.scenario.schema import Arrival
from workload.scenario.timespan import seconds


@dataclass(frozen=True)
class Segment:
    """The rate from `start_s` to `end_s` goes linearly from `rate0` to `rate1` (per second)."""

    start_s: float
    end_s: float
    rate0: float
    rate1: float

    @property
    def span(self) -> float:
        return self.end_s - self.start_s

    @property
    def slope(self) -> float:
        return (self.rate1 - self.rate0) / self.span if self.span > 0 else 0.0

    @property
    def count(self) -> float:
        """Expected starts in the segment: the area under its rate."""
        return (self.rate0 + self.rate1) / 2 * self.span

    def time_of(self, area: float) -> float:
        """The time in this segment by which `area` (0 <= area <= count) starts are expected."""
        a, b = self.rate0, self.slope
        if area <= 0:
            return self.start_s
        if abs(b) < 1e-12:
            return self.start_s + (area / a if a > 0 else self.span)
        # a*t + b*t^2/2 = area: the root in [0, span]; written to stay exact when b*area is small.
        t = 2 * area / (a + math.sqrt(max(a * a + 2 * b * area, 0.0)))
        return self.start_s + min(max(t, 0.0), self.span)


@dataclass(frozen=True)
class Schedule:
    """A run's rate over time: segments back to back from 0 to `duration_s`."""

    segments: tuple[Segment, ...]

    @property
    def duration_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0

    @property
    def total(self) -> float:
        """Expected starts over the whole run."""
        return sum(s.count for s in self.segments)

    def rate_at(self, t: float) -> float:
        for seg in self.segments:
            if t < seg.end_s:
                return seg.rate0 + seg.slope * max(t - seg.start_s, 0.0)
        return 0.0

    def expected(self, t: float) -> float:
        """Λ(t): starts expected from 0 to `t` seconds."""
        area = 0.0
        for seg in self.segments:
            if t >= seg.end_s:
                area += seg.count
                continue
            tau = max(t - seg.start_s, 0.0)
            return area + seg.rate0 * tau + seg.slope * tau * tau / 2
        return area

    def time_of(self, area: float) -> float | None:
        """Λ⁻¹(area): when `area` starts are expected, or None when the run ends first."""
        for seg in self.segments:
            if area < seg.count:
                return seg.time_of(area)
            area -= seg.count
        return None


def schedule_of(arrival: Arrival, duration: str | float) -> Schedule:
    """The rate over time of `load.arrival` (`duration` is `load.duration`, used with `rate`)."""
    if arrival.rate is not None:
        span = seconds(duration)
        return Schedule((Segment(0.0, span, arrival.rate, arrival.rate),))
    segments: list[Segment] = []
    now, rate = 0.0, 0.0
    for stage in arrival.stages or ():
        span = seconds(stage.duration)
        ramp = span if stage.ramp is None else seconds(stage.ramp)
        if ramp > 0:
            segments.append(Segment(now, now + ramp, rate, stage.rate))
        if span > ramp:
            segments.append(Segment(now + ramp, now + span, stage.rate, stage.rate))
        now, rate = now + span, stage.rate
    return Schedule(tuple(segments))


def even_starts(schedule: Schedule, index: int = 0, count: int = 1) -> Iterator[float]:
    """Evenly spaced intended starts (seconds from the run's start), this process's share."""
    k = index
    while (t := schedule.time_of(float(k))) is not None:
        yield t
        k += count


def poisson_starts(schedule: Schedule, rng: random.Random, count: int = 1) -> Iterator[float]:
    """Poisson intended starts at 1/`count` of the schedule's rate."""
    area = rng.expovariate(1.0) * count
    while (t := schedule.time_of(area)) is not None:
        yield t
        area += rng.expovariate(1.0) * count


def intended_starts(arrival: Arrival, duration: str | float, index: int = 0, count: int = 1) -> Iterator[float]:
    """The intended starts of process `index` of `count` for `load.arrival`."""
    schedule = schedule_of(arrival, duration)
    if arrival.poisson:
        seed = None if arrival.seed is None else arrival.seed * 1_000_003 + index
        return poisson_starts(schedule, random.Random(seed), count)
    return even_starts(schedule, index, count)


def run_seconds(arrival: Arrival, duration: str | float) -> float:
    """How long the schedule lasts."""
    return schedule_of(arrival, duration).duration_s
