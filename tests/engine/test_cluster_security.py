"""workload.engine.clusterkey and the cluster as an outsider sees it: loopback binds, a sealed bundle,
a rogue process speaking Locust's worker protocol, and real workers with the wrong key.

Every process here listens and connects on 127.0.0.1 only.  The master that must refuse to
listen beyond loopback is asked for 0.0.0.0 and refuses before Locust binds anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gevent
import pytest
from cryptography.fernet import Fernet

from tests.helpers import free_port, listening_addresses, stop_process
from workload.engine import clusterkey
from workload.engine.selection import activate, activate_bundle
from workload.errors import ScenarioError
from workload.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
MAIN = str(ROOT / "workload" / "main.py")
API_KEY, PASSWORD, COOKIE = "planted-api-key-7f3a9c", "planted-password-51be", "planted-cookie-c0ffee"
PLANTED = (API_KEY, PASSWORD, COOKIE)
NO_KEY_FIX = ("    fix: set WORKLOAD_CLUSTER_KEY on this worker to the master's key "
              "(the one `workload cluster-key` printed)")
UNSEALED = ("error: this worker has WORKLOAD_CLUSTER_KEY set, but the master sent its scenario unencrypted "
            "(the master has no key)\n    fix: set the same WORKLOAD_CLUSTER_KEY on the master, or unset it on this "
            "worker")

ROGUE = textwrap.dedent("""
    # A peer with no workload code: Locust's own RPC client and message type, as its tests use them.
    import sys, time
    import gevent
    from locust import __version__
    from locust.rpc import Message, zmqrpc

    port, out = int(sys.argv[1]), sys.argv[2]
    client = zmqrpc.Client("127.0.0.1", port, "rogue")
    client.send(Message("client_ready", __version__, "rogue"))
    received, deadline = [], time.monotonic() + 40
    while time.monotonic() < deadline:
        raw = None
        with gevent.Timeout(1, False):
            raw = client.socket.recv()
        if raw is None:
            client.send(Message("heartbeat", {"state": "ready", "current_cpu_usage": 0,
                                              "current_memory_usage": 0}, "rogue"))
            continue
        received.append(raw)
        if Message.unserialize(raw).type == "spawn":
            break
    client.send(Message("quit", None, "rogue"))
    open(out, "wb").write(b"\\n--\\n".join(received))
    sys.exit(0 if received and Message.unserialize(received[-1]).type == "spawn" else 1)
