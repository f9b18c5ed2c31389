"""Network-namespace lab: separate hosts on one machine, for tests of what each host sees.

A `Lab` makes a private hub namespace holding a bridge, and one namespace per named host,
each joined to the bridge by a veth pair and given `10.200.0.<n>/24` (`lo` up too).  Those
addresses exist only inside the lab's namespaces, so traffic between the hosts never leaves
the machine nor touches the root namespace.  Names carry the pid and a random tag, so parallel
runs never collide.  `close()` (also on failure, and at exit) kills what was started in the
hosts and deletes every namespace, which removes the veths with them.

Root only: `skip_reason()` says why a test cannot run elsewhere.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBNET = "10.200.0"
IP_TIMEOUT_S = 10.0


def skip_reason() -> str | None:
    """Why the lab cannot be built here (None: it can)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (.ci/run runs as root); run the suite as root to include these tests"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Host:
    """One namespace of the lab: its name and its address on the lab's subnet."""

    netns: str
    address: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def env(self, **extra: str) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("WORKLOAD_", "LOCUST_"))}
        return {**clean, "PYTHONPATH": str(ROOT), **extra}

    def run(self, argv: Sequence[str], timeout: float = 60, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), cwd=ROOT, env=self.env(**extra_env), capture_output=True,
                              text=True, timeout=timeout)

    def start(self, argv: Sequence[str], stdout: int | None = subprocess.DEVNULL, **extra_env: str,
              ) -> subprocess.Popen[str]:
        """A process in this host, stopped by the lab's close() if still running then."""
        proc = subprocess.Popen(self.command(argv), cwd=ROOT, env=self.env(**extra_env), stdout=stdout,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.processes.append(proc)
        return proc

    def time_wait(self, port: int, side: str) -> int:
        """TIME_WAIT sockets in this host per `ss`: `client` (to `port`) or `server` (from it)."""
        where = "dport" if side == "client" else "sport"
        out = self.run(["ss", "-Htan", "state", "time-wait", f"( {where} = :{port} )"], timeout=10).stdout
        return len([line for line in out.splitlines() if line.strip()])


class Lab:
    """Hosts on a private bridge; use as a context manager (or call close())."""

    def __init__(self, names: Sequence[str]) -> None:
        self.tag = f"wl{os.getpid()}-{secrets.token_hex(3)}"
        self.hub = f"{self.tag}-hub"
        self.hosts: dict[str, Host] = {}
        self._made: list[str] = []
        atexit.register(self.close)
        try:
            self._add_namespace(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            for index, name in enumerate(names, start=1):
                self._add_host(name, index)
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, netns: str) -> None:
        _ip("netns", "add", netns)
        self._made.append(netns)
        _ip("-n", netns, "link", "set", "lo", "up")

    def _add_host(self, name: str, index: int) -> None:
        netns, port = f"{self.tag}-{name}", f"p{index}"
        self._add_namespace(netns)
        _ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("-n", self.hub, "link", "set", port, "master", "br0")
        _ip("-n", self.hub, "link", "set", port, "up")
        address = f"{SUBNET}.{index}"
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        self.hosts[name] = Host(netns, address)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop what runs in the hosts (only processes of these namespaces), delete the namespaces."""
        for host in self.hosts.values():
            for proc in host.processes:
                _stop(proc)
        for netns in reversed(self._made):
            _kill_netns_pids(netns)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=IP_TIMEOUT_S)
        self._made.clear()
        atexit.unregister(self.close)


def _stop(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _kill_netns_pids(netns: str) -> None:
    """Anything still running inside one of the lab's own namespaces was started by this lab."""
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=IP_TIMEOUT_S).stdout
    for pid in (int(p) for p in out.split() if p.isdigit()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and subprocess.run(
            ["ip", "netns", "pids", netns], capture_output=True, text=True, timeout=IP_TIMEOUT_S).stdout.strip():
        time.sleep(0.1)
