"""Run recorder and results paths: fresh folders, paths proven inside, a fallback when writing
fails, and the run's verdict (requested vs actual duration, incomplete, empty)."""

from __future__ import annotations

from locust.stats import RequestStats

import json
import os
import time
from pathlib import Path

import pytest

from tests.factories import make_run
from workload.commands import compare
from workload.engine import recorder as recorder_module
from workload.engine.recorder import RunInfo, RunRecorder
from workload.errors import ExitCode, ResultsError, UnsafePathError
from workload.results import gate, paths, verdict
from workload.results.run import write_run
from workload.scenario.loader import load_text

UNWRITABLE = "/proc/workload-cannot-create-this"  # even root cannot create files in /proc


# -- paths.inside: defence in depth, whatever validation let through -------------------------------
@pytest.mark.parametrize("name", ["../x", "../../elsewhere", "a/../../b", "/abs/path", "..", ".", ""])
def test_inside_refuses_names_that_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePathError, match="refusing to write"):
        paths.inside(tmp_path, name)


def test_inside_follows_symlinks(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="leads outside the results folder"):
        paths.inside(tmp_path / "root", "link")
    assert paths.inside(tmp_path / "root", "shared.log") == (tmp_path / "root" / "shared.log").resolve()


def test_compare_child_paths_refuse_a_traversal_policy(tmp_path: Path) -> None:
    assert compare.child_paths(tmp_path, "shared") == (tmp_path / "shared", tmp_path / "shared.log")
    for policy in ("../x", "/tmp/x", "a/../../x"):
        with pytest.raises(UnsafePathError):
            compare.child_paths(tmp_path, policy)
    assert sorted(os.listdir(tmp_path)) == [] and not (tmp_path.parent / "x").exists()


# -- fresh folders -----------------------------------------------------------------------------------
def test_fresh_dir_never_reuses_a_folder(tmp_path: Path) -> None:
    made = [paths.fresh_dir(tmp_path / "results", "20261129-demo-shared") for _ in range(3)]
    assert [p.name for p in made] == ["20261129-demo-shared", "20261129-demo-shared-2", "20261129-demo-shared-3"]
    assert all(p.is_dir() and not list(p.iterdir()) for p in made)


def test_two_compares_in_the_same_second_get_two_folders(tmp_path: Path) -> None:
    first, second = (paths.output_dir(None, tmp_path, "compare") for _ in range(2))
    assert first != second and first.parent == second.parent == tmp_path.resolve()
    assert second.name == first.name + "-2"


def test_out_must_be_new_or_empty_unless_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert paths.output_dir(str(out), tmp_path, "compare") == out.resolve()  # new: created
    (out / "runs" / "shared").mkdir(parents=True)
    (out / "runs" / "shared" / "run.json").write_text("{}")
    (out / "summary.json").write_text("{}")
    with pytest.raises(ResultsError) as raised:
        paths.output_dir(str(out), tmp_path, "compare")
    assert str(raised.value) == (
        f"error: --out {out} is not empty (runs, summary.json): its results would be mixed with this run's\n"
        "    fix: pass a new or empty folder, or add --replace to delete the earlier results in it")
    assert paths.output_dir(str(out), tmp_path, "compare", replace=True) == out.resolve()
    assert list(out.iterdir()) == []


def test_replace_deletes_nothing_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(ResultsError, match="notes.txt is not something workload wrote; nothing was deleted"):
        paths.output_dir(str(tmp_path), tmp_path, "compare", replace=True)
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "summary.json").exists()


def test_out_that_is_a_file_or_unwritable_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ResultsError,
                       match=r"^error: --out .*/file is a file, not a folder\n    fix: pass a folder path$"):
        paths.output_dir(str(tmp_path / "file"), tmp_path, "compare")
    with pytest.raises(ResultsError) as raised:
        paths.writable_dir(UNWRITABLE, "--results-dir")
    assert str(raised.value) == (f"error: --results-dir {UNWRITABLE} is not writable (No such file or directory)\n"
                                 "    fix: pass a folder you can write to, or fix its permissions")


# -- the run's verdict ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("actual", "requested", "interrupted", "shape", "expected"), [
    (3.0, 3.0, False, False, None),
    (2.86, 3.0, False, False, None),  # within 5%
    (2.84, 3.0, False, False, "ended after 2.84 s, more than 5% short of the requested 3 s"),
    (1.2, 3.0, True, False, "interrupted after 1.20 s of the requested 3 s"),
    (1.2, None, True, False, "interrupted after 1.20 s"),
    (7.0, 60.0, False, True, None),  # a shape's stop_if ended it: that is its result
    (9.0, None, False, False, None),  # no run time asked (web UI stopped by hand)
])
def test_completion(actual, requested, interrupted, shape, expected) -> None:
    assert verdict.completion(actual, requested, interrupted, shape) == expected


