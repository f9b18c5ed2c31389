"""Tests of run.json as a model (workload.results.run): reading, its errors, the atomic writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.factories import make_run, run_data
from workload.errors import ResultsError, UnsafePathError
from workload.results import paths
from workload.results.run import RUN_FILE, ThresholdSummary, read_run, validate_run, write_run


def _write(tmp_path: Path, data: Any) -> Path:
    file = tmp_path / RUN_FILE
    file.write_text(json.dumps(data), encoding="utf-8")
    return file


def _error(file: Path) -> str:
    with pytest.raises(ResultsError) as raised:
        read_run(file)
    return str(raised.value)


def test_a_run_survives_a_write_and_a_read_unchanged(tmp_path: Path) -> None:
    data = run_data(sockets__source_fallback="netlink refused", stages=[{"stage": 0, "users": 2}])
    data["future_section"] = {"kept": [1, 2.5]}  # keys this version does not know stay
    file = _write(tmp_path, data)
    run = read_run(file)
    assert run.stats.total.p95_ms == 9 and run.sockets is not None and run.stages is not None
    write_run(tmp_path, run)
    assert json.loads(file.read_text(encoding="utf-8")) == data
    assert file.read_text(encoding="utf-8") == json.dumps(run.dump(), indent=2) + "\n"


def test_ints_stay_ints_and_absent_keys_stay_absent() -> None:
    data = run_data()
    del data["ports"], data["server"]
    dumped = validate_run(data).dump()
    assert "ports" not in dumped and "server" not in dumped and "thresholds" not in dumped
    assert dumped == data and isinstance(dumped["stats"]["total"]["p95_ms"], int)
    assert make_run(ports=None).dump()["ports"] is None  # null stays null


def test_thresholds_are_added_by_a_copy() -> None:
    run = make_run()
    summary = ThresholdSummary(passed=True, evaluated=0, failed=0, results=[])
    judged = run.model_copy(update={"thresholds": summary})
    assert run.thresholds is None and judged.dump()["thresholds"] == {
        "passed": True, "evaluated": 0, "failed": 0, "results": []}
    assert list(judged.dump())[-1] == "thresholds"


@pytest.mark.parametrize(("overrides", "key", "what"), [
    ({"complete": "yes"}, "complete", "expected true or false, found 'yes'"),
    ({"policy": {"type": "fresh"}}, "policy.name", "required key 'name' is missing"),
    ({"scenario__name": ""}, "scenario.name", "expected a non-empty string"),
    ({"stats__total__rps": "fast"}, "stats.total.rps", "expected a number, found 'fast'"),
    ({"stats__total__requests": True}, "stats.total.requests", "expected a number, found True"),
    ({"stats__errors": {}}, "stats.errors", "expected a list, found an object"),
    ({"sockets": [1, 2]}, "sockets", "expected an object, found a list"),
    ({"workers": [{"final": "a"}]}, "workers[0].final", "expected true or false, found 'a'"),
    ({"schema": "workload.run/0"}, "schema", "schema is 'workload.run/0', expected 'workload.run/1'"),
])
def test_invalid_run_json_names_the_key(tmp_path: Path, overrides: dict[str, Any], key: str, what: str) -> None:
    file = _write(tmp_path, run_data(**overrides))
    fix = ("pass a run.json written by this version of workload (re-run the load)" if key == "schema"
           else "this run.json is incomplete or corrupt: re-run the load")
    assert _error(file) == f"{file}: ==> At key: {key}\n    error: {what}\n    fix: {fix}"


def test_not_an_object_and_not_json(tmp_path: Path) -> None:
    file = _write(tmp_path, [1])
    assert _error(file) == (f"{file}: ==> At key: (top level)\n    error: expected a JSON object, found list\n"
                            "    fix: this run.json is incomplete or corrupt: re-run the load")
    file.write_text('{"schema": "workload.run/1",\n "complete": tru', encoding="utf-8")
    assert _error(file) == (f"{file}:2: ==> At key: (top level)\n    error: not valid JSON: Expecting value "
                            "(column 14)\n    fix: the run was probably killed while writing it: re-run it")
    file.write_text('{"rps": NaN}', encoding="utf-8")
    assert "error: not valid JSON: NaN is not a JSON number" in _error(file)


def test_the_writer_leaves_no_half_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path, make_run())
    before = (tmp_path / RUN_FILE).read_text(encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(paths.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_run(tmp_path, make_run(policy__name="close"))
    assert (tmp_path / RUN_FILE).read_text(encoding="utf-8") == before
    assert [p.name for p in tmp_path.iterdir()] == [RUN_FILE]  # the temporary file is gone


def test_the_writer_stays_inside_its_folder(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / RUN_FILE).symlink_to(tmp_path / "elsewhere" / RUN_FILE)
    with pytest.raises(UnsafePathError):
        write_run(tmp_path / "run", make_run())
    assert not (tmp_path / "elsewhere" / RUN_FILE).exists()


def test_a_workers_odd_report_does_not_cost_the_run_its_file() -> None:
    odd = {"id": 7, "index": "first", "host": None, "final": True, "connections": {"tcp_connects": "many"}}
    run = make_run(workers=[odd])
    assert run.workers[0].index == "first" and run.dump()["workers"] == [odd]
