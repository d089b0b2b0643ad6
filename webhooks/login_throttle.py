"""Failed sign-ins are limited, for the dashboard and the admin, three ways at once.

Each failure counts, in Redis for LOGIN_FAILURE_WINDOW seconds from the first, against:

* the client address and account together (LOGIN_FAILURE_LIMIT): one guesser at one account;
* the account from any address (LOGIN_ACCOUNT_FAILURE_LIMIT, higher): a guesser spread over
  many addresses;
* the address over any accounts (LOGIN_ADDRESS_FAILURE_LIMIT): password spraying, one common
  password tried on many accounts.

At any limit the sign-in is refused without its password being checked, until that count's
window has passed; a successful sign-in clears its address-and-account count. The client
address is ``webhooks_project.proxies.client_address`` (``DJANGO_TRUSTED_PROXY_HOPS`` behind
proxies), so a forged X-Forwarded-For buys nothing.

What a stranger can do to an account's owner is bounded by the window: the account-wide count
is the only one a stranger elsewhere can fill, its window runs from its first failure and is
never extended, and a refused attempt is not counted (no password was checked), so the owner's
own attempts during a lock-out cannot stretch it either. If Redis cannot be reached, sign-in
works unthrottled (and says so in the log) rather than locking everyone out.
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

from webhooks_project.proxies import client_address
from webhooks_project.redis import get_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "whk:login-failures:"
# Set on a request whose sign-in was refused unchecked, so its failure signal is not counted.
_REFUSED_UNCHECKED = "_login_throttle_refused"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _counts(request: HttpRequest, username: str) -> list[tuple[str, int]]:
    """The (Redis key, limit) of every count a failure of ``username`` from ``request`` adds to."""
    address = client_address(request)
    account = username.strip().lower()
    return [
        (f"{KEY_PREFIX}pair:{_digest(address, account)}", settings.LOGIN_FAILURE_LIMIT),
        (f"{KEY_PREFIX}account:{_digest(account)}", settings.LOGIN_ACCOUNT_FAILURE_LIMIT),
        (f"{KEY_PREFIX}address:{_digest(address)}", settings.LOGIN_ADDRESS_FAILURE_LIMIT),
    ]


def is_locked(request: HttpRequest | None, username: str | None) -> bool:
    if request is None or not username:
        return False
    counts = _counts(request, username)
    try:
        failures = get_redis().mget([key for key, _ in counts])
    except redis.RedisError:
        logger.warning("redis unavailable: sign-in attempts are not being limited")
        return False
    return any(value is not None and int(value) >= limit for value, (_, limit) in zip(failures, counts, strict=True))


def record_failure(*, request: HttpRequest | None, username: str | None) -> None:
    if request is None or not username or getattr(request, _REFUSED_UNCHECKED, False):
        return
    try:
        pipe = get_redis().pipeline()
        for key, _ in _counts(request, username):
            pipe.incr(key)
            pipe.expire(key, settings.LOGIN_FAILURE_WINDOW, nx=True)  # the window starts at the first failure
        pipe.execute()
    except redis.RedisError:
        logger.warning("redis unavailable: a failed sign-in was not counted")


def clear(*, request: HttpRequest | None, username: str | None) -> None:
    """After a successful sign-in: its address-and-account count starts again. The wider counts
    keep theirs, so a guesser elsewhere gains nothing from the owner signing in."""
    if request is None or not username:
        return
    pair_key, _ = _counts(request, username)[0]
    with contextlib.suppress(redis.RedisError):  # the count expires by itself
        get_redis().delete(pair_key)


class ThrottledModelBackend(ModelBackend):
    """Django's backend, refusing a locked address or account before any password check."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if is_locked(request, username):
            setattr(request, _REFUSED_UNCHECKED, True)
            raise PermissionDenied  # authenticate() gives up, and signals the failure
        return super().authenticate(request, username=username, password=password, **kwargs)


def on_login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any) -> None:
    """``user_login_failed`` receiver (connected in WebhooksConfig.ready)."""
    record_failure(request=request, username=credentials.get("username"))


def on_logged_in(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    """``user_logged_in`` receiver (connected in WebhooksConfig.ready)."""
    clear(request=request, username=user.get_username())
