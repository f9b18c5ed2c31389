"""TLS files: a scenario's CA bundle and client certificate proven loadable at validation.

A file that exists is not enough: OpenSSL must accept it, or every request of the run fails
with the same handshake error.  Each file is first checked to be a regular file of bounded
size (a FIFO or /dev/zero would hang the load), then loaded with the same `ssl` calls
requests makes (`load_verify_locations`, `load_cert_chain`).  An encrypted key gets an empty
password instead of OpenSSL's interactive prompt, which would hang a CI job.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from workload.errors import Problem
from workload.scenario.source import Source

MAX_TLS_FILE_BYTES = 16 * 1024 * 1024  # system CA bundles are ~0.3 MB
READ_FIX = "give a PEM file (relative paths are relative to the scenario file)"
CA_FIX = "give a PEM CA bundle ('-----BEGIN CERTIFICATE-----' blocks), a directory of hashed CA files, " \
         "or 'verify: true' for the default trust store"
CERT_FIX = "give PEM files: 'cert: both.pem' (certificate and unencrypted key in one file) or " \
           "'cert: [client.crt, client.key]'; the key must belong to the certificate"


def tls_file(path: str, base: Path) -> Path:
    """A CA bundle or certificate path: as written, else relative to the scenario file."""
    given = Path(path).expanduser()
    return given if given.is_absolute() or given.exists() else base / given


def unreadable(path: Path, allow_dir: bool = False) -> str | None:
    """Why `path` cannot be read as a TLS file, or None."""
    if path.is_dir():
        return None if allow_dir else "is a directory, not a file"
    if not path.is_file():
        return "is not a regular file"
    if path.stat().st_size > MAX_TLS_FILE_BYTES:
        return f"is larger than {MAX_TLS_FILE_BYTES // (1024 * 1024)} MiB: not a certificate file"
    return None


def load_problems(verify: Any, cert: Any, base: Path, source: Source) -> list[Problem]:
    problems = []
    if isinstance(verify, str):
        ca = tls_file(verify, base)
        try:
            _context().load_verify_locations(capath=str(ca)) if ca.is_dir() else \
                _context().load_verify_locations(cafile=str(ca))
        except (ssl.SSLError, OSError) as exc:
            problems.append(source.problem(("target", "verify"), f"cannot load '{verify}' as CA certificates: "
                                           f"{_reason(exc)}", CA_FIX))
    files = [cert] if isinstance(cert, str) else list(cert) if isinstance(cert, list) and len(cert) == 2 else []
    if files:
        paths = [str(tls_file(f, base)) for f in files]
        try:
            keyfile = paths[1] if len(paths) > 1 else None  # None: the key is in the certificate's file
            _context().load_cert_chain(paths[0], keyfile, password=lambda: b"")
        except (ssl.SSLError, OSError) as exc:
            shown = " and ".join(f"'{f}'" for f in files)
            problems.append(source.problem(("target", "cert"), f"cannot load the client certificate from {shown}: "
                                           f"{_reason(exc)}", CERT_FIX))
    return problems


def _context() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason.replace("_", " ").lower()
    if isinstance(exc, ssl.SSLError):  # "[SSL] PEM lib (_ssl.c:3905)": OpenSSL could not parse it
        return "not PEM, or the key is missing, encrypted or not PEM"
    return getattr(exc, "strerror", None) or str(exc)
