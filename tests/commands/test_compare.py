"""`workload compare` as people run it: exact child durations, fresh results, clear errors on
a bad --out, and no child left running when the compare is killed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workload.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "scenarios" / "demo.yaml")
REQUESTED_S = 3.0


def _compare(*args: str, env: dict[str, str], cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workload.cli", "compare", DEMO, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _env(demo_target) -> dict[str, str]:
    return {**os.environ, "WORKLOAD_DEMO_TARGET": demo_target.to_env(), "PYTHONPATH": str(ROOT)}


def _runs(out: Path) -> dict[str, dict]:
    return {p.name: json.loads((p / "run.json").read_text()) for p in sorted((out / "runs").iterdir()) if p.is_dir()}


@pytest.mark.slow
def test_compare_children_last_the_requested_time_and_results_are_never_reused(tmp_path, demo_target):
    out, env = tmp_path / "cmp", _env(demo_target)
    started = time.monotonic()
    done = _compare("--policies", "shared,fresh", "--duration", "3s", "--users", "4", "--out", str(out), env=env)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _runs(out)
    assert sorted(runs) == ["fresh", "shared"]
    for run in runs.values():
        assert run["requested_duration_s"] == REQUESTED_S and run["complete"] is True
        assert 2.94 <= run["duration_s"] <= 3.2, run["duration_s"]
        assert run["stats"]["total"]["requests"] > 0 and run["failures_by_cause"] == {}
    assert elapsed >= 2 * REQUESTED_S  # two runs one after the other, measured here
    # Not a terminal: plain progress lines with the child's own figures, not bars.
    lines = done.stderr.splitlines()
    assert "shared: started (up to 3 s)" in lines and "fresh: started (up to 3 s)" in lines
    running = [line for line in lines if re.fullmatch(r"shared: \d s of 3 s, 4 users, [\d,]+ requests "
                                                      r"\(0 failed\), [\d,]+ req/s", line)]
    assert running, done.stderr[-3000:]
    assert any(re.fullmatch(r"fresh: done, 4 users, [\d,]+ requests \(0 failed\), [\d,]+ req/s", line)
               for line in lines), done.stderr[-3000:]
    assert not list((out / "runs").glob(".*progress*"))  # the live figures go with their child

    again = _compare("--policies", "shared", "--duration", "3s", "--out", str(out), env=env)
    assert again.returncode == ExitCode.BAD_INPUT and "Traceback" not in again.stderr
    assert f"workload: error: --out {out} is not empty" in again.stderr and "add --replace" in again.stderr
    assert _runs(out) == runs  # nothing touched

    replaced = _compare("--policies", "shared", "--duration", "3s", "--users", "2", "--out", str(out),
                        "--replace", env=env)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    fresh = _runs(out)
    assert sorted(fresh) == ["shared"] and fresh["shared"]["started_at"] > runs["shared"]["ended_at"]
    assert 2.94 <= fresh["shared"]["duration_s"] <= 3.2
    summary = json.loads((out / "summary.json").read_text())
    assert [p["policy"] for p in summary["policies"]] == ["shared"]


@pytest.mark.parametrize("kind", ["file", "unwritable"])
@pytest.mark.slow
def test_bad_out_is_exit_2_without_traceback(tmp_path, demo_target, kind):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    out = str(target) if kind == "file" else "/proc/workload-no/out"
    before = demo_target.stats()["requests"]
    done = _compare("--duration", "3s", "--out", out, env=_env(demo_target), timeout=60)
    assert done.returncode == ExitCode.BAD_INPUT and "Traceback" not in done.stderr
    expected = (f"workload: error: --out {out} is a file, not a folder\n    fix: pass a folder path" if kind == "file"
                else f"workload: error: --out {out} is not writable (No such file or directory)\n"
                "    fix: pass a folder you can write to, or fix its permissions")
    assert done.stderr.strip() == expected
    assert target.read_text() == "keep me" and demo_target.stats()["requests"] == before  # nothing sent


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _locust_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in _children(pid):
            if b"locust" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        time.sleep(0.1)
    raise AssertionError("compare started no Locust child")


@pytest.mark.slow
def test_a_killed_compare_takes_its_locust_child_with_it(tmp_path, demo_target):
    compare = subprocess.Popen(
        [sys.executable, "-m", "workload.cli", "compare", DEMO, "--policies", "shared", "--duration", "30s",
         "--users", "2", "--out", str(tmp_path / "cmp")],
        cwd=ROOT, env=_env(demo_target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child = _locust_child(compare.pid, timeout=30)
        time.sleep(1)  # let it get going
        compare.send_signal(signal.SIGKILL)
        compare.wait(timeout=5)
        deadline = time.monotonic() + 15
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), f"Locust child {child} still running after its compare was killed"
    finally:
        compare.kill()


@pytest.mark.slow
def test_a_fractional_duration_is_refused_before_anything_is_created(tmp_path, demo_target):
    done = _compare("--duration", "2.5s", "--out", str(tmp_path / "out"), env=_env(demo_target), timeout=60)
    assert done.returncode == ExitCode.BAD_INPUT and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("workload: error: --duration 2.5s is not a whole number of seconds\n"
                                   "    fix: use e.g. 2s")
    assert not (tmp_path / "out").exists()


def test_no_finished_run_is_incomplete_not_bad_input(tmp_path):
    from workload.commands.compare import run_against_target
    from workload.errors import RunError
    from workload.scenario.loader import load_text

    loaded = load_text("target: {host: 'http://127.0.0.1:9'}\nendpoints: [{name: a, path: /}]\n", "s.yaml")
    with pytest.raises(RunError) as raised:
        run_against_target(loaded, tmp_path, lambda demo, flag: [])
    assert raised.value.exit_code == ExitCode.INCOMPLETE
    assert str(raised.value) == f"no run finished; see the logs in {tmp_path}"
