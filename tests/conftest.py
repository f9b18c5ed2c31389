"""Shared fixtures.  Imports locust first: it monkey-patches (gevent) and must come before
requests/urllib3/ssl are imported anywhere in the test process."""

import locust  # noqa: F401  (must be first: monkey-patching)
