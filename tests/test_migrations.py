"""Upgrading a running installation: what the previous release left half done is finished."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

# The previous release: a fan-out task created an event's deliveries after emit committed.
BEFORE_FAN_OUT_AT_EMIT = [
    ("webhooks", "0002_membership"),
    ("events", "0001_initial"),
    ("deliveries", "0003_webhook_fk_index"),
]


def _migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor


def test_upgrade_creates_the_deliveries_of_events_the_old_fan_out_task_had_not_reached():
    old = _migrate(BEFORE_FAN_OUT_AT_EMIT).loader.project_state(BEFORE_FAN_OUT_AT_EMIT).apps
    try:
        Organization, Webhook = old.get_model("webhooks.Organization"), old.get_model("webhooks.Webhook")
        Event, Delivery = old.get_model("events.Event"), old.get_model("deliveries.Delivery")
        org = Organization.objects.create(id="org_1", name="Acme")
        subscribed = Webhook.objects.create(id="whk_all", organization=org, url="https://a.example/", events=["*"])
        Webhook.objects.create(id="whk_off", organization=org, url="https://b.example/", events=["*"], enabled=False)
        Webhook.objects.create(id="whk_other", organization=org, url="https://c.example/", events=["agent.online"])
        now = timezone.now()
        waiting = Event.objects.create(
            id="evt_waiting", organization=org, type="test.ping", payload="{}", created_at=now
        )
        done = Event.objects.create(
            id="evt_done", organization=org, type="test.ping", payload="{}", created_at=now, fanned_out_at=now
        )
        Delivery.objects.create(
            id="dlv_done", organization=org, webhook=subscribed, event=done, event_type="test.ping", created_at=now
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    from deliveries.models import Delivery as Current

    created = list(Current.objects.filter(event_id=waiting.id).values_list("webhook_id", "status"))
    assert created == [("whk_all", "pending")]
    assert Current.objects.filter(event_id=done.id).count() == 1  # already fanned out: nothing added
