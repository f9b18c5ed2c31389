"""The embedded demo target: a real HTTP/1.1 keep-alive server (HTTP/2 by ALPN on https) to load-test locally.

It serves a small JSON API (logins by form, token and basic auth, items, slow and failing
endpoints, ``/echo``, ``/reset``) on http, https and admin listeners of one process, and
counts accepted connections exactly, per listener, so a run can compare what the client
did with what the server saw.  The https listener also speaks HTTP/2 to clients that offer
``h2`` by ALPN, and ``--h2c`` makes the http listener accept prior-knowledge HTTP/2
(`workload.demo.h2server`); ``http2_connections`` counts those connections.
`start_demo_target` runs it as a child process and returns a `DemoTarget` handle;
``python -m workload.demo`` runs it in the foreground.

Exports are loaded lazily: ``python -m workload.demo`` imports this package *before* its
``__main__`` can monkey-patch, so this module must not import ssl, sockets or threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workload.demo.launcher import DemoTarget, start_demo_target

__all__ = ["DemoTarget", "start_demo_target"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from workload.demo import launcher

        return getattr(launcher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
