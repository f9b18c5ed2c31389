"""Two hosts for real: the target in one network namespace, the generator in another (see
`tests.netns`).  The generator's socket table then holds only the client's sockets, as in
production: the report must say the server side is not observable (never a 0 as if measured),
count the client's TIME_WAIT exactly (against `ss` in the generator's namespace), and show who
closes first (`close`: the server, `fresh`: the client) as each side's own table sees it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Host, Lab

PORT = 8080  # the target namespace's own port space: no collision with anything else


def start_target(host: Host, folder: Path, *extra: str) -> str:
    """The demo target listening on `host`'s lab address; returns its base URL."""
    ready = folder / f"ready-{host.netns}.json"
    proc = host.start([sys.executable, "-m", "workload.demo", "--host", host.address, "--allow-external-bind",
                       "--port", str(PORT), "--no-tls", "--ready-file", str(ready), *extra])
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text().endswith("\n")):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, "the demo target did not start in its namespace"
        time.sleep(0.1)
    return f"http://{host.address}:{PORT}"


def scenario(folder: Path, url: str, rps: int = 40) -> Path:
    path = folder / "two-hosts.yaml"
    path.write_text(textwrap.dedent(f"""
        name: two-hosts
        target: {url}
        endpoints: [{{name: home, path: /}}]
        policies: {{close: {{}}, fresh: {{}}}}
        load: {{users: 2, spawn_rate: 2, duration: 2s, rps: {rps}}}
    """))
    return path


def runs(out: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads((p / "run.json").read_text()) for p in sorted((out / "runs").iterdir()) if p.is_dir()}


def table(markdown: str, heading: str) -> dict[str, dict[str, str]]:
    """A report.md table under `## heading`, as {policy: {column: cell}}."""
    lines = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0].strip().splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    header, body = rows[0], rows[2:]
    return {row[0]: dict(zip(header, row, strict=True)) for row in body}


