"""Shared fixtures.  Imports locust first: it monkey-patches (gevent) and must come before
requests/urllib3/ssl are imported anywhere in the test process."""

from collections.abc import Iterator  # noqa: E402

import locust  # noqa: F401  (must be first: monkey-patching)
import pytest  # noqa: E402

from workload.demo.launcher import DemoTarget, start_demo_target  # noqa: E402


@pytest.fixture(scope="session")
def demo_target() -> Iterator[DemoTarget]:
    """The embedded demo target on free loopback ports, counting accepted connections."""
    target = start_demo_target()
    try:
        yield target
    finally:
        target.stop()
