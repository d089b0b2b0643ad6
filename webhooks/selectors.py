"""Reads of an organization's configuration, always scoped to that organization."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

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
