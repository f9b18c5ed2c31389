"""Shared fixtures.  Imports locust first: it monkey-patches (gevent) and must come before
requests/urllib3/ssl are imported anywhere in the test process."""

import locust  # noqa: F401  (must be first: monkey-patching)

from collections.abc import Iterator

import pytest

from workload.demo.launcher import DemoTarget, start_demo_target


@pytest.fixture(scope="session")
def demo_target() -> Iterator[DemoTarget]:
    """The embedded demo target on free loopback ports, counting accepted connections."""
    target = start_demo_target()
    try:
        yield target
    finally:
        target.stop()


# Variables a developer's shell or CI may carry that would change what a run under test does or
# where it writes: a child run would append to a real GitHub step summary, or pick another scenario.
_LEAKY_PREFIXES = ("WORKLOAD_", "LOCUST_")
_LEAKY_NAMES = ("GITHUB_STEP_SUMMARY",)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every child process it starts) sees none of the leaky variables."""
    import os

    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES) or name in _LEAKY_NAMES:
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def fresh_secret_registry() -> Iterator[None]:
    """The secret registry is process-wide by design (a run's one scenario); across tests, a value
    one test registered would mask another test's expected text."""
    from workload.redaction import REGISTRY

    REGISTRY.clear()
    yield
    REGISTRY.clear()


@pytest.fixture
def netns_lab() -> Iterator[object]:
    """`netns_lab("target", "gen")`: hosts in private network namespaces (see `tests.netns`),
    deleted after the test even when it fails; skipped, with the reason, where it cannot run."""
    from tests.netns import Lab, skip_reason

    if reason := skip_reason():
        pytest.skip(reason)
    labs: list[Lab] = []

    def make(*names: str) -> Lab:
        labs.append(Lab(names))
        return labs[-1]

    try:
        yield make
    finally:
        for lab in labs:
            lab.close()
