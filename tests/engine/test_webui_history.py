"""Connections-tab chart series: connects/s from the counter's growth, TIME_WAIT by side, a new
series per run, bounded (canned snapshots; the live sampling is covered by test_webui.py)."""

from __future__ import annotations

from workload.engine.webui_history import CHARTS, ConnectionHistory


def _live(connects: int, tw_client: int | None, tw_server: int | None) -> dict:
    return {"connections": {"tcp_connects": connects},
            "sockets": {"time_wait_client": {"peak": tw_client, "end": tw_client},
                        "time_wait_server": {"peak": tw_server, "end": tw_server}}}


def test_points_carry_the_connect_rate_and_time_wait_by_side():
    history, run = ConnectionHistory(), object()
    history.add(run, _live(0, 0, None), now=100.0)
    history.add(run, _live(50, 20, None), now=102.0)
    history.add(run, _live(80, 45, None), now=104.0)
    points = history.document()["points"]
    assert [p["t"] for p in points] == [0.0, 2.0, 4.0]
    assert [p["connects_per_s"] for p in points] == [None, 25.0, 15.0]
    assert [p["time_wait_client"] for p in points] == [0, 20, 45]
    assert [p["time_wait_server"] for p in points] == [None, None, None]  # not observable: no invented 0


def test_a_new_run_starts_new_series_and_the_length_is_bounded():
    history = ConnectionHistory(max_points=3)
    first, second = object(), object()
    for i in range(5):
        history.add(first, _live(i * 10, i, i), now=float(i))
    assert len(history.points) == 3
    history.add(second, _live(500, 1, 1), now=50.0)
    assert [(p["t"], p["connects_per_s"]) for p in history.points] == [(0.0, None)]


def test_every_charted_series_is_in_the_points():
    history = ConnectionHistory()
    history.add(object(), _live(1, 1, 1), now=1.0)
    keys = set(history.document()["points"][0])
    assert {key for chart in CHARTS for key in chart["series"]} <= keys
