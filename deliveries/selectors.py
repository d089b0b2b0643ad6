"""Reads of delivery history, scoped to one organization's webhook."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from deliveries.models import Delivery
from webhooks.models import Webhook


def deliveries_of(webhook: Webhook, *, status: str | None = None, event_type: str | None = None) -> QuerySet[Delivery]:
    queryset = Delivery.objects.filter(webhook=webhook)
    if status:
        queryset = queryset.filter(status=status)
    if event_type:
        queryset = queryset.filter(event_type=event_type)
    return queryset


def delivery_get(webhook: Webhook, delivery_id: str) -> Delivery:
    delivery = Delivery.objects.filter(webhook=webhook, id=delivery_id).select_related("event").first()
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery
