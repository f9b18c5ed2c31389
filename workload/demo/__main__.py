"""``python -m workload.demo``: run the demo target (see `workload.demo.server`).

gevent must monkey-patch before anything else imports socket/ssl/threading, so this is
the only place that patches; importing `workload.demo.app` or `.server` never does.
"""

from gevent import monkey

monkey.patch_all()

from workload.demo.server import main  # noqa: E402  (must follow patch_all)

raise SystemExit(main())
