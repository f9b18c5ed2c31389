"""Progress display of `workload compare` / `capacity`: bars on a terminal, plain lines in logs.

On a terminal, rich's bars (one per policy).  When stdout is not a terminal (CI logs, `| tee`),
bars would only print their final state, so `PlainView` prints one line when a policy starts,
one every `DEFAULT_PLAIN_INTERVAL_S` (a quarter of a short run) while it runs (elapsed, users, requests, rate, from the
child's `workload.results.progress` file) and one when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, TaskID, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Bars

from workload.results.progress import Progress, read_progress

DEFAULT_PLAIN_INTERVAL_S = 10.0  # CI logs: often enough to see a run is alive, rarely enough to read
MIN_LINES_PER_RUN = 4  # a short run still shows a few lines, not only its start and end


class ProgressView(Protocol):
    def running(self, policy: str, elapsed: float, figures: Path) -> None: ...
    def done(self, policy: str, note: str) -> None: ...


class BarView:
    """rich's progress bars: one per policy, filled by elapsed time."""

    def __init__(self, progress: Bars, policies: list[str], expected_s: float):
        self.progress, self.expected_s = progress, expected_s
        self.tasks: dict[str, TaskID] = {p: progress.add_task(p, total=expected_s, note="waiting") for p in policies}

    def running(self, policy: str, elapsed: float, figures: Path) -> None:
        self.progress.update(self.tasks[policy], completed=min(elapsed, self.expected_s), note="running")

    def done(self, policy: str, note: str) -> None:
        self.progress.update(self.tasks[policy], completed=self.expected_s, note=note)


class PlainView:
    """One line per policy step, at a modest interval: readable in a CI log."""

    def __init__(self, print_line: Callable[[str], None], expected_s: float,
                 interval_s: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.print_line, self.expected_s, self.clock = print_line, expected_s, clock
        self.interval_s = interval_s or max(1.0, min(DEFAULT_PLAIN_INTERVAL_S, expected_s / MIN_LINES_PER_RUN))
        self._next: dict[str, float] = {}
        self._last: dict[str, str] = {}

    def running(self, policy: str, elapsed: float, figures: Path) -> None:
        now = self.clock()
        if policy not in self._next:
            self.print_line(f"{policy}: started (up to {self.expected_s:g} s)")
            self._next[policy] = now + self.interval_s
            return
        latest = read_progress(figures)
        self._last[policy] = self._words(latest)
        if now >= self._next[policy]:
            self._next[policy] = now + self.interval_s
            # The child's own run clock, once it reports: the parent's counts its start-up too.
            shown = min(latest.t, self.expected_s) if latest is not None else elapsed
            self.print_line(f"{policy}: {shown:.0f} s of {self.expected_s:g} s{self._last[policy]}")

    def done(self, policy: str, note: str) -> None:
        self.print_line(f"{policy}: {note}{self._last.get(policy, '')}")

    @staticmethod
    def _words(figures: Progress | None) -> str:
        if figures is None:
            return ""
        load = (f"{figures.offered:,.0f}/s offered, {figures.in_flight or 0:,} in flight" if figures.offered is not None
                else f"{figures.users:,} users")  # an open run's only users are its schedule's drivers
        return f", {load}, {figures.requests:,} requests ({figures.failures:,} failed), {figures.rps:,.0f} req/s"


@contextmanager
def progress_view(console: Console, policies: list[str], expected_s: float) -> Iterator[ProgressView]:
    """Bars when `console` is a terminal, plain lines otherwise."""
    if not console.is_terminal:
        yield PlainView(lambda line: console.print(line, highlight=False, soft_wrap=True), expected_s)
        return
    columns = (TextColumn("{task.description:<12}"), BarColumn(), TextColumn("{task.fields[note]}"),
               TimeRemainingColumn())
    with Bars(*columns, console=console, transient=False) as progress:
        yield BarView(progress, policies, expected_s)
