"""Who the client is when the service sits behind reverse proxies."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The client's IP address: ``REMOTE_ADDR``, or, with ``TRUSTED_PROXY_HOPS`` = N proxies in
    front, the Nth address from the right of ``X-Forwarded-For``.

    Each trusted proxy appends the address it received the request from, so the Nth from the
    right is what the outermost one saw; anything further left was written by the client and
    proves nothing. A request whose header has fewer entries than there are proxies did not
    come through them all, and gets its own peer's address, which cannot be forged either.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < hops:
        return remote
    try:
        return str(ipaddress.ip_address(forwarded[-hops]))
    except ValueError:
        return remote