""")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLOAD_", "LOCUST_"))}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _secret_scenario(folder: Path, target_url: str) -> Path:
    path = folder / "secret.yaml"
    path.write_text(textwrap.dedent(f"""
        name: secret
        target:
          host: {target_url}
          headers: {{X-Api-Key: "${{API_KEY}}"}}
          cookies: [{{name: sid, value: {COOKIE}, domain: 127.0.0.1}}]
        credentials:
          inline: [{{username: agent, password: {PASSWORD}}}]
        login:
          form: {{path: /login, fields: {{username: "{{{{ user.username }}}}", password: "{{{{ user.password }}}}"}}}}
        endpoints:
          - {{name: me, path: /api/me}}
        policies: {{shared: {{}}}}
        load: {{users: 1, spawn_rate: 1, duration: 3s}}
    """))
    return path


@pytest.fixture
def listening_on():
    """Pretend this process is a master bound to the given address (reset afterwards)."""
    yield clusterkey.listen_on
    clusterkey.listen_on(None)


# -- pure logic --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("*", False), ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.10", False), ("master", False),
])
def test_which_bind_addresses_are_loopback(host, loopback):
    assert clusterkey.is_loopback(host) is loopback


def test_secrets_are_found_in_credentials_env_headers_cookies_and_userinfo(tmp_path):
    assert clusterkey.secret_reasons(load_scenario(ROOT / "scenarios" / "demo.yaml"))[:2] == ["credentials", "login"]
    plain = tmp_path / "plain.yaml"
    plain.write_text("target: http://127.0.0.1:9\nendpoints: [{path: /}]\npolicies: {shared: {}}\n")
    assert clusterkey.secret_reasons(load_scenario(plain)) == []
    header = tmp_path / "header.yaml"
    header.write_text("target: {host: 'http://127.0.0.1:9', headers: {Authorization: Bearer x}}\n"
                      "endpoints: [{path: /}]\npolicies: {shared: {}}\n")
    assert clusterkey.secret_reasons(load_scenario(header)) == ["secret-named keys (headers, cookies, tokens, keys)"]
    env = tmp_path / "env.yaml"
    env.write_text("target: http://127.0.0.1:9\nendpoints: [{path: '/x?q=${NOT_A_SECRET_NAME:-1}'}]\n"
                   "policies: {shared: {}}\n")
    assert clusterkey.secret_reasons(load_scenario(env)) == ["${ENV} values"]


def test_a_sealed_bundle_opens_only_with_the_masters_key(tmp_path, monkeypatch):
    scenario = _secret_scenario(tmp_path, "http://127.0.0.1:9")
    monkeypatch.setenv("API_KEY", API_KEY)
    key = clusterkey.generate_key()
    monkeypatch.setenv(clusterkey.KEY_ENV, key)
    bundle = activate(str(scenario), None).bundle()
    assert bundle.startswith(clusterkey.SEALED_PREFIX)
    assert not any(secret in bundle for secret in PLANTED)
    assert activate_bundle(bundle).loaded.credentials[0]["password"] == PASSWORD  # the right key opens it

    monkeypatch.setenv(clusterkey.KEY_ENV, clusterkey.generate_key())
    with pytest.raises(clusterkey.ClusterKeyError) as wrong:
        activate_bundle(bundle)
    assert str(wrong.value) == ("error: WORKLOAD_CLUSTER_KEY on this worker does not open the master's scenario "
                                "(it is not the master's key)\n" + NO_KEY_FIX)
    monkeypatch.delenv(clusterkey.KEY_ENV)
    with pytest.raises(clusterkey.ClusterKeyError) as missing:
        activate_bundle(bundle)
    assert str(missing.value) == ("error: the master sent an encrypted scenario and WORKLOAD_CLUSTER_KEY is not "
                                  "set on this worker\n" + NO_KEY_FIX)
    plain = activate(str(scenario), None).bundle()
    assert json.loads(plain)["credentials"][0]["password"] == PASSWORD  # no key: in clear
    monkeypatch.setenv(clusterkey.KEY_ENV, key)
    with pytest.raises(clusterkey.ClusterKeyError) as unsealed:  # a worker with a key takes only sealed ones
        activate_bundle(plain)
    assert str(unsealed.value) == UNSEALED


def test_a_malformed_key_is_an_error_not_ignored(monkeypatch):
    monkeypatch.setenv(clusterkey.KEY_ENV, "not-a-key")
    with pytest.raises(clusterkey.ClusterKeyError) as bad:
        clusterkey.seal("{}")
    assert str(bad.value) == ("error: WORKLOAD_CLUSTER_KEY is not a valid key (32 url-safe base64-encoded bytes)\n"
                              "    fix: generate one with `workload cluster-key` and pass it to the master and "
                              "every worker as WORKLOAD_CLUSTER_KEY")


def test_beyond_loopback_secrets_need_the_key_and_host_passwords_are_refused(tmp_path, monkeypatch, listening_on):
    monkeypatch.setenv("API_KEY", API_KEY)
    monkeypatch.delenv(clusterkey.KEY_ENV, raising=False)
    scenario = _secret_scenario(tmp_path, "http://127.0.0.1:9")
    listening_on("127.0.0.1")
    activate(str(scenario), None)  # loopback: no key needed
    listening_on("0.0.0.0")
    with pytest.raises(clusterkey.ClusterKeyError, match=r"listens on 0\.0\.0\.0 \(beyond loopback\)"):
        activate(str(scenario), None)
    monkeypatch.setenv(clusterkey.KEY_ENV, clusterkey.generate_key())
    activate(str(scenario), None)  # with the key: sealed, so allowed
    # Locust sends the host to workers in clear: a password in it is refused on every run.
    for listening in ("0.0.0.0", "127.0.0.1", None):
        listening_on(listening)
        with pytest.raises(ScenarioError, match=r"the URL carries a user name or password"):
            activate(str(scenario), None, "http://agent:pw@127.0.0.1:9")


def test_leaving_the_cluster_says_why_tells_the_master_and_sets_exit_code_2(capsys):
    from locust.env import Environment

    from workload.engine.clusterjoin import LEFT, leave_cluster

    env = Environment(user_classes=[])
    runner = env.create_local_runner()  # its send_message calls the local listener, as a master's would
    told: list[str] = []
    assert len(runner.greenlet) == 1  # Locust's own greenlet, until the runner quits
    runner.register_message(LEFT, lambda environment, msg, **_kw: told.append(msg.data))
    leave_cluster(env, clusterkey.ClusterKeyError("no key here", "set one"))
    gevent.sleep(0.1)  # the runner's quit runs in its own greenlet
    assert env.process_exit_code == 2 and told == ["error: no key here\n    fix: set one"]
    assert capsys.readouterr().err == "workload: error: no key here\n    fix: set one\n"
    assert len(runner.greenlet) == 0


@pytest.mark.slow
def test_cluster_key_verb_prints_a_fresh_fernet_key():
    keys = [subprocess.run([sys.executable, "-m", "workload.cli", "cluster-key"], cwd=ROOT, env=_clean_env(),
                           capture_output=True, text=True, timeout=30).stdout.strip() for _ in range(2)]
    assert keys[0] != keys[1]
    assert Fernet(keys[0]).decrypt(Fernet(keys[0]).encrypt(b"x")) == b"x"


def test_compare_workers_bind_the_master_to_loopback(tmp_path):
    from workload.commands.compare import CompareRequest, locust_command, plan_of

    command = locust_command(plan_of(CompareRequest(str(ROOT / "scenarios" / "demo.yaml"), workers=2,
                                                    out=str(tmp_path))), "shared")
    assert command[command.index("--master-bind-host") + 1] == "127.0.0.1"


# -- real processes ----------------------------------------------------------------------------------
def _master(scenario: Path, port: int, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", MAIN, "--master", "--headless", "--scenario", str(scenario),
         "--master-bind-port", str(port), "-u", "1", "-r", "1", "-t", "20s", "--expect-workers", "1",
         "--results-dir", str(scenario.parent / "results"), *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _rogue(port: int, out: Path) -> int:
    return subprocess.run([sys.executable, "-c", ROGUE, str(port), str(out)], cwd=ROOT, env=_clean_env(),
                          timeout=60).returncode


@pytest.mark.slow
def test_master_beyond_loopback_without_key_refuses_before_binding(tmp_path):
    scenario = _secret_scenario(tmp_path, "http://127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", MAIN, "--master", "--headless", "--scenario", str(scenario),
         "--master-bind-host", "0.0.0.0", "--master-bind-port", str(free_port())],
        cwd=ROOT, env=_clean_env(API_KEY=API_KEY), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "Starting Locust" not in done.stderr  # refused at import
    assert done.stderr.strip() == (
        f"workload: error: the master listens on 0.0.0.0 (beyond loopback) and scenario '{scenario}' carries "
        "secrets (credentials, login, ${ENV} values, secret-named keys (headers, cookies, tokens, keys)): without "
        "WORKLOAD_CLUSTER_KEY any process that connects to the master port would receive them\n"
        "    fix: generate one with `workload cluster-key` and pass it to the master and every worker as "
        "WORKLOAD_CLUSTER_KEY, or bind the master to loopback (--master-bind-host 127.0.0.1)")


@pytest.mark.slow
@pytest.mark.parametrize("sealed", [True, False])
def test_a_rogue_worker_receives_no_secret_bytes(tmp_path, demo_target, sealed):
    """With the cluster key the rogue gets the spawn message and no planted secret; the control
    run without a key shows the same rogue would otherwise read every one of them."""
    scenario = _secret_scenario(tmp_path, demo_target.http_url)
    port = free_port()
    key = {clusterkey.KEY_ENV: clusterkey.generate_key()} if sealed else {}
    master = _master(scenario, port, _clean_env(API_KEY=API_KEY, **key))
    try:
        assert _rogue(port, tmp_path / "received.bin") == 0, "the rogue never got a spawn message"
        # `--master` with no --master-bind-host: this machine only (Locust's own default is every interface).
        assert listening_addresses(master.pid, port) == [f"127.0.0.1:{port}"]
    finally:
        stop_process(master)
    received = (tmp_path / "received.bin").read_bytes()
    assert b"workload_bundle" in received  # the spawn message's parsed options did arrive
    found = [secret for secret in PLANTED if secret.encode() in received]
    if sealed:
        assert found == [] and clusterkey.SEALED_PREFIX.encode() in received
    else:
        assert found == list(PLANTED)


def _workers_leave(tmp_path: Path, target_url: str, master_key: dict[str, str],
                   workers: dict[str, dict[str, str]]) -> dict[str, str]:
    """Start a master and workers with these keys; every worker must leave with exit 2 before any
    run.  Returns each worker's stderr."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    scenario = _secret_scenario(tmp_path, target_url)
    port = free_port()
    procs: dict[str, subprocess.Popen[str]] = {}
    master = _master(scenario, port, _clean_env(API_KEY=API_KEY, **master_key), "--expect-workers", str(len(workers)))
    worker_cmd = [sys.executable, "-m", "locust", "-f", MAIN, "--worker", "--master-port", str(port)]
    try:
        procs = {name: subprocess.Popen(worker_cmd, cwd=tmp_path, env=_clean_env(**env), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True) for name, env in workers.items()}
        errors = {name: proc.communicate(timeout=60)[1] for name, proc in procs.items()}
        assert {name: p.returncode for name, p in procs.items()} == {name: 2 for name in workers}
    finally:
        for proc in procs.values():
            stop_process(proc)
        stop_process(master)
    master_log = master.stderr.read() if master.stderr else ""
    assert master_log.count("left the cluster: error: ") == len(workers)  # the master says who left, and why
    assert "Sending spawn jobs" not in master_log  # they left when they connected, before any run
    for error in errors.values():
        assert "Traceback" not in error and "KeyError" not in error
    return errors


