"""Distributed runs: Locust master + workers on loopback, worker telemetry, and docker-compose.yml.

Docker's engine is not available here, so the compose file is checked by parsing it and by
running its target, master and worker commands as local processes (loopback only, bounded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.factories import run_data
from tests.helpers import free_port, stop_process, wait_until_up
from workload.demo.launcher import DemoTarget
from workload.engine import clusterkey
from workload.engine.webui import connection_rows
from workload.report import build_report
from workload.results.run import validate_run, write_run
from workload.telemetry import cluster

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
RUN_TIMEOUT_S = 60


# -- helpers ---------------------------------------------------------------------------------------
def _services() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def _local(command: list[str], program: str) -> list[str]:
    """A compose command as a local process: the same arguments, run by this interpreter."""
    assert command[0] == program
    module = "workload.cli" if program == "workload" else program
    return [sys.executable, "-m", module, *command[1:]]


def _replaced(command: list[str], mapping: dict[str, str]) -> list[str]:
    return [mapping.get(arg, arg) for arg in command]


def _interpolated(environment: dict[str, str | None], shell: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose passes it: `${NAME:?message}` from the shell, unset values dropped."""
    def value(text: str) -> str:
        return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: shell[m.group(1)], text)

    return {k: value(v) for k, v in environment.items() if v is not None}


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLOAD_", "LOCUST_"))}
    return {**env, **extra}


def _check_totals(run: dict[str, Any], workers: int) -> None:
    """The master's totals are the sum of its workers' counters; sockets count once per host."""
    entries = run["workers"]
    assert len(entries) == workers and len({w["id"] for w in entries}) == workers
    assert all(w["final"] for w in entries), "a final report missed the master"
    assert all(w["requests"] > 0 for w in entries), "every worker ran the scenario"
    assert run["stats"]["total"]["requests"] == sum(w["requests"] for w in entries)
    for key in ("tcp_connects", "tls_handshakes", "pool_discards"):
        assert run["connections"][key] == sum(w["connections"][key] for w in entries), key
    # The server may also count a connect that a user stopped at the end of the run left unfinished
    # (at most one per user); every connection the clients completed, it accepted.
    unfinished = run["server"]["connections_accepted"] - run["connections"]["tcp_connects"]
    assert 0 <= unfinished <= run["load"]["users"]
    # All workers share this host's socket table: its TIME_WAIT is counted once, not per worker.
    assert run["sockets"]["hosts"] == 1
    peaks = [w["sockets"]["time_wait_client"]["peak"] for w in entries]
    assert run["sockets"]["time_wait_client"]["peak"] == max(peaks)
    # The generator's health is the workers' (they send the load), not the idle master's.
    health = run["generator"]
    assert health["processes"] == health["lag_reports"] == workers
    assert health["loop_lag_samples"] == sum(w["generator"]["loop_lag_samples"] for w in entries) > 0
    assert health["cpu_percent"] == max(w["generator"]["cpu_percent"] for w in entries) > 0


# -- combining worker reports (no processes) ----------------------------------------------------------
def _report(worker: str, host: str, connects: int, tw_peak: int, requests_: int = 100) -> dict[str, Any]:
    sockets = {"endpoints": ["127.0.0.1:8080"], "server_side_observable": True, "samples": 3,
               "time_wait_client": {"peak": tw_peak, "end": tw_peak - 1},
               "time_wait_server": {"peak": 0, "end": 0}, "established_client": {"peak": 2, "end": 0},
               "established_server": {"peak": 2, "end": 0},
               "series": [{"t": 1.0, "tw_client": tw_peak - 1, "tw_server": 0, "est_client": 2, "est_server": 2},
                          {"t": 2.1, "tw_client": tw_peak, "tw_server": 0, "est_client": 0, "est_server": 0}]}
    return {"worker": worker, "index": int(worker[-1]), "host": host, "netns": "net:[1]", "pid": 1,
            "final": True, "requests": requests_, "kernel": {"ActiveOpens": connects * 2},
            "connections": {"tcp_connects": connects, "tls_handshakes": 0, "pool_discards": 1,
                            "connect_errors": 0, "setup_ms": {"count": connects, "avg": 1.0, "max": 2.0}},
            "sockets": sockets}


