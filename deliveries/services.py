"""Manual operations on deliveries: a test event, a retry, a recovery of failed deliveries.

Each makes deliveries due now and wakes the webhook after the commit (``deliveries.dispatch``);
the drain sends them as it sends any other. A retried delivery keeps its id and gets one more
attempt in its log.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models.functions import Now

from deliveries.dispatch import wake
from deliveries.models import Delivery
from events.catalogue import EVENT_TYPES
from events.services import build_event
from webhooks.models import Webhook


def delivery_send_test(*, webhook: Webhook, event_type: str) -> Delivery:
    """Send a signed sample of ``event_type`` to this one webhook; returns its delivery."""
    event = build_event(webhook.organization_id, event_type, dict(EVENT_TYPES[event_type].sample))
    with transaction.atomic():
        event.save(force_insert=True)
        delivery = Delivery.objects.create(
            organization_id=webhook.organization_id,
            webhook=webhook,
            event=event,
            event_type=event_type,
            created_at=event.created_at,
            next_attempt_at=Now(),
        )
        transaction.on_commit(lambda: wake(webhook.id))
    delivery.refresh_from_db()
    return delivery


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send a delivery again now, whatever its state: same id, one more attempt in its log."""
    with transaction.atomic():
        Delivery.objects.filter(id=delivery.id).update(
            status=Delivery.Status.RETRYING if delivery.attempts else Delivery.Status.PENDING,
            next_attempt_at=Now(),
            lease_until=None,
        )
        transaction.on_commit(lambda: wake(delivery.webhook_id))
    delivery.refresh_from_db()
    return delivery


def webhook_recover(*, webhook: Webhook, since: datetime) -> int:
    """Send again every failed delivery of ``webhook`` created since ``since``."""
    with transaction.atomic():
        count = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.FAILED, created_at__gte=since).update(
            status=Delivery.Status.RETRYING, next_attempt_at=Now(), lease_until=None
        )
        if count:
            transaction.on_commit(lambda: wake(webhook.id))
    return count