@pytest.mark.slow
def test_workers_without_the_right_key_stop_with_a_clear_message(tmp_path, demo_target):
    keys = {clusterkey.KEY_ENV: clusterkey.generate_key()}, {"wrong": {clusterkey.KEY_ENV: clusterkey.generate_key()},
                                                              "none": {}}
    errors = _workers_leave(tmp_path, demo_target.http_url, *keys)
    for name, what in (("wrong", "WORKLOAD_CLUSTER_KEY on this worker does not open the master's scenario "
                                 "(it is not the master's key)"),
                       ("none", "the master sent an encrypted scenario and WORKLOAD_CLUSTER_KEY is not set on "
                                "this worker")):
        assert f"workload: error: {what}\n{NO_KEY_FIX}\n" in errors[name]


def test_a_waiting_master_forgets_a_worker_that_left_and_a_running_one_does_not():
    from locust.runners import STATE_INIT, STATE_RUNNING

    from workload.engine.clusterjoin import STATE_WAITING, forget_waiting_worker

    class Runner:  # the two attributes read, as a MasterRunner has them
        def __init__(self, state: str) -> None:
            self.state, self.clients = state, {"a": object(), "b": object()}

    waiting, running = Runner(STATE_INIT), Runner(STATE_RUNNING)
    for runner in (waiting, running):
        forget_waiting_worker(runner, "a")  # type: ignore[arg-type]
        forget_waiting_worker(runner, "unknown")  # type: ignore[arg-type]
    assert STATE_WAITING == STATE_INIT and list(waiting.clients) == ["b"] and list(running.clients) == ["a", "b"]


