"""Hourly housekeeping: disable endpoints that only fail, purge what is past retention."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from deliveries.models import Delivery
from deliveries.services import webhook_disable
from events.models import Event
from webhooks.models import Webhook

logger = logging.getLogger(__name__)

# Rows deleted per statement, so a purge never holds long locks or a huge transaction.
PURGE_BATCH = 5000


def disable_failing_webhooks() -> list[str]:
    """Disable enabled webhooks whose every delivery in WEBHOOK_DISABLE_AFTER_DAYS failed.

    A webhook qualifies only if it has had failures for that whole period: its oldest failed
    attempt in the window is older than the window's start plus a day's slack is not required;
    it must have had an attempt at least that long ago and no success since.
    """
    days = settings.WEBHOOK_DISABLE_AFTER_DAYS
    since = timezone.now() - timedelta(days=days)
    disabled = []
    candidates = Webhook.objects.filter(enabled=True, created_at__lt=since).values_list("id", flat=True)
    for webhook_id in candidates:
        recent = Delivery.objects.filter(webhook_id=webhook_id, last_attempt_at__gte=since)
        if not recent.exists() or recent.filter(status=Delivery.Status.SUCCEEDED).exists():
            continue
        if not Delivery.objects.filter(webhook_id=webhook_id, last_attempt_at__lt=since + timedelta(hours=1)).exists():
            continue
        webhook_disable(webhook_id=webhook_id, reason=f"every delivery failed for {days} days")
        disabled.append(webhook_id)
    return disabled


def purge_old_records() -> int:
    """Delete events (and with them their deliveries and attempts) past WEBHOOK_RETENTION_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    total = 0
    while True:
        ids = list(Event.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:PURGE_BATCH])
        if not ids:
            break
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM deliveries_attempt WHERE delivery_id IN"
                " (SELECT id FROM deliveries_delivery WHERE event_id = ANY(%s))",
                [ids],
            )
            cursor.execute("DELETE FROM deliveries_delivery WHERE event_id = ANY(%s)", [ids])
            cursor.execute("DELETE FROM events_event WHERE id = ANY(%s)", [ids])
        total += len(ids)
    if total:
        logger.info("purged %d events past retention", total)
    return total
