"""Settings for the test suite: the same settings, with test defaults for a few variables.

Loopback receivers must be reachable, and each test run uses its own test database and
Redis database (derived from TEST_RUN_ID, default the process id), so concurrent runs on one
machine never flush each other's data or queues. Anything set in the environment still wins.
"""

import os

_run = int(os.environ.setdefault("TEST_RUN_ID", str(os.getpid())))
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# Redis databases 1-12: 0 is the local service's, 13-15 are left to benchmarks.
os.environ.setdefault("REDIS_URL", f"redis://127.0.0.1:6379/{1 + _run % 12}")
os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])

from webhooks_project.settings import *  # noqa: E402,F403
from webhooks_project.settings import DATABASES  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": f"test_webhooks_{_run}"}
