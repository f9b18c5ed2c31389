"""Target URLs: a base URL checked completely before any request, without echoing secrets.

A target is `http(s)://host[:port]` and nothing else: no `user:password@` (credentials go
under `login: {basic: ...}`, where they are redacted), no path, query or fragment, a port
from 1 to 65535 and a host that is an IP address or a valid DNS name.  Messages show the URL
only up to its host, so a `${SECRET}` in a query or a password is never printed.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

SCHEMES = ("http", "https")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_PORT = re.compile(r"[0-9]{1,5}")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")
FULL_URL_FIX = "write a full URL such as 'http://127.0.0.1:8080' or 'demo'"
USERINFO_FIX = "remove 'user:password@' and log in with 'login: {basic: {username: ..., password: ...}}' " \
               "(take the password from the environment: password: ${PASSWORD})"


def shown(url: str) -> str:
    """The URL as a message may show it: no userinfo, query or fragment, at most 80 characters."""
    head = url.split("?", 1)[0].split("#", 1)[0]
    scheme, sep, rest = head.partition("://")
    if "@" in rest.split("/", 1)[0]:
        rest = "…@" + rest.split("@", 1)[1]
    text = _UNSAFE.sub(lambda m: repr(m.group())[1:-1], scheme + sep + rest if sep else head)
    return text if len(text) <= 80 else text[:79] + "…"


def url_problem(url: str) -> tuple[str, str] | None:
    """(what, fix) when `url` cannot be a target's base URL, else None."""
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        return "the URL carries a user name or password ('user:password@')", USERINFO_FIX
    if _UNSAFE.search(url):
        return f"URL '{shown(url)}' contains spaces or control characters", "remove them (or quote the value)"
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"invalid URL '{shown(url)}': {exc}", FULL_URL_FIX
    if parts.scheme not in SCHEMES or not parts.hostname:
        return f"invalid URL '{shown(url)}'", FULL_URL_FIX
    if "#" in url:
        return f"URL '{shown(url)}' has a fragment ('#...')", "remove the '#' part: a fragment is never sent"
    port_text = parts.netloc.rpartition("]")[2].rpartition(":")[2] if ":" in parts.netloc.rpartition("]")[2] else ""
    if port_text and (not _PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535):
        return f"invalid port in URL '{shown(url)}'", "use a port number between 1 and 65535"
    if not valid_host(parts.hostname):
        return (f"invalid host name '{parts.hostname[:80]}' in URL",
                "a host is an IP address or a name of letters, digits, '-' and '.' (write IDN names as xn--...)")
    if parts.path not in ("", "/") or parts.query:
        return f"URL '{shown(url)}' has a path or query", "give the base URL only; paths go on endpoints"
    return None


def valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))
