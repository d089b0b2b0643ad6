"""Manual operations on deliveries: a test event, a retry, a recovery of failed deliveries.

Each makes deliveries due now and wakes the webhook after the commit (``deliveries.dispatch``);
the drain sends them as it sends any other. A retried delivery keeps its id and gets one more
attempt in its log. On a disabled webhook each is refused (``Conflict``) and queues nothing:
the drain would only mark what it queued failed, unattempted.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models.functions import Now

from deliveries.dispatch import wake_all
from deliveries.models import Delivery
from events.catalogue import EVENT_TYPES
from events.services import build_event
from webhooks.models import Webhook
from webhooks_project.exceptions import Conflict


def _require_enabled(webhook_id: str, *, then: str) -> None:
    """Raise Conflict, saying to enable it first, unless the webhook is enabled now.

    Read in the caller's transaction, locking the row against a concurrent disable until it
    commits: what is queued here is never queued for a webhook that was disabled meanwhile.
    """
    state = Webhook.objects.select_for_update(no_key=True).filter(id=webhook_id).first()
    if state is None or not state.enabled:
        reason = f" ({state.disabled_reason_text})" if state and state.disabled_reason else ""
        raise Conflict(f"Webhook {webhook_id} is disabled{reason}. Enable it first, then {then}. Nothing was queued.")


def delivery_send_test(*, webhook: Webhook, event_type: str) -> Delivery:
    """Send a signed sample of ``event_type`` to this one webhook; returns its delivery.

    Sent whatever the webhook's filter says (the filter is for emitted events); the delivery's
    ``event`` and ``webhook`` are loaded, for saying whether the filter would have matched.
    Raises Conflict if the webhook is disabled.
    """
    event = build_event(webhook.organization_id, event_type, dict(EVENT_TYPES[event_type].sample))
    with transaction.atomic():
        _require_enabled(webhook.id, then="send a test event")
        event.save(force_insert=True)
        delivery = Delivery.objects.create(
            organization_id=webhook.organization_id,
            webhook=webhook,
            event=event,
            event_type=event_type,
            created_at=event.created_at,
            next_attempt_at=Now(),
        )
        transaction.on_commit(lambda: wake_all([webhook.id]))
    delivery.refresh_from_db()
    delivery.event, delivery.webhook = event, webhook
    return delivery


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send a delivery again now, whatever its state: same id, one more attempt in its log.

    Raises Conflict if its webhook is disabled.
    """
    with transaction.atomic():
        _require_enabled(delivery.webhook_id, then="retry")
        Delivery.objects.filter(id=delivery.id).update(
            status=Delivery.Status.RETRYING if delivery.attempts else Delivery.Status.PENDING,
            next_attempt_at=Now(),
            lease_until=None,
        )
        transaction.on_commit(lambda: wake_all([delivery.webhook_id]))
    delivery.refresh_from_db()
    return delivery


def webhook_recover(*, webhook: Webhook, since: datetime) -> int:
    """Send again every failed delivery of ``webhook`` created since ``since``.

    Raises Conflict if the webhook is disabled.
    """
    with transaction.atomic():
        _require_enabled(webhook.id, then="recover its deliveries")
        count = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.FAILED, created_at__gte=since).update(
            status=Delivery.Status.RETRYING, next_attempt_at=Now(), lease_until=None
        )
        if count:
            transaction.on_commit(lambda: wake_all([webhook.id]))
    return count
