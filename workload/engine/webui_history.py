"""Connections-tab chart series: new connections per second and TIME_WAIT by side, over time.

Locust's bundled UI charts only its own figures (its extended tabs are tables), so the
tab's charts are drawn by `static/webui.js` from `/workload/connections/history.json`.
The series are kept here, server-side like Locust's own chart history: a greenlet samples
the live snapshot every `DEFAULT_INTERVAL_S` while a run is on, whether or not a browser
is open, and starts a new series when a new run starts.  Bounded (`DEFAULT_MAX_POINTS`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

DEFAULT_INTERVAL_S = 2.0  # Locust's UI polls its stats every 2 s
DEFAULT_MAX_POINTS = 1800  # an hour at 2 s
# Series key -> label shown in the chart legend; charts group series that share a unit.
SERIES = {
    "connects_per_s": "New TCP connections per second",
    "time_wait_client": "TIME_WAIT, client side",
    "time_wait_server": "TIME_WAIT, server side",
}
CHARTS = [
    {"title": "New connections per second", "unit": "connections/s", "series": ["connects_per_s"]},
    {"title": "TIME_WAIT sockets by side", "unit": "sockets", "series": ["time_wait_client", "time_wait_server"]},
]


def _socket_count(live: Mapping[str, Any], key: str) -> int | None:
    figures = (live.get("sockets") or {}).get(key) or {}
    return figures.get("end") if isinstance(figures, Mapping) else None


class ConnectionHistory:
    """Points {t, connects_per_s, time_wait_client, time_wait_server} of the current run."""

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=max_points)
        self._run: object | None = None
        self._start = 0.0
        self._last: tuple[float, int] | None = None

    def add(self, run: object, live: Mapping[str, Any], now: float | None = None) -> None:
        """One sample of `run` (any identity: a new one starts new series)."""
        now = time.monotonic() if now is None else now
        if run is not self._run:
            self.points.clear()
            self._run, self._start, self._last = run, now, None
        connects = int((live.get("connections") or {}).get("tcp_connects") or 0)
        rate = None
        if self._last is not None and now > self._last[0]:
            rate = round(max(connects - self._last[1], 0) / (now - self._last[0]), 2)
        self._last = (now, connects)
        self.points.append({"t": round(now - self._start, 1), "connects_per_s": rate,
                            "time_wait_client": _socket_count(live, "time_wait_client"),
                            "time_wait_server": _socket_count(live, "time_wait_server")})

    def document(self) -> dict[str, Any]:
        return {"charts": CHARTS, "labels": SERIES, "points": list(self.points)}


def sample_forever(history: ConnectionHistory, current_run: Callable[[], object | None],
                   live: Callable[[], Mapping[str, Any] | None], running: Callable[[], bool],
                   interval: float = DEFAULT_INTERVAL_S) -> None:
    """The sampling loop (run it in a greenlet): one point per interval while a run is on."""
    import gevent  # the engine's loop; this module stays importable without it

    while True:
        run, figures = current_run(), live()
        if run is not None and figures and running():
            history.add(run, figures)
        gevent.sleep(interval)
