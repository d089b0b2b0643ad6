"""Reads of an organization's configuration, always scoped to that organization."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from events.services import build_event
from webhooks.filters import payload_matches
from webhooks.models import Membership, Organization, Webhook


def webhooks_of(organization: Organization) -> QuerySet[Webhook]:
    return Webhook.objects.filter(organization=organization)


def webhook_get(organization: Organization, webhook_id: str) -> Webhook:
    """The organization's webhook, or 404: another organization's id is simply not found."""
    webhook = webhooks_of(organization).filter(id=webhook_id).first()
    if webhook is None:
        raise Http404("No such webhook.")
    return webhook


def organization_of_user(user_id: int) -> Organization | None:
    """The organization a dashboard user belongs to (each belongs to one), or None."""
    membership = Membership.objects.select_related("organization").filter(user_id=user_id).first()
    return membership.organization if membership else None


def filter_matches_event(
    organization: Organization, *, filter: dict[str, Any] | None, event_type: str, data: dict[str, Any]
) -> bool:
    """Whether a webhook with ``filter`` would get this event, sending nothing: the envelope is
    built as ``emit()`` builds it (``events.services.EmitError`` for what it refuses)."""
    event = build_event(organization.id, event_type, data)
    return payload_matches(filter, event.payload)
