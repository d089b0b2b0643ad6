"""Failed sign-ins are limited per account and client address, for the dashboard and the admin.

Each failure counts against ``sha256(address, username)`` in Redis for LOGIN_FAILURE_WINDOW
seconds; at LOGIN_FAILURE_LIMIT the pair is refused without its password being checked until
the window has passed, and a successful sign-in clears it. Keyed by the pair, a guesser cannot
lock the account's owner out from another address. If Redis cannot be reached, sign-in works
unthrottled (and says so in the log) rather than locking everyone out.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from webhooks_project.redis import get_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "whk:login-failures:"


def _key(request: HttpRequest, username: str) -> str:
    address = request.META.get("REMOTE_ADDR", "")
    digest = hashlib.sha256(f"{address}\n{username.strip().lower()}".encode()).hexdigest()
    return KEY_PREFIX + digest


def is_locked(request: HttpRequest | None, username: str | None) -> bool:
    if request is None or not username:
        return False
    try:
        failures = get_redis().get(_key(request, username))
    except redis.RedisError:
        logger.warning("redis unavailable: sign-in attempts are not being limited")
        return False
    return failures is not None and int(failures) >= settings.LOGIN_FAILURE_LIMIT


def record_failure(*, request: HttpRequest | None, username: str | None) -> None:
    if request is None or not username:
        return
    key = _key(request, username)
    try:
        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, settings.LOGIN_FAILURE_WINDOW, nx=True)  # the window starts at the first failure
        pipe.execute()
    except redis.RedisError:
        logger.warning("redis unavailable: a failed sign-in was not counted")


def clear(*, request: HttpRequest | None, username: str | None) -> None:
    if request is None or not username:
        return
    with contextlib.suppress(redis.RedisError):  # the count expires by itself
        get_redis().delete(_key(request, username))


class ThrottledModelBackend(ModelBackend):
    """Django's backend, refusing a locked (address, username) pair before any password check."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if is_locked(request, username):
            raise PermissionDenied  # authenticate() gives up, and signals the failure
        return super().authenticate(request, username=username, password=password, **kwargs)


def on_login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    """``user_login_failed`` receiver (connected in WebhooksConfig.ready)."""
    record_failure(request=request, username=credentials.get("username"))


def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    """``user_logged_in`` receiver (connected in WebhooksConfig.ready)."""
    clear(request=request, username=user.get_username())
