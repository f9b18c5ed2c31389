"""Live progress: a running child's figures, passed to the `workload compare`/`capacity` parent.

The parent names a file in `WORKLOAD_PROGRESS_FILE` for each Locust child; the child's recorder
rewrites it (atomically, a few hundred bytes) about once a second with the run's elapsed time,
users, requests, failures and current rate.  Numbers only: no request names, so nothing there
needs redaction.  The parent reads it for its progress display (`workload.commands.progress`).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from workload.results.paths import write_atomic

PROGRESS_ENV = "WORKLOAD_PROGRESS_FILE"


@dataclass(frozen=True)
class Progress:
    """One child's figures at one moment."""

    t: float  # seconds since the run started
    users: int
    requests: int
    failures: int
    rps: float  # Locust's current rate (last few seconds)
    offered: float | None = None  # open model: iterations/s its schedule has offered so far (its users: drivers)
    in_flight: int | None = None  # open model: iterations running now


def publish(progress: Progress) -> None:
    """Write `progress` where the parent asked (`WORKLOAD_PROGRESS_FILE`); nothing when it did not."""
    target = os.environ.get(PROGRESS_ENV)
    if not target:
        return
    with contextlib.suppress(OSError):  # a progress display must never stop a run
        write_atomic(Path(target), json.dumps(asdict(progress)))


def read_progress(path: Path) -> Progress | None:
    """The child's last figures, or None before its first tick (or if the file is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Progress(t=float(data["t"]), users=int(data["users"]), requests=int(data["requests"]),
                        failures=int(data["failures"]), rps=float(data["rps"]),
                        offered=None if data.get("offered") is None else float(data["offered"]),
                        in_flight=None if data.get("in_flight") is None else int(data["in_flight"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None

