"""Open-model capacity analysis: a ladder of arrival-rate steps, their figures and the knee.

`workload capacity --model open` runs each rate step (and each repeat of it) as its own run;
each run.json's `arrival` section gives the step's figures: offered and achieved rate, dropped
and late starts, the response time from the intended start and the service time from the send.
Repeats of a step are combined into the median, with the spread (min..max) of the response p99
and of the achieved rate shown next to it.

The *knee* is the highest step before the curve turns upward, scanning rates from the lowest:
a step has *turned* when its response p99 exceeds `DEFAULT_TURN_FACTOR` times the lowest
step's (latency turned upward), or it breaks the SLO (response p99, dropped, late or failure
ratio), or it achieved less than `DEFAULT_MIN_ACHIEVED` of its offered rate.  As for the closed
model, scanning stops at `DEFAULT_BREACH_STEPS` turned steps in a row (one alone is noise).
Pure: no locust import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

from workload.results.run import RunResult

DEFAULT_TURN_FACTOR = 2.0
DEFAULT_MIN_ACHIEVED = 0.95
DEFAULT_BREACH_STEPS = 2
ENDED_TURN, ENDED_SLO, ENDED_BOUND, ENDED_NO_KNEE = "latency turned up", "slo", "bound", "no step within SLO"
MEDIAN_KEYS = ("offered_rate", "achieved_rate", "rps", "dropped_ratio", "late_ratio", "failure_ratio",
               "response_p50_ms", "response_p90_ms", "response_p99_ms", "response_mean_ms",
               "service_p50_ms", "service_p99_ms", "service_mean_ms", "lag_p99_ms")


@dataclass(frozen=True)
class OpenSlo:
    """The limits an open-model step must stay within."""

    response_p99_ms: float
    dropped_ratio: float
    late_ratio: float
    failure_ratio: float

    def breaches(self, step: dict[str, Any]) -> list[str]:
        found = []
        checks = (("response_p99_ms", "response p99", self.response_p99_ms, " ms"),
                  ("dropped_ratio", "dropped", self.dropped_ratio, ""),
                  ("late_ratio", "late starts", self.late_ratio, ""),
                  ("failure_ratio", "failures", self.failure_ratio, ""))
        for key, label, limit, unit in checks:
            value = step.get(key)
            if value is not None and value > limit:
                shown = f"{value:g}{unit} > {limit:g}{unit}" if unit else f"{value:.2%} > {limit:.2%}"
                found.append(f"{label} {shown}")
        return found

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _ms(section: Any, key: str) -> float | None:
    return getattr(section, key, None) if section is not None else None


def step_of(run: RunResult) -> dict[str, Any] | None:
    """One run's open-model figures (None: the run has no `arrival` section)."""
    a = run.arrival
    if a is None:
        return None
    total = run.stats.total
    response, service = a.response_time_ms, a.service_time_ms
    generator = run.generator
    return {
        "rate": a.rate, "offered_rate": a.offered_rate, "achieved_rate": a.achieved_rate, "rps": total.rps,
        "dropped_ratio": a.dropped_ratio or 0.0, "late_ratio": a.late_ratio or 0.0,
        "failure_ratio": round(total.failures / total.requests, 6) if total.requests else None,
        "response_p50_ms": _ms(response, "p50"), "response_p90_ms": _ms(response, "p90"),
        "response_p99_ms": _ms(response, "p99"), "response_mean_ms": _ms(response, "mean"),
        "service_p50_ms": _ms(service, "p50"), "service_p99_ms": _ms(service, "p99"),
        "service_mean_ms": _ms(service, "mean"), "lag_p99_ms": _ms(a.lag_ms, "p99"),
        "generator_saturated": bool(generator is not None and generator.saturated),
        "run_id": run.run_id, "complete": run.complete,
    }


def combine(repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """A step's repeats as one row: medians, the spread, and whether any generator saturated."""
    row: dict[str, Any] = {"rate": repeats[0]["rate"], "repeats": len(repeats)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in repeats if r.get(key) is not None]
        row[key] = round(median(values), 3) if values else None
    for key in ("response_p99_ms", "achieved_rate"):
        values = [r[key] for r in repeats if r.get(key) is not None]
        row[f"{key}_spread"] = [min(values), max(values)] if len(values) > 1 else None
    row["generator_saturated"] = any(r["generator_saturated"] for r in repeats)
    row["complete"] = all(r["complete"] for r in repeats)
    row["run_ids"] = [r["run_id"] for r in repeats]
    return row


def turned(step: dict[str, Any], base_p99: float | None) -> list[str]:
    """Why this step is past the knee (empty: it is not); its SLO breaches come first."""
    why = list(step.get("breaches") or [])
    offered, achieved = step.get("offered_rate"), step.get("achieved_rate")
    if offered and achieved is not None and achieved < DEFAULT_MIN_ACHIEVED * offered:
        why.append(f"achieved {achieved:g}/s < {DEFAULT_MIN_ACHIEVED:.0%} of offered {offered:g}/s")
    p99 = step.get("response_p99_ms")
    if base_p99 and p99 is not None and p99 > DEFAULT_TURN_FACTOR * base_p99:
        why.append(f"response p99 {p99:g} ms > {DEFAULT_TURN_FACTOR:g}x the lowest rate's {base_p99:g} ms")
    return why


def find_open_knee(steps: list[dict[str, Any]], slo: OpenSlo) -> dict[str, Any]:
    """The knee step (by rate) and why the load could not go further; marks each step."""
    steps.sort(key=lambda s: s["rate"])
    base = steps[0].get("response_p99_ms") if steps else None
    knee, in_a_row = None, 0
    for index, step in enumerate(steps):
        step["breaches"] = slo.breaches(step)
        step["turned"] = turned(step, base)
        if not step["turned"]:
            knee, in_a_row = index, 0
            continue
        in_a_row += 1
        if in_a_row >= DEFAULT_BREACH_STEPS:
            break
    if knee is None:
        ended = ENDED_NO_KNEE
    elif knee == len(steps) - 1:
        ended = ENDED_BOUND
    else:
        ended = ENDED_SLO if steps[knee + 1]["breaches"] else ENDED_TURN
    chosen = steps[knee] if knee is not None else {}
    return {"index": knee, "ended_by": ended, "rate": chosen.get("rate"),
            "achieved_rate": chosen.get("achieved_rate"), "response_p99_ms": chosen.get("response_p99_ms"),
            "service_p99_ms": chosen.get("service_p99_ms"), "base_response_p99_ms": base}


def analyse_open(policy: str, policy_type: str | None, steps: list[dict[str, Any]], slo: OpenSlo) -> dict[str, Any]:
    """One policy's open-model capacity: its combined steps and knee."""
    knee = find_open_knee(steps, slo)
    return {"policy": policy, "type": policy_type, "slo": slo.to_dict(), "knee": knee, "steps": steps,
            "generator_saturated": any(s["generator_saturated"] for s in steps),
            "complete": all(s["complete"] for s in steps)}
