"""Launcher for the demo target: run it as a child process and hold a `DemoTarget` handle.

`start_demo_target` starts ``python -m workload.demo`` in its own process group, reads the
one JSON line it announces and returns a frozen `DemoTarget` with its URLs, its CA file and
its pid.  The handle reads the server's counters from the admin listener (with urllib, to
keep this module light), stops the process, and travels to other processes as JSON in the
environment variable `DEMO_ENV_VAR`.

Only subprocess, select and urllib are used, so this works both in a plain process and in
a gevent-monkey-patched one (Locust): there the same calls simply become cooperative.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from workload.errors import TargetError

DEMO_ENV_VAR = "WORKLOAD_DEMO_TARGET"
STOP_TIMEOUT_S = 5.0
ADMIN_TIMEOUT_S = 5.0
STDERR_TAIL_CHARS = 2000
_POLL_S = 0.05

# Proxies never apply to the loopback admin port; an http_proxy variable must not reroute it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class DemoTarget:
    """A running demo target.  ``https_url``/``ca_path`` are None if it serves no TLS."""

    http_url: str
    https_url: str | None
    admin_url: str
    ca_path: str | None
    pid: int
    # Only set when this process started it: lets stop() reap the child (no zombie).
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def stats(self) -> dict[str, Any]:
        """The server's counters (see ``/__stats`` in `workload.demo.app`)."""
        return self._admin("GET", "/__stats")

    def reset_stats(self) -> dict[str, Any]:
        """Zero the cumulative counters; returns the stats after the reset."""
        return self._admin("POST", "/__stats/reset")

    def reset_stall(self) -> dict[str, Any]:
        """Disarm /stalling's one-off window: the next request arms a new one."""
        return self._admin("POST", "/__stall/reset")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL.  Idempotent."""
        if self._process is not None:
            _stop_child(self._process, timeout)
        else:
            _stop_pid(self.pid, timeout)

    def to_env(self) -> str:
        """JSON for `DEMO_ENV_VAR`, so another process can reuse this target."""
        fields = ("http_url", "https_url", "admin_url", "ca_path", "pid")
        return json.dumps({name: getattr(self, name) for name in fields})

    @classmethod
    def from_env(cls, value: str) -> DemoTarget:
        """Parse `to_env` output (or the server's own startup line)."""
        try:
            data = json.loads(value)
            if "http" in data:  # the startup line printed by `python -m workload.demo`
                data = _from_announcement(data)
            urls = (data["http_url"], data["https_url"], data["admin_url"])
            return cls(*urls, ca_path=data["ca_path"], pid=int(data["pid"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise TargetError(
                f"{DEMO_ENV_VAR} does not describe a demo target ({exc!r}): {value[:200]!r}",
                fix="set it from DemoTarget.to_env() or unset it",
            ) from exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _admin(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.admin_url + path, method=method)
        try:
            with _OPENER.open(request, timeout=ADMIN_TIMEOUT_S) as response:
                return dict(json.load(response))
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            raise TargetError(f"demo target admin {method} {self.admin_url}{path} failed: {exc}") from exc


def _from_announcement(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "http_url": data["http"],
        "https_url": data.get("https"),
        "admin_url": data["admin"],
        "ca_path": data.get("ca"),
        "pid": data["pid"],
    }


def _stop_child(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _stop_pid(pid: int, timeout: float) -> None:
    """Stop a target some other process started (we cannot wait() on it, so we poll)."""
    if pid <= 0:
        return  # unknown, e.g. a target in another container: os.kill(0 or -1) would hit our own processes
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # raises ProcessLookupError once it is gone
            time.sleep(_POLL_S)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _child_env() -> dict[str, str]:
    # The package may be used from a source checkout without being installed: make sure
    # the child can import the very same `workload` this process is running.
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The child's first stdout line, waiting at most ``timeout`` seconds."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    deadline = time.monotonic() + timeout
    buffer = b""
    while b"\n" not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TargetError(f"the demo target did not announce itself within {timeout:g} s")
        readable, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if not readable:
            continue
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:  # gevent may make the pipe non-blocking: spurious wake-up
            continue
        if not chunk:
            raise TargetError("the demo target exited before announcing itself")
        buffer += chunk
    return buffer.split(b"\n", 1)[0].decode("utf-8", "replace")


def _stderr_tail(stderr: IO[bytes]) -> str:
    stderr.seek(0)
    text = stderr.read().decode("utf-8", "replace").strip()
    return text[-STDERR_TAIL_CHARS:] or "(nothing on stderr)"


def start_demo_target(host: str = "127.0.0.1", timeout: float = 15.0, h2c: bool = False) -> DemoTarget:
    """Start the demo target as a child process (own process group) on free ports.

    Its https listener negotiates HTTP/2 by ALPN (HTTP/1.1 as the fallback); with `h2c` its http
    listener also accepts prior-knowledge cleartext HTTP/2."""
    command = [sys.executable, "-m", "workload.demo", "--host", host, "--port", "0", "--admin-port", "0",
               "--exit-with-parent", *(["--h2c"] if h2c else [])]
    # stderr goes to a file, not a pipe: nobody reads it while the target runs, and a full
    # pipe would block the server.  On failure its tail explains what went wrong.
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C aimed at our terminal group is ours to relay
                env=_child_env(),
            )
        except OSError as exc:
            raise TargetError(f"cannot run {' '.join(command)}: {exc}") from exc
        try:
            announcement = json.loads(_read_line(process, timeout))
            data = _from_announcement(announcement)
        except (TargetError, ValueError, KeyError, TypeError) as exc:
            _stop_child(process, STOP_TIMEOUT_S)
            raise TargetError(
                f"could not start the demo target ({' '.join(command)}): {exc}\n"
                f"exit code: {process.returncode}\nstderr tail:\n{_stderr_tail(stderr)}"
            ) from exc
        finally:
            assert process.stdout is not None
            process.stdout.close()  # the server writes nothing after its one line
    return DemoTarget(**data, _process=process)


def running_or_new() -> tuple[DemoTarget, bool]:
    """The demo target named by WORKLOAD_DEMO_TARGET (a parent's, shared by its runs), else a new
    one; and whether it is new (then the caller owns it and stops it)."""
    shared = os.environ.get(DEMO_ENV_VAR)
    return (DemoTarget.from_env(shared), False) if shared else (start_demo_target(), True)
