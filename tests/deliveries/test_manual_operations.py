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


# --- A disabled webhook: 409, nothing queued ---------------------------------------------------

ENABLE_FIRST = "Webhook {id} is disabled (disabled by user). Enable it first, then {then}. Nothing was queued."


def _disabled_webhook(tenant):
    from webhooks.services import webhook_update

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    return webhook_update(webhook=webhook, changes={"enabled": False})


def _assert_conflict(response, message: str) -> None:
    assert response.status_code == 409, response.content
    assert response.json() == {"error": "conflict", "message": message}


def test_retry_answers_409_and_queues_nothing_when_webhook_disabled(api, tenant, django_capture_on_commit_callbacks):
    webhook = _disabled_webhook(tenant)
    delivery = _finished(webhook, "failed")

    with django_capture_on_commit_callbacks() as wakes:
        response = api.post(f"/ui/api/webhooks/{webhook.id}/deliveries/{delivery.id}/retry")

    _assert_conflict(response, ENABLE_FIRST.format(id=webhook.id, then="retry"))
    assert wakes == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == ("failed", None)


def test_recover_answers_409_and_queues_nothing_when_webhook_disabled(api, tenant, django_capture_on_commit_callbacks):
    webhook = _disabled_webhook(tenant)
    failed = _finished(webhook, "failed")
    since = (timezone.now() - timedelta(days=1)).isoformat()

    with django_capture_on_commit_callbacks() as wakes:
        response = api.post(f"/ui/api/webhooks/{webhook.id}/recover", {"since": since}, format="json")

    _assert_conflict(response, ENABLE_FIRST.format(id=webhook.id, then="recover its deliveries"))
    assert wakes == []
    assert Delivery.objects.get(id=failed.id).status == "failed"


def test_test_event_answers_409_and_stores_nothing_when_webhook_disabled(api, tenant):
    from events.models import Event

    webhook = _disabled_webhook(tenant)

    response = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id, "event": "test.ping"}, format="json")

    _assert_conflict(response, ENABLE_FIRST.format(id=webhook.id, then="send a test event"))
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_retry_names_the_reason_when_webhook_was_disabled_by_a_410(api, tenant):
    from webhooks.models import Webhook
    from webhooks.services import webhook_disable

    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    delivery = _finished(webhook, "failed")
    webhook_disable(webhook_id=webhook.id, reason=Webhook.DisabledReason.GONE)

    response = api.post(f"/ui/api/webhooks/{webhook.id}/deliveries/{delivery.id}/retry")

    _assert_conflict(
        response,
        f"Webhook {webhook.id} is disabled (receiver answered 410 Gone). Enable it first, then retry. "
        "Nothing was queued.",
    )