@pytest.mark.slow
def test_workers_that_connect_after_one_left_are_taken_in(tmp_path, demo_target):
    """Worker A (wrong key) joins and leaves while the master waits for two; B and C connect only
    after A has exited.  Locust ends a headless master when its last worker quits, even one still
    waiting for workers (its listener dies, B and C would wait forever): a worker that leaves the
    cluster is forgotten by the master before its quit arrives, so the run still happens."""
    scenario = _secret_scenario(tmp_path, demo_target.http_url)
    port, key = free_port(), clusterkey.generate_key()
    env = _clean_env(API_KEY=API_KEY, **{clusterkey.KEY_ENV: key})
    master = _master(scenario, port, env, "--expect-workers", "2", "-t", "2s")
    worker_cmd = [sys.executable, "-m", "locust", "-f", MAIN, "--worker", "--master-port", str(port)]
    late: list[subprocess.Popen[str]] = []
    try:
        wrong = subprocess.run(worker_cmd, cwd=tmp_path, env={**env, clusterkey.KEY_ENV: clusterkey.generate_key()},
                               capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 2, wrong.stderr[-2000:]
        late = [subprocess.Popen(worker_cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        assert [proc.wait(timeout=60) for proc in late] == [0, 0]
        master.wait(timeout=30)
    finally:
        for proc in late:
            stop_process(proc)
        stop_process(master)
    master_log = master.stderr.read() if master.stderr else ""
    assert master_log.count("left the cluster: error: ") == 1
    assert master_log.count("reported as ready") == 3, master_log[-3000:]  # A, then B and C
    assert "Sending spawn jobs" in master_log and "The last worker quit" not in master_log.split("Sending")[0]


@pytest.mark.slow
def test_a_worker_with_a_key_leaves_a_master_without_one(tmp_path, demo_target):
    errors = _workers_leave(tmp_path, demo_target.http_url, {},
                            {"keyed": {clusterkey.KEY_ENV: clusterkey.generate_key()}})
    assert f"workload: {UNSEALED}\n" in errors["keyed"]


# -- loopback binds --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_processes_master_listens_on_loopback_only(tmp_path, demo_target):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", MAIN, "--headless", "--processes", "2", "--policy", "shared",
         "-u", "2", "-r", "2", "-t", "6s", "--master-bind-port", str(port), "--master-port", str(port),
         "--results-dir", str(tmp_path), "--run-id", "procs", "--only-summary"],
        cwd=ROOT, env=_clean_env(WORKLOAD_DEMO_TARGET=demo_target.to_env()), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        addresses = listening_addresses(proc.pid, port)
        assert f"127.0.0.1:{port}" in addresses
        assert all(a.startswith("127.0.0.1:") for a in addresses), addresses
        assert proc.wait(timeout=60) == 0, proc.stderr.read()[-2000:] if proc.stderr else ""
    finally:
        stop_process(proc)
    assert json.loads((tmp_path / "procs" / "run.json").read_text())["stats"]["total"]["requests"] > 0
