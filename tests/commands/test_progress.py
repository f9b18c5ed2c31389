"""Progress in CI logs: plain lines at a modest interval, with the child's own figures."""

from __future__ import annotations

from pathlib import Path

from workload.commands.progress import DEFAULT_PLAIN_INTERVAL_S, PlainView
from workload.results.progress import PROGRESS_ENV, Progress, publish, read_progress


def test_a_child_publishes_its_figures_where_the_parent_asked(tmp_path: Path, monkeypatch) -> None:
    figures = tmp_path / "p.json"
    publish(Progress(t=1.0, users=2, requests=3, failures=0, rps=3.0))
    assert not figures.exists()  # no parent asked: nothing written
    monkeypatch.setenv(PROGRESS_ENV, str(figures))
    publish(Progress(t=2.5, users=4, requests=1234, failures=5, rps=493.6))
    assert read_progress(figures) == Progress(t=2.5, users=4, requests=1234, failures=5, rps=493.6)
    figures.write_text("{not json")
    assert read_progress(figures) is None and read_progress(tmp_path / "missing.json") is None


def test_plain_view_prints_start_every_interval_and_end(tmp_path: Path, monkeypatch) -> None:
    now = [100.0]
    lines: list[str] = []
    view = PlainView(lines.append, expected_s=60, clock=lambda: now[0])
    figures = tmp_path / "p.json"
    monkeypatch.setenv(PROGRESS_ENV, str(figures))
    view.running("close", 0.2, figures)
    for second in range(1, 25):
        now[0] = 100.0 + second
        publish(Progress(t=second, users=10, requests=second * 900, failures=0, rps=900))
        view.running("close", second, figures)
    view.done("close", "done")
    assert lines == [
        "close: started (up to 60 s)",
        "close: 10 s of 60 s, 10 users, 9,000 requests (0 failed), 900 req/s",
        "close: 20 s of 60 s, 10 users, 18,000 requests (0 failed), 900 req/s",
        "close: done, 10 users, 21,600 requests (0 failed), 900 req/s",
    ]
    assert DEFAULT_PLAIN_INTERVAL_S == 10


def test_a_short_run_still_gets_a_few_lines(tmp_path: Path) -> None:
    lines: list[str] = []
    now = [0.0]
    view = PlainView(lines.append, expected_s=8, clock=lambda: now[0])
    for tick in range(0, 33):  # 8 s in quarter seconds, no figures yet
        now[0] = tick / 4
        view.running("shared", tick / 4, tmp_path / "none.json")
    assert lines == ["shared: started (up to 8 s)", "shared: 2 s of 8 s", "shared: 4 s of 8 s",
                     "shared: 6 s of 8 s", "shared: 8 s of 8 s"]


def test_an_open_run_shows_its_offered_rate_on_its_own_clock(tmp_path: Path, monkeypatch) -> None:
    now = [0.0]
    lines: list[str] = []
    view = PlainView(lines.append, expected_s=5, clock=lambda: now[0])
    figures = tmp_path / "p.json"
    monkeypatch.setenv(PROGRESS_ENV, str(figures))
    view.running("pool10", 0.5, figures)
    now[0] = 4.0  # the parent's clock counts the child's start-up; the child's run is 1.5 s old
    publish(Progress(t=1.5, users=1, requests=300, failures=0, rps=190.4, offered=200.0, in_flight=12))
    view.running("pool10", 4.0, figures)
    now[0] = 9.0  # draining past its planned 5 s
    publish(Progress(t=6.2, users=1, requests=1000, failures=2, rps=180, offered=199.6, in_flight=0))
    view.running("pool10", 9.0, figures)
    assert lines[1:] == [
        "pool10: 2 s of 5 s, 200/s offered, 12 in flight, 300 requests (0 failed), 190 req/s",
        "pool10: 5 s of 5 s, 200/s offered, 0 in flight, 1,000 requests (2 failed), 180 req/s",
    ]
    assert read_progress(figures) == Progress(t=6.2, users=1, requests=1000, failures=2, rps=180, offered=199.6,
                                              in_flight=0)
