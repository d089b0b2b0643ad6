"""Endpoint health and retention: 410 Gone disables at once, endpoints that only fail for
WEBHOOK_DISABLE_AFTER_DAYS are disabled by the hourly maintenance, and old records are dropped
(whole days: tests/deliveries/test_partitions.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import api_client, make_delivery, make_webhook
from django.utils import timezone

from deliveries import drain, periodic, services, tasks
from webhooks import services as webhook_services
from webhooks.models import Webhook

DAY = timedelta(days=1)


def add_delivery(webhook: Webhook, *, age: timedelta, status: str, attempts: int = 1, http: int | None = None):
    """A delivery (and its event and attempt log) created ``age`` ago, its attempts made then."""
    if http is None:
        http = 200 if status == "succeeded" else 500
    log = [(http, "", "")] * attempts
    return make_delivery(webhook, "test.ping", status=status, created_at=timezone.now() - age, attempt_log=log)


def old_webhook(organization, url: str = "https://example.com/hook") -> Webhook:
    """A webhook configured (and last changed) long ago."""
    webhook = make_webhook(organization, url).webhook
    Webhook.objects.filter(id=webhook.id).update(updated_at=timezone.now() - 30 * DAY)
    webhook.refresh_from_db()
    return webhook


# --- 410 Gone ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_webhook_is_disabled_at_once_when_receiver_answers_410(tenant, receiver, redis_client):
    webhook = make_webhook(tenant.organization, receiver.url("/gone")).webhook
    receiver.responses["/gone"] = 410
    delivery = services.delivery_send_test(webhook=webhook, event_type="test.ping")

    drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received("/gone")) == 1
    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.next_attempt_at is None  # no retry after Gone
    body = api_client(tenant.key).get(f"/ui/api/webhooks/{webhook.id}").json()
    assert body["enabled"] is False
    assert body["disabled_reason"] == "receiver answered 410 Gone"
    assert body["disabled_reason_code"] == "gone"


# --- Disabling endpoints that only fail --------------------------------------------------


@pytest.mark.django_db
def test_disable_failing_webhooks_disables_when_every_delivery_failed_for_the_period(tenant, settings):
    settings.WEBHOOK_DISABLE_AFTER_DAYS = 5
    failing = old_webhook(tenant.organization)
    add_delivery(failing, age=6 * DAY, status="failed", attempts=6)
    add_delivery(failing, age=2 * DAY, status="failed", attempts=6, http=None)
    add_delivery(failing, age=timedelta(minutes=5), status="retrying", attempts=1, http=503)

    disabled = periodic.disable_failing_webhooks()

    assert disabled == [failing.id]
    body = api_client(tenant.key).get(f"/ui/api/webhooks/{failing.id}").json()
    assert body["enabled"] is False
    assert body["disabled_reason"] == "every delivery failed for 5 days"
    assert body["disabled_reason_code"] == "failing"


@pytest.mark.django_db
def test_disable_failing_webhooks_counts_failures_after_an_old_success(tenant):
    webhook = old_webhook(tenant.organization)
    add_delivery(webhook, age=10 * DAY, status="succeeded")
    add_delivery(webhook, age=7 * DAY, status="failed", attempts=6)
    add_delivery(webhook, age=DAY, status="failed", attempts=6)

    assert periodic.disable_failing_webhooks() == [webhook.id]


@pytest.mark.django_db
def test_disable_failing_webhooks_keeps_endpoints_that_recovered_or_just_started_failing(tenant):
    recovered = old_webhook(tenant.organization)
    add_delivery(recovered, age=8 * DAY, status="failed", attempts=6)
    add_delivery(recovered, age=DAY, status="succeeded", attempts=2)
    failing_briefly = old_webhook(tenant.organization)
    add_delivery(failing_briefly, age=6 * DAY, status="succeeded")
    add_delivery(failing_briefly, age=2 * DAY, status="failed", attempts=6)
    healthy_then_failed_before_window = old_webhook(tenant.organization)
    add_delivery(healthy_then_failed_before_window, age=7 * DAY, status="failed", attempts=6)
    add_delivery(healthy_then_failed_before_window, age=6 * DAY, status="succeeded")
    never_attempted = old_webhook(tenant.organization)
    add_delivery(never_attempted, age=7 * DAY, status="failed", attempts=0)  # failed while disabled
    already_disabled = old_webhook(tenant.organization)
    Webhook.objects.filter(id=already_disabled.id).update(enabled=False, disabled_reason=Webhook.DisabledReason.USER)
    add_delivery(already_disabled, age=7 * DAY, status="failed", attempts=6)

    assert periodic.disable_failing_webhooks() == []

    assert Webhook.objects.get(id=already_disabled.id).disabled_reason == Webhook.DisabledReason.USER
    assert Webhook.objects.filter(enabled=True).count() == 4


@pytest.mark.django_db
def test_reenabled_webhook_is_not_disabled_again_by_the_next_run(tenant):
    webhook = old_webhook(tenant.organization)
    add_delivery(webhook, age=6 * DAY, status="failed", attempts=6)
    assert periodic.disable_failing_webhooks() == [webhook.id]
    api = api_client(tenant.key)

    body = api.put(f"/ui/api/webhooks/{webhook.id}", {"enabled": True}, format="json").json()

    assert body["enabled"] is True
    assert body["disabled_reason"] == ""
    assert periodic.disable_failing_webhooks() == []
    assert Webhook.objects.get(id=webhook.id).enabled is True


@pytest.mark.django_db
def test_disable_failing_webhooks_is_two_queries_whatever_the_number_of_webhooks(tenant, django_assert_num_queries):
    for _ in range(5):
        webhook = old_webhook(tenant.organization)
        add_delivery(webhook, age=6 * DAY, status="failed", attempts=6)
    for _ in range(5):
        webhook = old_webhook(tenant.organization)
        add_delivery(webhook, age=6 * DAY, status="succeeded")

    # One selects the failing webhooks (deliveries' rule), one disables them (webhooks.services).
    with django_assert_num_queries(2):
        disabled = periodic.disable_failing_webhooks()

    assert len(disabled) == 5


@pytest.mark.django_db
def test_webhooks_disable_leaves_alone_a_webhook_changed_after_it_was_found_failing(tenant):
    """The selection and the write are two statements: an edit between them still wins."""
    found_failing = old_webhook(tenant.organization)
    since = timezone.now() - DAY
    webhook_services.webhook_update(webhook=found_failing, changes={"description": "edited meanwhile"})

    disabled = webhook_services.webhooks_disable(
        webhook_ids=[found_failing.id], reason=Webhook.DisabledReason.FAILING, unchanged_since=since
    )

    assert disabled == []
    assert Webhook.objects.get(id=found_failing.id).enabled is True


# --- Retention ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_maintain_task_disables_when_run(tenant):
    webhook = old_webhook(tenant.organization)
    add_delivery(webhook, age=6 * DAY, status="failed", attempts=6)

    tasks.maintain()

    assert Webhook.objects.get(id=webhook.id).enabled is False
