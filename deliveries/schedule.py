"""When the next attempt comes: the retry schedule and the receiver's ``Retry-After``."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from time import time

from django.conf import settings

# Statuses whose Retry-After may push the next attempt later.
THROTTLE_STATUSES = frozenset({429, 503})


def retry_delay(attempt_number: int, *, status: int | None = None, retry_after: str | None = None) -> float | None:
    """Seconds until the attempt after ``attempt_number`` (1-based), or None when none is left.

    A 429 or 503 with ``Retry-After`` can push the attempt later, never earlier, and at most to
    twice the scheduled delay so a receiver cannot park a delivery indefinitely.
    """
    delays = settings.WEBHOOK_RETRY_DELAYS
    if attempt_number > len(delays):
        return None
    delay = float(delays[attempt_number - 1])
    if status in THROTTLE_STATUSES and retry_after:
        asked = parse_retry_after(retry_after)
        if asked is not None:
            delay = min(max(delay, asked), 2 * delay)
    return delay


def parse_retry_after(value: str, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unreadable."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (now if now is not None else time()))
