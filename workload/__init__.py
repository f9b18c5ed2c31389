"""workload: HTTP load generation on Locust where the connection policy is a measured variable.

This package must stay importable without importing locust: only `workload.main` (the
locustfile) and the runtime modules it loads import locust.
"""

__version__ = "0.1.0"
