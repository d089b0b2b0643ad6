"""Settings for the test suite: the same settings, with test defaults for a few variables.

Loopback receivers must be reachable, and tests use their own Redis database so they never
touch a running service's queues. Anything set in the environment still wins.
"""

import os

os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("CELERY_BROKER_URL", os.environ["REDIS_URL"])

from webhooks_project.settings import *  # noqa: E402,F403
