"""Which recorded requests become steps: declared hosts only, no static assets, no logout.

A browser records everything a page does: its images and scripts, fonts from CDNs, analytics
beacons to other hosts, the redirects it followed.  The import keeps the requests a user's
journey makes to the hosts under test, in order, and lists what it dropped and why.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from workload.authoring.har import HarEntry
from workload.scenario.schema import Method

METHODS: tuple[Method, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
STATIC_EXTENSIONS = re.compile(
    r"\.(css|js|mjs|map|png|jpe?g|gif|webp|avif|svg|ico|bmp|woff2?|ttf|otf|eot|mp3|mp4|webm|ogg|wav)$", re.I)
STATIC_MIME = re.compile(r"^(image/|font/|audio/|video/|text/css|(text|application)/(x-)?javascript|"
                         r"application/(x-)?font)", re.I)
LOGOUT_PATH = re.compile(r"(log|sign)[-_]?(out|off)", re.I)


@dataclass
class Selection:
    """The kept entries and, per reason, what was dropped."""

    kept: list[HarEntry] = field(default_factory=list)
    other_hosts: Counter[str] = field(default_factory=Counter)
    static: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # "GET /logout: ends the session", ...


def origin(url: str) -> str:
    """`http://host:port` (the port only when given) of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def declared(entries: list[HarEntry], host_filter: list[str] | None) -> list[str]:
    """The hosts to keep as written by the user, else the host of the first recorded request."""
    if host_filter:
        return [h.strip().lower().rstrip("/") for h in host_filter if h.strip()]
    first = next((e for e in entries if urlsplit(e.url).scheme in ("http", "https")), None)
    return [urlsplit(first.url).netloc.lower()] if first else []


def host_matches(url: str, hosts: list[str]) -> bool:
    """Whether the URL's host is declared: `host`, `host:port` or a full `http://host:port`."""
    parts = urlsplit(url)
    netloc, hostname = parts.netloc.lower(), (parts.hostname or "").lower()
    return any(h in (netloc, hostname) or h == origin(url) for h in hosts)


def select(entries: list[HarEntry], hosts: list[str], keep_static: bool) -> Selection:
    chosen = Selection()
    followed: str | None = None  # the URL the previous kept request redirected to
    for entry in sorted(entries, key=lambda e: (e.started, e.index)):
        why = _dropped_because(entry, hosts, keep_static, followed, chosen)
        if why:
            chosen.dropped.append(f"{entry.method} {_short(entry.url)}: {why}")
        elif why is None:
            chosen.kept.append(entry)
            followed = _redirect_target(entry)
    return chosen


def _dropped_because(entry: HarEntry, hosts: list[str], keep_static: bool, followed: str | None,
                     chosen: Selection) -> str | None:
    """Why the entry is dropped, "" when it is counted elsewhere, None when it is kept."""
    if urlsplit(entry.url).scheme not in ("http", "https"):
        return "not an HTTP request"
    if not host_matches(entry.url, hosts):
        chosen.other_hosts[urlsplit(entry.url).netloc] += 1
        return ""
    if not keep_static and is_static(entry):
        chosen.static.append(_short(entry.url))
        return ""
    if followed is not None and entry.url == followed and entry.method == "GET":
        return "the browser followed a redirect (a step follows redirects itself)"
    if entry.method == "OPTIONS" and any(k.lower() == "access-control-request-method" for k, _ in entry.headers):
        return "a CORS preflight (the browser sends it by itself)"
    if entry.method not in METHODS:
        return f"method {entry.method} is not supported in scenarios"
    if entry.status == 0:
        return "the browser never got a response (blocked or cancelled)"
    if LOGOUT_PATH.search(urlsplit(entry.url).path):
        return "a logout would end the session for every later iteration"
    return None


def is_static(entry: HarEntry) -> bool:
    return bool(STATIC_EXTENSIONS.search(urlsplit(entry.url).path) or STATIC_MIME.match(entry.response_mime))


def _redirect_target(entry: HarEntry) -> str | None:
    if not 300 <= entry.status < 400:
        return None
    location = next((v for k, v in entry.response_headers if k.lower() == "location"), None)
    return urljoin(entry.url, location) if location else None


def _short(url: str, limit: int = 80) -> str:
    """The URL without its query (which may carry a secret), shortened for a one-line list."""
    parts = urlsplit(url)
    text = f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?..." if parts.query else "")
    return text if len(text) <= limit else text[:limit - 3] + "..."
