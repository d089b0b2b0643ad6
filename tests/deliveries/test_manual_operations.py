"""Retry and recover through the API: the services open their own transaction and wake the
webhook once, after it commits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import make_delivery, make_webhook
from django.utils import timezone

from deliveries.models import Delivery

pytestmark = pytest.mark.django_db


def _finished(webhook, status: str, *, age: timedelta = timedelta(0)) -> Delivery:
    code = 200 if status == "succeeded" else 500
    return make_delivery(webhook, status=status, created_at=timezone.now() - age, attempt_log=[(code, "", "")])


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
