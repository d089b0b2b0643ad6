"""The Redis clients of a process, built from REDIS_URL.

``get_redis`` is the one client of the workers' and the API's own work (rate limits, endpoint
slots, throttles). ``get_wake_redis`` is the client of the wake after an emit's commit (the
wake-pending flags): a producer must never wait on Redis, so it gives up after
WEBHOOK_WAKE_TIMEOUT and never retries (the sweeper wakes whatever a failed wake missed).
"""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

# A Redis that does not answer quickly is treated as unavailable: deliveries wait.
REDIS_SOCKET_TIMEOUT = 5.0


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
    )


def get_wake_redis() -> redis.Redis:
    """The wake path's client: connect and each read bounded by WEBHOOK_WAKE_TIMEOUT, no retry."""
    return _wake_client(settings.REDIS_URL, settings.WEBHOOK_WAKE_TIMEOUT)


@lru_cache(maxsize=4)
def _wake_client(url: str, timeout: float) -> redis.Redis:
    # Keyed by what builds it, so a test that points the settings elsewhere gets its own client.
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