def test_counters_sum_over_workers_but_sockets_count_once_per_host():
    reports = [_report("w0", "a", 10, 40), _report("w1", "a", 20, 50), _report("w2", "b", 5, 7)]
    run = cluster.merge_into({"stats": {"total": {"requests": 300}}}, reports)
    assert run["connections"]["tcp_connects"] == 35 and run["connections"]["pool_discards"] == 3
    assert run["connections"]["requests_per_connection"] == round(300 / 35, 2)
    assert run["connections"]["setup_ms"]["count"] == 35
    # host a: max(40, 50); host b: 7.
    assert run["sockets"]["time_wait_client"] == {"peak": 57, "end": 55}
    assert run["sockets"]["hosts"] == 2
    assert run["sockets"]["series"][-1]["tw_client"] == 57
    assert run["kernel"]["ActiveOpens"] == 40 + 10  # host a: max(20, 40); host b: 10
    assert [w["id"] for w in run["workers"]] == ["w0", "w1", "w2"]
    assert "series" not in run["workers"][0]["sockets"]


def _health(lags_ms: list[float], cpu: float) -> dict[str, Any]:
    from workload.telemetry.generator import GeneratorHealth

    health = GeneratorHealth()
    health.start()
    for lag in lags_ms:
        health.record_lag(lag)
    health.stop()
    return {**health.report(), "cpu_percent": cpu}


def test_generator_health_merges_the_workers_lag_and_keeps_the_busiest_cpu():
    reports = [{**_report("w0", "a", 1, 1), "generator": _health([1.0] * 99, 40.0)},
               {**_report("w1", "b", 1, 1), "generator": _health([30.0], 93.5)}]
    run = cluster.merge_into({"stats": {"total": {"requests": 200}}, "generator": {"processes": 1}}, reports)
    health = run["generator"]
    assert health["processes"] == health["lag_reports"] == 2 and health["loop_lag_samples"] == 100
    assert health["loop_lag_p50_ms"] == pytest.approx(1.0, abs=0.01)
    assert health["loop_lag_max_ms"] == pytest.approx(30.0, rel=0.001)
    assert health["cpu_percent"] == 93.5 and health["saturated"]
    assert health["saturated_because"] == ["CPU 93.5% of one core >= 90%"]
    assert [w["generator"]["loop_lag_samples"] for w in run["workers"]] == [99, 1]
    assert all("lag_histogram" not in w["generator"] for w in run["workers"])  # merged, not copied


def test_a_damaged_lag_histogram_counts_its_cpu_but_not_its_lag():
    reports = [{**_report("w0", "a", 1, 1), "generator": _health([2.0] * 10, 20.0)},
               {**_report("w1", "a", 1, 1), "generator": {"cpu_percent": 50.0, "lag_histogram": "not base64!"}}]
    health = cluster.merge_into({"stats": {"total": {"requests": 2}}}, reports)["generator"]
    assert (health["processes"], health["lag_reports"], health["loop_lag_samples"]) == (2, 1, 10)
    assert health["cpu_percent"] == 50.0 and not health["saturated"]


def test_a_workers_impossible_cpu_figures_are_ignored():
    reports = [{**_report("w0", "a", 1, 1), "generator": _health([2.0], 30.0)},
               {**_report("w1", "a", 1, 1), "generator": {**_health([2.0], 0.0), "cpu_percent": float("nan"),
                                                          "cpu_percent_max": float("inf")}},
               {**_report("w2", "a", 1, 1), "generator": {**_health([2.0], 0.0), "cpu_percent": -5,
                                                          "cpu_percent_max": True}}]
    health = cluster.merge_into({"stats": {"total": {"requests": 3}}}, reports)["generator"]
    assert health["cpu_percent"] == 30.0 and health["processes"] == 3 and health["loop_lag_samples"] == 3


def test_workers_without_health_leave_the_masters_own():
    run = cluster.merge_into({"stats": {"total": {"requests": 1}}, "generator": {"processes": 1}},
                             [_report("w0", "a", 1, 1)])
    assert run["generator"] == {"processes": 1} and run["workers"][0]["generator"] is None


def test_unknown_socket_figures_stay_unknown():
    remote = _report("w0", "a", 3, 1)
    remote["sockets"]["time_wait_server"] = {"peak": None, "end": None}
    remote["sockets"]["server_side_observable"] = False
    merged = cluster.merge_sockets([remote, _report("w1", "b", 3, 1)])
    assert merged["time_wait_server"] == {"peak": None, "end": None}
    assert merged["server_side_observable"] is False


