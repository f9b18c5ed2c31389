"""Cluster key: only peers holding the key can read the scenario a master sends its workers.

The worker bundle (`workload.engine.selection.Activation.bundle`) carries the resolved scenario:
`${ENV}` values, credentials, login and header secrets, target URLs.  Locust forwards it in
every spawn message, in clear, to any process that connects to the master port and speaks
its protocol (no workload code needed).  So:

* the master and the web UI bind to loopback unless told otherwise (`workload.main`);
* when `WORKLOAD_CLUSTER_KEY` is set, the whole bundle is sealed with Fernet (AES-128-CBC
  with HMAC-SHA256, from `cryptography`): a peer without the key gets an opaque token;
* a master listening beyond loopback refuses a scenario that carries secrets unless the
  key is set, and refuses a `--host` with a password (Locust sends `host` unsealed).

No locust here; one process-wide setting: where this process's master listens.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from workload.errors import WorkloadError

KEY_ENV = "WORKLOAD_CLUSTER_KEY"
SEALED_PREFIX = "workload-sealed:1:"  # a bundle that starts with this is a Fernet token
KEY_FIX = (f"generate one with `workload cluster-key` and pass it to the master and every worker "
           f"as {KEY_ENV}")
# Mapping keys whose values are secrets wherever they appear (headers, query, form fields, bodies).
SECRET_NAME = re.compile(r"pass|secret|token|auth|cookie|session|api[-_]?key|credential|(^|[-_])key$",
                         re.IGNORECASE)
USERINFO = re.compile(r"://[^/?#\s]*@")
ENV_REFERENCE = re.compile(r"\$\{[A-Za-z_]")
_LISTEN: dict[str, str | None] = {"host": None}  # set on a master: its --master-bind-host


class ClusterKeyError(WorkloadError):
    """The cluster cannot be run safely: a missing, malformed or wrong WORKLOAD_CLUSTER_KEY."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def is_loopback(host: str | None) -> bool:
    """Whether a bind address keeps the port on this machine (`*`, `0.0.0.0`, names: no)."""
    name = (host or "").strip().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def listen_on(host: str | None) -> None:
    """This process is a master listening on `host` (None: not a master)."""
    _LISTEN["host"] = host


def exposed() -> bool:
    host = _LISTEN["host"]
    return host is not None and not is_loopback(host)


def key_from_env(environ: Mapping[str, str] | None = None) -> Fernet | None:
    """The cluster key, or None when unset; a malformed key is an error, never ignored."""
    value = (os.environ if environ is None else environ).get(KEY_ENV, "").strip()
    if not value:
        return None
    try:
        return Fernet(value)
    except (ValueError, TypeError) as exc:
        raise ClusterKeyError(f"{KEY_ENV} is not a valid key (32 url-safe base64-encoded bytes)",
                              KEY_FIX) from exc


# -- does a scenario carry secrets? -------------------------------------------------------------
def _walk(value: Any) -> Iterator[tuple[str | None, Any]]:
    """Every (mapping key, value) pair in a document, depth first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield None, item
            yield from _walk(item)


def _uses_env(path: str) -> bool:
    try:
        return bool(ENV_REFERENCE.search(Path(path).read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return True  # cannot tell: assume it does


def secret_reasons(loaded: Any) -> list[str]:
    """Why a loaded scenario's bundle must not travel in clear (empty: it may)."""
    document, reasons = loaded.document, []
    if loaded.credentials or document.get("credentials"):
        reasons.append("credentials")
    if document.get("login"):
        reasons.append("login")
    if _uses_env(loaded.path):
        reasons.append("${ENV} values")
    pairs = list(_walk(document))
    if any(key and SECRET_NAME.search(key) and item not in (None, "", [], {}) for key, item in pairs):
        reasons.append("secret-named keys (headers, cookies, tokens, keys)")
    if any(isinstance(item, str) and USERINFO.search(item) for _key, item in pairs):
        reasons.append("user:password@ in a URL")
    return reasons


# -- the master: refuse, seal --------------------------------------------------------------------
def check(loaded: Any) -> None:
    """Raise when this master would hand `loaded`'s secrets to whoever connects to its port.
    (A `--host` with `user:password@`, which Locust would send to workers in clear, is refused
    for every run by the host check in `workload.scenario.targets`.)"""
    key = key_from_env()  # a malformed key fails here, on every kind of run
    where = _LISTEN["host"]
    if where is None:
        return  # not a master
    reasons = secret_reasons(loaded) if exposed() and key is None else []
    if reasons:
        raise ClusterKeyError(
            f"the master listens on {where} (beyond loopback) and scenario '{loaded.path}' carries secrets "
            f"({', '.join(reasons)}): without {KEY_ENV} any process that connects to the master port "
            "would receive them", f"{KEY_FIX}, or bind the master to loopback (--master-bind-host 127.0.0.1)")


def seal(bundle: str) -> str:
    """The bundle as workers receive it: sealed when a cluster key is set."""
    key = key_from_env()
    if key is None:
        return bundle
    return SEALED_PREFIX + key.encrypt(bundle.encode("utf-8")).decode("ascii")


# -- the worker: open --------------------------------------------------------------------------
def open_bundle(bundle: str) -> str:
    """A bundle's text on a worker; a sealed one needs the master's key.  A worker that has a key
    takes only sealed bundles: the key also proves the bundle comes from a master that holds it."""
    key = key_from_env()
    if not bundle.startswith(SEALED_PREFIX):
        if key is not None:
            raise ClusterKeyError(f"this worker has {KEY_ENV} set, but the master sent its scenario unencrypted "
                                  "(the master has no key)",
                                  f"set the same {KEY_ENV} on the master, or unset it on this worker")
        return bundle
    fix = f"set {KEY_ENV} on this worker to the master's key (the one `workload cluster-key` printed)"
    if key is None:
        raise ClusterKeyError(f"the master sent an encrypted scenario and {KEY_ENV} is not set on this worker",
                              fix)
    try:
        return key.decrypt(bundle[len(SEALED_PREFIX):].encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise ClusterKeyError(f"{KEY_ENV} on this worker does not open the master's scenario "
                              "(it is not the master's key)", fix) from exc
