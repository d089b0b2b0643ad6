"""Waking a webhook's drain: the ``deliveries.drain`` messages, coalesced, now or later.

A wake is a message naming a webhook ("it may have work"), never a delivery: the drain asks
the database what is due. While one is pending or running, the webhook's wake-pending flag
(Redis) is set and further wakes send nothing: the running drain's next claim picks their
deliveries up, so a burst of events sends one message. A wake that never arrives costs
latency, not a delivery: the sweeper (``deliveries.periodic``) finds what is due.
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings

from deliveries import concurrency
from webhooks_project.celery import app as celery_app
from webhooks_project.redis import get_redis

logger = logging.getLogger(__name__)

DRAIN_TASK = "deliveries.drain"
# How long a coalesced wake stays "pending" if its message never runs (the sweeper covers it).
WAKE_PENDING_TTL_SECONDS = 15.0
# A countdown must stay clear of the broker's visibility timeout (else Redis redelivers it).
COUNTDOWN_HEADROOM = 0.9


def wake_all(webhook_ids: list[str]) -> None:
    """Immediate, coalesced wakes for several webhooks: one Redis round trip for the flags."""
    if not webhook_ids:
        return
    try:
        newly = concurrency.mark_wakes_pending(get_redis(), webhook_ids, WAKE_PENDING_TTL_SECONDS)
    except redis.RedisError:
        newly = [True] * len(webhook_ids)  # cannot coalesce: wake them all rather than none
    for webhook_id, is_new in zip(webhook_ids, newly, strict=True):
        if is_new:
            wake(webhook_id, coalesce=False)


def wake(webhook_id: str, *, countdown: float | None = None, coalesce: bool = True) -> None:
    """Enqueue a drain of ``webhook_id`` now or after ``countdown`` seconds.

    Immediate wakes are coalesced: while one is pending, another adds nothing (the pending one
    claims everything due when it runs). A countdown beyond the broker's visibility timeout is
    not sent at all: the sweeper finds the delivery when it is due.
    """
    try:
        if countdown is not None and countdown > 0:
            if countdown > settings.CELERY_VISIBILITY_TIMEOUT * COUNTDOWN_HEADROOM:
                return
            celery_app.send_task(DRAIN_TASK, args=[webhook_id], countdown=countdown)
            return
        if coalesce and not concurrency.mark_wake_pending(get_redis(), webhook_id, WAKE_PENDING_TTL_SECONDS):
            return
        celery_app.send_task(DRAIN_TASK, args=[webhook_id])
    except Exception:  # noqa: BLE001 - the database holds the delivery; the sweeper will wake it
        logger.warning("wake of webhook %s not enqueued; the sweeper will pick it up", webhook_id, exc_info=True)
