"""How many requests, and how many events, one API key may send.

Two limits, both per API key, both answered with 429, ``Retry-After`` and a JSON error:

* ``ApiKeyRateThrottle``: every ``/ui/api/`` request but event ingest, at most
  ``API_THROTTLE_RATE``. It is Django REST framework's own throttle (a sliding log of request
  times in the cache, which is Redis, so every web process shares it).
* ``charge_events(request, count)``: ``POST /ui/api/events`` (and a batch endpoint, which
  charges every event of the batch with one call), at most ``API_EVENTS_THROTTLE_RATE``
  *events*. DRF's throttle counts requests, one at a time, so this one is a Lua script on the
  project's Redis: a sliding log with one member per event, which takes ``count`` members all
  or none. A refused batch consumes nothing, so a client that sends too many at once is told
  how long to wait for room for all of them, not charged for part of a batch it must resend.
  (``deliveries.ratelimit``, the delivery limiter, grants part of a request by design and
  lives in an app this one must not import.)

A limit is a promise to the other clients of the service, not a security boundary: if Redis
cannot be reached the API keeps working unthrottled and the log says so.
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import TYPE_CHECKING, Any

import redis
from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from webhooks_project.redis import get_redis
from webhooks_project.sliding_log import LUA_PRELUDE

if TYPE_CHECKING:  # rest_framework.views imports this module through the throttle setting
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

EVENTS_KEY_PREFIX = "whk:api-events:"
# The log outlives its newest member's window by this much, so expiry never races the trim.
KEY_EXPIRY_SLACK_MS = 1_000
# Members are added in chunks so one ZADD stays far below Lua's unpack() limit (~8,000 values).
ZADD_CHUNK = 1_000
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int] | None:
    """``"1200/min"`` → ``(1200, 60)``, as DRF reads rates (s, m, h, d by first letter); an
    empty rate turns the limit off (None)."""
    rate = rate.strip()
    if not rate:
        return None
    count, _, period = rate.partition("/")
    try:
        return int(count), _PERIODS[period.strip()[:1]]
    except (KeyError, ValueError):
        raise ValueError(f"rate {rate!r} is not '<count>/<s|min|hour|day>'") from None


class ApiKeyRateThrottle(SimpleRateThrottle):
    """DRF's throttle, keyed by the caller's API key, at ``API_THROTTLE_RATE``."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read at each request rather than DRF's class-level copy, so the setting is the one place.
        return settings.API_THROTTLE_RATE or None

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        api_key_id = getattr(request.user, "api_key_id", None)
        if api_key_id is None:
            return None  # unauthenticated requests are refused before throttles run
        return self.cache_format % {"scope": self.scope, "ident": api_key_id}

    def allow_request(self, request: Request, view: APIView) -> bool:
        try:
            return super().allow_request(request, view)
        except redis.RedisError:
            logger.warning("redis unavailable: API requests are not being throttled")
            return True


_CHARGE_LUA = (
    LUA_PRELUDE
    + """
-- KEYS: the key's event log. ARGV: n, limit, window_ms, expiry_slack_ms, zadd_chunk
-- Returns {1, 0} when all n fit (and are logged), else {0, microseconds until they would}.
local key = KEYS[1]
local n = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])

redis.call('ZREMRANGEBYSCORE', key, '-inf', ms(now - window))
local used = redis.call('ZCARD', key)
if used + n > limit then
  -- Room for n opens when the (used + n - limit) oldest members have left the window.
  local entry = redis.call('ZRANGE', key, used + n - limit - 1, used + n - limit - 1, 'WITHSCORES')
  return {0, math.ceil((tonumber(entry[2]) + window - now) * 1000)}
end
local score = append(key, n, tonumber(ARGV[5]))
redis.call('PEXPIRE', key, math.ceil(tonumber(score) - now + window + tonumber(ARGV[4])))
return {1, 0}
"""
)

_scripts: weakref.WeakKeyDictionary[redis.Redis, Any] = weakref.WeakKeyDictionary()


def _charge_script(client: redis.Redis) -> Any:
    script = _scripts.get(client)
    if script is None:
        script = _scripts[client] = client.register_script(_CHARGE_LUA)
    return script


def charge_events(request: Request, count: int) -> None:
    """Count ``count`` events against the caller's API key; raise Throttled (429) when they do
    not all fit in ``API_EVENTS_THROTTLE_RATE`` now. Nothing is counted when they are refused.

    Call it once per request, before emitting: ``charge_events(request, len(events))``.
    """
    if count < 1:
        return
    limit = parse_rate(settings.API_EVENTS_THROTTLE_RATE)
    api_key_id = getattr(request.user, "api_key_id", None)
    if limit is None or api_key_id is None:
        return
    per_window, window_seconds = limit
    if count > per_window:  # no wait would help, so no Retry-After
        raise Throttled(
            detail=f"{count} events is more than API_EVENTS_THROTTLE_RATE allows at once "
            f"({settings.API_EVENTS_THROTTLE_RATE}); send fewer per request."
        )
    client = get_redis()
    args = [count, per_window, window_seconds * 1000, KEY_EXPIRY_SLACK_MS, ZADD_CHUNK]
    try:
        fits, wait_us = _charge_script(client)(keys=[EVENTS_KEY_PREFIX + api_key_id], args=args, client=client)
    except redis.RedisError:
        logger.warning("redis unavailable: events sent over the API are not being throttled")
        return
    if not fits:
        wait = max(1, math.ceil(int(wait_us) / 1_000_000))
        # DRF adds "Expected available in <wait> seconds." to the message, and Retry-After.
        raise Throttled(wait=wait, detail=f"More than {settings.API_EVENTS_THROTTLE_RATE} events from this API key.")