def test_connections_tab_shows_each_worker_and_how_totals_are_formed():
    workers = cluster.worker_entries([_report("w0", "a", 10, 40), _report("w1", "a", 20, 50)])
    live = {"policy": "fresh", "connections": {"tcp_connects": 30}, "sockets": {}, "workers": workers}
    rows = {r["metric"]: r["value"] for r in connection_rows(live)}
    assert rows["TCP connects"] == "30 connections"
    assert "connections 10" in rows["worker 0 (a, pid 1)"] and "connections 20" in rows["worker 1 (a, pid 1)"]
    assert "1 host(s)" in rows["totals"]


def test_report_has_a_workers_table(tmp_path):
    reports = [_report("w0", "a", 10, 40), _report("w1", "a", 20, 50)]
    run = cluster.merge_into(run_data(
        run_id="r", policy={"name": "fresh", "type": "fresh"},
        stats={"total": {"requests": 200, "failures": 0, "rps": 10.0}, "history": [], "errors": []},
    ), reports)
    (tmp_path / "r").mkdir()
    write_run(tmp_path / "r", validate_run(run))
    build_report([tmp_path / "r"], tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Workers" in markdown
    assert "| fresh | #0 | a | 100 | 10 |" in markdown
    assert "| fresh | total (2 workers) | 1 host(s), each counted once | 200 | 30 |" in markdown
    assert "Workers (distributed" in (tmp_path / "report" / "report.html").read_text()


# -- docker-compose.yml -----------------------------------------------------------------------------------
def test_compose_file_describes_target_master_and_scalable_workers():
    services = _services()
    assert set(services) == {"target", "master", "worker"}
    # workload binds the master and the web UI to loopback by default: compose says 0.0.0.0 explicitly.
    assert services["master"]["command"] == ["locust", "-f", "workload/main.py", "--master",
                                             "--master-bind-host", "0.0.0.0", "--web-host", "0.0.0.0"]
    # One cluster key for the master and the workers, required from the shell (compose fails without it).
    key_ref = services["master"]["environment"]["WORKLOAD_CLUSTER_KEY"]
    assert key_ref.startswith("${WORKLOAD_CLUSTER_KEY:?") and "workload cluster-key" in key_ref
    assert services["worker"]["environment"] == {"WORKLOAD_CLUSTER_KEY": key_ref}
    assert services["worker"]["command"] == ["locust", "-f", "workload/main.py", "--worker",
                                             "--master-host", "master"]
    assert "container_name" not in services["worker"]  # `--scale worker=4` needs distinct names
    assert "127.0.0.1:8089:8089" in services["master"]["ports"]
    assert {"./scenarios:/app/scenarios:ro", "./results:/app/results"} <= set(services["master"]["volumes"])
    assert not services["worker"].get("volumes"), "workers run the scenario the master forwards"
    target = DemoTarget.from_env(services["master"]["environment"]["WORKLOAD_DEMO_TARGET"])
    assert target.http_url == "http://target:8080" and target.admin_url == "http://target:8081"
    assert "--allow-external-bind" in services["target"]["command"]
    assert not services["target"].get("ports"), "the demo target stays inside the compose network"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and "pip install --no-cache-dir ." in dockerfile


def test_demo_target_refuses_a_non_loopback_bind_unless_allowed(capsys):
    from workload.demo.server import build_parser, main

    assert main(["--host", "0.0.0.0"]) == 2  # refused before binding anything
    assert "--allow-external-bind" in capsys.readouterr().err
    assert build_parser().parse_args(["--host", "0.0.0.0", "--allow-external-bind"]).allow_external_bind


# -- real master and workers on loopback ------------------------------------------------------------------
@pytest.mark.slow
def test_compose_commands_run_as_local_processes(tmp_path):
    """target + master + 2 workers from docker-compose.yml: one worker in a directory like the
    image (the package, no scenarios/), one with `-f -` in an empty directory."""
    services = _services()
    http, admin, master_port = free_port(), free_port(), free_port()
    target_cmd = _local(_replaced(services["target"]["command"],
                                  {"0.0.0.0": "127.0.0.1", "8080": str(http), "8081": str(admin)}), "workload")
    demo = {"http_url": f"http://127.0.0.1:{http}", "https_url": None,
            "admin_url": f"http://127.0.0.1:{admin}", "ca_path": None, "pid": 0}
    shell = {"WORKLOAD_CLUSTER_KEY": clusterkey.generate_key()}  # as the compose comment says to export
    compose_env = _interpolated(services["master"]["environment"], shell)
    # The headless variant documented in docker-compose.yml, with loopback ports.
    master_env = _clean_env(**{**compose_env, "WORKLOAD_DEMO_TARGET": json.dumps(demo)}, WORKLOAD_POLICY="fresh",
                            LOCUST_HEADLESS="true", LOCUST_EXPECT_WORKERS="2", LOCUST_RUN_TIME="6s",
                            LOCUST_USERS="4", LOCUST_SPAWN_RATE="4",
                            WORKLOAD_RESULTS_DIR=str(tmp_path / "results"), WORKLOAD_RUN_ID="compose")
    master_cmd = _local(services["master"]["command"], "locust") + [
        "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port), "--only-summary"]
    worker_cmd = _local(_replaced(services["worker"]["command"], {"master": "127.0.0.1"}), "locust") + [
        "--master-port", str(master_port)]
    image_dir, empty_dir = tmp_path / "image", tmp_path / "empty"
    shutil.copytree(ROOT / "workload", image_dir / "workload", ignore=shutil.ignore_patterns("__pycache__"))
    empty_dir.mkdir()
    stdin_cmd = _replaced(worker_cmd, {"workload/main.py": "-"})
    worker_env = _clean_env(**_interpolated(services["worker"]["environment"], shell),
                            TMPDIR=str(empty_dir))  # where `-f -` writes the downloaded locustfile

    processes = []
    try:
        processes.append(subprocess.Popen(target_cmd, env=_clean_env(), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        wait_until_up(f"{demo['admin_url']}/__stats")
        master = subprocess.Popen(master_cmd, cwd=ROOT, env=master_env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        processes.append(master)
        workers = [subprocess.Popen(worker_cmd, cwd=image_dir, env=worker_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL),
                   subprocess.Popen(stdin_cmd, cwd=empty_dir, env=worker_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)]
        processes += workers
        output, _ = master.communicate(timeout=RUN_TIMEOUT_S)
        assert master.returncode == 0, output.decode(errors="replace")[-3000:]
        for worker in workers:
            assert worker.wait(timeout=15) == 0
    finally:
        for process in reversed(processes):
            stop_process(process)

    run = json.loads((tmp_path / "results" / "compose" / "run.json").read_text())
    assert run["policy"]["name"] == "fresh" and run["complete"] is True
    assert {w["pid"] for w in run["workers"]} == {w.pid for w in workers}  # telemetry from both
    _check_totals(run, workers=2)
    assert run["sockets"]["time_wait_client"]["peak"] > 0  # fresh: the client closes first


@pytest.mark.slow
def test_processes_reach_the_demo_target_the_master_started(tmp_path):
    port = str(free_port())
    command = [sys.executable, "-m", "locust", "-f", "workload/main.py", "--headless", "--processes", "2",
               "--policy", "close", "-u", "4", "-r", "4", "-t", "4s", "--only-summary",
               "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
               "--master-host", "127.0.0.1", "--master-port", port,
               "--results-dir", str(tmp_path), "--run-id", "procs"]
    done = subprocess.run(command, cwd=ROOT, env=_clean_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "procs" / "run.json").read_text())
    _check_totals(run, workers=2)  # includes: the one demo target accepted every worker's connection


@pytest.mark.slow
def test_compare_with_workers_reports_per_worker_figures(tmp_path):
    command = [sys.executable, "-m", "workload.cli", "compare", "scenarios/demo.yaml", "--workers", "2",
               "--policies", "shared,fresh", "--users", "4", "--duration", "3s", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=_clean_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for policy in ("shared", "fresh"):
        _check_totals(json.loads((tmp_path / "runs" / policy / "run.json").read_text()), workers=2)
    markdown = (tmp_path / "report.md").read_text()
    assert "## Workers" in markdown
    assert "| shared | total (2 workers) |" in markdown and "| fresh | total (2 workers) |" in markdown
