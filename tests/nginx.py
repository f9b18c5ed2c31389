"""Debian's nginx as an independent server for tests: its config, its TLS files and its life.

The ground-truth tests hold the tool's figures against nginx's own (`stub_status` accepts, the
`$ssl_session_reused` log).  nginx is installed by `.ci/run`; where it is missing the test is
skipped with the reason.  Each test runs its own foreground nginx on free loopback ports, with
every temp file in the test's folder.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
SKIP_REASON = "nginx is not installed: apt-get install nginx-light (done by .ci/run)"
START_TIMEOUT_S = 10.0
_HEAD = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
"""


def config(work: Path, http: str) -> str:
    """A whole nginx.conf: one foreground process with its files in `work`, and `http`, the
    lines of its http block (servers, logs, keep-alive)."""
    return _HEAD.format(dir=work) + http.rstrip() + "\n}\n"


def tls_files(work: Path) -> Path:
    """A test CA's certificate for 127.0.0.1 as `work`/cert.pem and key.pem; the CA file's path."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    leaf.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(work / "key.pem"))
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    return work / "ca.pem"


@contextlib.contextmanager
def running(work: Path, conf: str, ready: Callable[[], object]) -> Iterator[None]:
    """nginx on `conf` (a whole nginx.conf) until the block ends; up once `ready()` returns
    without an OSError (e.g. a first request answered)."""
    if NGINX is None:
        pytest.skip(SKIP_REASON)
    (work / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([NGINX, "-c", str(work / "nginx.conf"), "-p", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_up(proc, ready)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_until_up(proc: subprocess.Popen[bytes], ready: Callable[[], object]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            ready()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail("nginx did not start")
