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


BEFORE_DISABLED_REASON_CHOICES = [("webhooks", "0002_membership")]
# What earlier releases stored as the reason, and the choice each becomes.
STORED_SENTENCES = {
    "": "",
    "disabled by user": "user",
    "disabled by an operator": "operator",
    "receiver answered 410 Gone": "gone",
    "every delivery failed for 7 days": "failing",
}


def test_upgrade_turns_stored_disable_sentences_into_reasons_and_back():
    old = _migrate(BEFORE_DISABLED_REASON_CHOICES).loader.project_state(BEFORE_DISABLED_REASON_CHOICES).apps
    try:
        Organization, Webhook = old.get_model("webhooks.Organization"), old.get_model("webhooks.Webhook")
        org = Organization.objects.create(id="org_1", name="Acme")
        for number, sentence in enumerate(STORED_SENTENCES):
            Webhook.objects.create(
                id=f"whk_{number}", organization=org, url="https://a.example/", enabled=not sentence,
                disabled_reason=sentence,
            )  # fmt: skip
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    from webhooks.models import Webhook as Current

    stored = dict(Current.objects.values_list("id", "disabled_reason"))
    assert [stored[f"whk_{n}"] for n in range(len(STORED_SENTENCES))] == list(STORED_SENTENCES.values())

    _migrate(BEFORE_DISABLED_REASON_CHOICES)
    try:
        back = dict(Current.objects.values_list("id", "disabled_reason"))
        # The days come from WEBHOOK_DISABLE_AFTER_DAYS: what a downgrade can know.
        assert back["whk_4"] == "every delivery failed for 5 days"
        assert [back[f"whk_{n}"] for n in range(4)] == list(STORED_SENTENCES)[:4]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
