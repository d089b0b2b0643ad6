"""The one Redis client of a process (rate limits, endpoint slots), built from REDIS_URL."""

from __future__ import annotations

from functools import lru_cache

import redis
from django.conf import settings

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