def test_exit_codes_of_incomplete_and_empty_runs() -> None:
    full = make_run(stats__total__requests=5)
    assert verdict.exit_code(full) is None and verdict.problem(full) is None
    empty = make_run(stats__total__requests=0)
    assert verdict.exit_code(empty) == ExitCode.NO_REQUESTS
    assert verdict.problem(empty) == "EMPTY run: no request completed (the target never answered within the run)"
    cut = make_run(complete=False, incomplete_reason="interrupted after 1.00 s", stats__total__requests=0)
    assert verdict.exit_code(cut) == ExitCode.INCOMPLETE  # incomplete comes first
    assert verdict.problem(cut) == "INCOMPLETE run: interrupted after 1.00 s; its figures cannot pass a gate"


# -- recorder: real stats, real socket sampler -----------------------------------------------------------
def _recorder(out_dir: Path, requested_s: float | None) -> tuple[RunRecorder, RequestStats]:
    info = RunInfo(scenario="s", scenario_path="s.yaml", policy="shared", policy_type="shared",
                   policy_settings={}, urls=["http://127.0.0.1:9"], local_target=True,
                   load={"users": 1, "spawn_rate": 1, "duration_s": requested_s}, requested_s=requested_s)
    stats = RequestStats()
    recorder = RunRecorder(info, out_dir)
    recorder.start()
    stats.log_request("GET", "list", 12, 100)
    stats.log_error("GET", "list", "ConnectionRefusedError(111, 'Connection refused')")
    stats.log_request("GET", "list", 15, 100)
    return recorder, stats


def test_run_json_has_requested_and_actual_duration_and_causes(tmp_path: Path) -> None:
    recorder, stats = _recorder(tmp_path / "run", requested_s=30.0)
    time.sleep(0.05)
    run = recorder.finish(stats, complete=True)
    out = recorder.write(stats)
    stored = json.loads((out / "run.json").read_text())
    assert stored["requested_duration_s"] == 30.0 and 0.05 <= stored["duration_s"] < 30
    assert stored["complete"] is False and stored["incomplete_reason"].endswith("short of the requested 30 s")
    assert stored["failures_by_cause"] == {"refused": 1} == run.failures_by_cause
    assert stored == run.dump() and isinstance(stored["stats"]["endpoints"][0]["p50_ms"], int)  # 15, not 15.0
    assert (out / "stats.csv").is_file() and (out / "failures.csv").is_file()


def test_a_judged_run_is_written_once_with_its_thresholds_and_stays_redacted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("H9_RECORDER_SECRET", "h9-secret-in-a-name")
    loaded = load_text('target:\n  host: http://127.0.0.1:9\n  headers: {X-Key: "${H9_RECORDER_SECRET}"}\n'
                       "endpoints:\n  - {path: /l, thresholds: {p95_ms: 500}}\n", "s.yaml")
    recorder, stats = _recorder(tmp_path / "run", requested_s=None)
    stats.log_request("GET", "h9-secret-in-a-name", 5, 10)
    written: list[Path] = []
    monkeypatch.setattr(recorder_module, "write_run", lambda folder, run: written.append(write_run(folder, run)))
    run = recorder.finish(stats, complete=True)
    recorder.finished, results = gate.judged(loaded.model, run)
    out = recorder.write(stats)
    assert written == [out / "run.json"]  # one write, the judged run; no temporary file left beside it
    assert sorted(p.name for p in out.iterdir()) == ["failures.csv", "run.json", "stats.csv"]
    stored = json.loads((out / "run.json").read_text())
    assert stored["thresholds"]["evaluated"] == len(results) == 1 and run.thresholds is None
    assert "h9-secret-in-a-name" not in (out / "run.json").read_text()
    assert [e["name"] for e in stored["stats"]["endpoints"]] == ["***", "list"]


def test_a_run_that_cannot_be_written_is_saved_to_a_printed_fallback(tmp_path: Path, caplog) -> None:
    recorder, stats = _recorder(Path(UNWRITABLE) / "run", requested_s=None)
    recorder.finish(stats, complete=True)
    out = recorder.write(stats)
    try:
        assert out != Path(UNWRITABLE) / "run" and out.name.startswith("workload-run-")
        assert json.loads((out / "run.json").read_text())["complete"] is True
        assert f"saving them to {out} instead" in caplog.text
    finally:
        for child in out.iterdir():
            child.unlink()
        out.rmdir()


def test_figures_that_do_not_fit_the_model_are_still_saved(tmp_path: Path, monkeypatch, caplog) -> None:
    recorder, stats = _recorder(tmp_path / "run", requested_s=None)
    stats.log_request("GET", "list", 5, 10)

    def refuse(document, file):
        raise ResultsError(f"{file}: ==> At key: stats.total.rps\n    error: a bug of ours")

    monkeypatch.setattr(recorder_module, "validate_run", refuse)
    with pytest.raises(ResultsError, match="a bug of ours"):
        recorder.finish(stats, complete=True)
    saved = json.loads((tmp_path / "run" / "run.unvalidated.json").read_text())
    assert saved["stats"]["total"]["requests"] == stats.total.num_requests and saved["schema"] == "workload.run/1"
    assert "saved them unvalidated to" in caplog.text
