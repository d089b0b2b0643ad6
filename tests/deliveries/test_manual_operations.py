"""Retry and recover through the API: the services open their own transaction and wake the
webhook once, after it commits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import Delivery
from deliveries.services import delivery_send_test
from tests.conftest import make_webhook

pytestmark = pytest.mark.django_db


def _finished(webhook, status: str, *, age: timedelta = timedelta(0)) -> Delivery:
    delivery = delivery_send_test(webhook=webhook, event_type="test.ping")
    Delivery.objects.filter(id=delivery.id).update(
        status=status, attempts=1, next_attempt_at=None, created_at=timezone.now() - age
    )
    return delivery


def test_recover_makes_failed_deliveries_since_due_and_wakes_once_when_committed(
    api, tenant, django_capture_on_commit_callbacks
):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    old = _finished(webhook, "failed", age=timedelta(days=2))
    recent = [_finished(webhook, "failed"), _finished(webhook, "failed")]
    succeeded = _finished(webhook, "succeeded")
    since = timezone.now() - timedelta(days=1)

    with django_capture_on_commit_callbacks() as wakes:
        response = api.post(f"/ui/api/webhooks/{webhook.id}/recover", {"since": since.isoformat()}, format="json")

    assert response.status_code == 202, response.content
    assert response.json() == {"recovering": 2}
    assert len(wakes) == 1
    statuses = dict(Delivery.objects.values_list("id", "status"))
    assert [statuses[d.id] for d in recent] == ["retrying", "retrying"]
    assert (statuses[old.id], statuses[succeeded.id]) == ("failed", "succeeded")


def test_retry_makes_delivery_due_now_and_wakes_once_when_committed(api, tenant, django_capture_on_commit_callbacks):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = _finished(webhook, "failed")

    with django_capture_on_commit_callbacks() as wakes:
        response = api.post(f"/ui/api/webhooks/{webhook.id}/deliveries/{delivery.id}/retry")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "retrying"
    assert len(wakes) == 1
    delivery.refresh_from_db()
    assert delivery.next_attempt_at <= timezone.now()