@pytest.mark.slow
def test_remote_target_server_side_not_observable_client_time_wait_exact_and_who_closes_first(tmp_path, netns_lab):
    lab: Lab = netns_lab("target", "gen")
    target, gen = lab["target"], lab["gen"]
    url = start_target(target, tmp_path)
    out = tmp_path / "cmp"
    done = gen.run([sys.executable, "-m", "workload.cli", "compare", str(scenario(tmp_path, url)),
                    "--policies", "close,fresh", "--out", str(out)], timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = runs(out)
    close, fresh = got["close"], got["fresh"]
    # What each host's own table holds, from `ss` (TIME_WAIT lasts 60 s: nothing expired yet).
    client_tw, server_tw = gen.time_wait(PORT, "client"), target.time_wait(PORT, "server")
    assert gen.time_wait(PORT, "server") == 0 and target.time_wait(PORT, "client") == 0  # two tables

    for run in (close, fresh):
        sockets = run["sockets"]
        assert run["target"]["local"] is False and sockets["server_side_observable"] is False
        for key in ("time_wait_server", "established_server"):
            assert sockets[key] == {"peak": None, "end": None}  # unknown, never 0
        assert run["stats"]["total"]["requests"] > 0 and run["failures_by_cause"] == {}
    # Client-side TIME_WAIT: each run counts its own (the later run's baseline excludes the earlier
    # one's), together they are what `ss` sees in the generator's namespace; short only by a close
    # still in flight (FIN_WAIT) at a run's final sample, at most one per user and run.
    counted = close["sockets"]["time_wait_client"]["end"] + fresh["sockets"]["time_wait_client"]["end"]
    assert 0 <= client_tw - counted <= 4, (counted, client_tw)
    for run in (close, fresh):  # users stopped mid-request left no connection behind the final sample
        assert run["sockets"]["established_client"]["end"] == 0
    # Who closes first, as each side sees it: `fresh` closes every connection from the client (give
    # or take a connect that a stopping user left unfinished, at most one per user) ...
    assert abs(fresh["sockets"]["time_wait_client"]["end"] - fresh["connections"]["tcp_connects"]) <= 2
    # ... `close` leaves it to the server: the target's table holds the rest of close's connections
    # (a client that closes before the server's FIN arrives holds a few itself), fresh adds none there.
    close_connects = close["connections"]["tcp_connects"]
    assert abs(server_tw - (close_connects - close["sockets"]["time_wait_client"]["end"])) <= 2
    assert server_tw > close_connects / 2

    report = (out / "report.md").read_text()
    sockets_table, connections_table = table(report, "Sockets"), table(report, "Connections")
    for policy in ("close", "fresh"):
        row = sockets_table[policy]
        assert row["TIME_WAIT server peak"] == row["TIME_WAIT server end"] == "not observable"
        assert row["TIME_WAIT client end"] == str(got[policy]["sockets"]["time_wait_client"]["end"])
        assert connections_table[policy]["server accepted"] == "not observable"
    assert "the target is remote, so server-side TIME_WAIT is not observable" in report


MASTER_PORT = 5557  # the master namespace's own port space


@pytest.mark.slow
def test_master_and_two_workers_on_three_hosts_count_time_wait_per_host_and_connections_summed(tmp_path, netns_lab):
    """A master and two workers, each in its own namespace (three socket tables), against a target
    in a fourth: TIME_WAIT counted per host (each worker's table exactly, per `ss`), summed over the
    two hosts; connections the sum of both workers'."""
    lab: Lab = netns_lab("target", "master", "w1", "w2")
    url = start_target(lab["target"], tmp_path)
    main = str(Path(__file__).resolve().parents[2] / "workload" / "main.py")
    master = lab["master"].start(
        [sys.executable, "-m", "locust", "-f", main, "--master", "--headless", "--scenario",
         str(scenario(tmp_path, url)), "--policy", "fresh", "-u", "4", "-r", "4", "-t", "3s",
         "--master-bind-host", lab["master"].address, "--master-bind-port", str(MASTER_PORT),
         "--expect-workers", "2", "--results-dir", str(tmp_path / "results"), "--run-id", "cluster"])
    worker = [sys.executable, "-m", "locust", "-f", main, "--worker", "--master-host", lab["master"].address,
              "--master-port", str(MASTER_PORT)]
    workers = [lab[name].start(worker) for name in ("w1", "w2")]
    assert master.wait(timeout=120) == 0, master.stderr.read()[-3000:] if master.stderr else ""
    assert [proc.wait(timeout=30) for proc in workers] == [0, 0]
    run = json.loads((tmp_path / "results" / "cluster" / "run.json").read_text())
    entries = {entry["netns"]: entry for entry in run["workers"]}
    assert set(entries) == {_netns_id(lab[name].netns) for name in ("w1", "w2")}
    assert len(entries) == 2 and all(entry["final"] and entry["requests"] > 0 for entry in entries.values())
    sockets = run["sockets"]
    assert sockets["aggregation"] == "per host" and sockets["hosts"] == 2 and sockets["source"] == "netlink"
    # Each worker sees its own host's table only: never more than `ss` counts there (the other host's
    # sockets would make it more).  It may count fewer: its final sample is taken as its users stop,
    # and a connection closed just before is still in FIN_WAIT until the server's FIN arrives.
    per_host = {lab[name].netns: lab[name].time_wait(PORT, "client") for name in ("w1", "w2")}
    ends = {netns: entries[_netns_id(netns)]["sockets"]["time_wait_client"]["end"] for netns in per_host}
    assert all(0 < ends[netns] <= per_host[netns] for netns in per_host), (ends, per_host)
    assert sockets["time_wait_client"]["end"] == sum(ends.values())  # two tables: summed, not the larger
    # Users stopped mid-request left no connection open behind the worker's final sample.
    assert [e["sockets"]["established_client"]["end"] for e in entries.values()] == [0, 0]
    assert sockets["server_side_observable"] is False and sockets["time_wait_server"] == {"peak": None, "end": None}
    connects = [e["connections"]["tcp_connects"] for e in entries.values()]
    assert run["connections"]["tcp_connects"] == sum(connects)
    assert lab["master"].time_wait(PORT, "client") == 0  # the master sends no requests


def _netns_id(name: str) -> str:
    """A named namespace as a worker reports it (the link text of /proc/self/ns/net)."""
    return "net:[" + str(Path(f"/run/netns/{name}").stat().st_ino) + "]"


AGENT_PORT = 9107
AGENT_KEY = "two-hosts-agent-key-0123456789"


@pytest.mark.slow
def test_a_server_agent_on_the_target_host_makes_the_server_side_measured(tmp_path, netns_lab):
    """`workload agent` on the target's host, bound to its lab address: a run declaring it as
    `target.agent` gets the server's TIME_WAIT from the server's own table, equal to `ss` there."""
    lab: Lab = netns_lab("target", "gen")
    target, gen = lab["target"], lab["gen"]
    url = start_target(target, tmp_path)
    agent = target.start([sys.executable, "-m", "workload.cli", "agent", "--port", str(PORT), "--bind",
                          target.address, "--listen", str(AGENT_PORT)], stdout=subprocess.PIPE,
                         WORKLOAD_AGENT_KEY=AGENT_KEY)
    assert agent.stdout is not None and "serving the server side of port(s) 8080" in agent.stdout.readline()
    path = scenario(tmp_path, url)
    path.write_text(path.read_text().replace(f"target: {url}",
                                             f"target: {{host: '{url}', agent: 'http://{target.address}:{AGENT_PORT}'}}"))
    out = tmp_path / "cmp"
    done = gen.run([sys.executable, "-m", "workload.cli", "compare", str(path), "--policies", "close",
                    "--out", str(out)], timeout=120, WORKLOAD_AGENT_KEY=AGENT_KEY)
    assert done.returncode == 0, done.stderr[-3000:]
    sockets = runs(out)["close"]["sockets"]
    assert "server_side_error" not in sockets, sockets["server_side_error"]
    assert sockets["server_side"] == "agent" and sockets["server_side_observable"] is True
    assert sockets["server_agent"] == f"http://{target.address}:{AGENT_PORT}"
    server_tw = target.time_wait(PORT, "server")
    assert sockets["time_wait_server"]["end"] == server_tw > 0  # the server's own table, via the agent
    assert sockets["time_wait_client"]["end"] == gen.time_wait(PORT, "client")  # the client's, as before
    row = table((out / "report.md").read_text(), "Sockets")["close"]
    assert row["TIME_WAIT server end"] == str(server_tw)
