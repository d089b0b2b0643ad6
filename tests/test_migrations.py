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


# The previous release: events, deliveries and attempts in plain tables.
BEFORE_PARTITIONED_HISTORY = [
    ("webhooks", "0003_disabled_reason_choices"),
    ("events", "0002_event_fans_out_at_emit"),
    ("deliveries", "0006_attempt_response_body_replaced"),
]


@pytest.mark.e2e
def test_upgrade_partitions_the_history_with_nothing_lost_and_everything_still_delivered(
    receiver, start_worker, history
):
    from datetime import timedelta

    from conftest import api_client, wait_until

    from webhooks import crypto

    receiver.responses["/hook"] = 200
    old = _migrate(BEFORE_PARTITIONED_HISTORY).loader.project_state(BEFORE_PARTITIONED_HISTORY).apps
    try:
        Organization, Webhook = old.get_model("webhooks.Organization"), old.get_model("webhooks.Webhook")
        Event, Delivery = old.get_model("events.Event"), old.get_model("deliveries.Delivery")
        Attempt = old.get_model("deliveries.Attempt")
        org = Organization.objects.create(id="org_1", name="Acme")
        webhook = Webhook.objects.create(
            id="whk_1", organization=org, url=receiver.url("/hook"), events=["*"],
            secret_encrypted=crypto.encrypt("whsec_upgrade"),
        )  # fmt: skip
        now = timezone.now()
        rows = {  # event id: (age, delivery status, attempts made)
            "evt_done": (timedelta(days=9), "succeeded", 1),
            "evt_retrying": (timedelta(days=2), "retrying", 2),  # mid-retry: due now
            "evt_pending": (timedelta(minutes=5), "pending", 0),
        }
        for event_id, (age, status, attempts) in rows.items():
            event = Event.objects.create(
                id=event_id,
                organization=org,
                type="test.ping",
                payload=f'{{"id": "{event_id}"}}',
                created_at=now - age,
                idempotency_key=f"key-{event_id}",
            )
            delivery = Delivery.objects.create(
                id=event_id.replace("evt", "dlv"), organization=org, webhook=webhook, event=event,
                event_type="test.ping", status=status, attempts=attempts, created_at=event.created_at,
                next_attempt_at=None if status == "succeeded" else now,
                response_status=(200 if status == "succeeded" else 500) if attempts else None,
            )  # fmt: skip
            for number in range(1, attempts + 1):
                Attempt.objects.create(
                    delivery=delivery, number=number, requested_at=event.created_at + timedelta(seconds=number),
                    response_status=200 if status == "succeeded" else 500,
                )  # fmt: skip
        attempt_ids = sorted(Attempt.objects.values_list("id", flat=True))
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    from deliveries.models import Attempt as CurrentAttempt
    from deliveries.models import Delivery as CurrentDelivery
    from deliveries.partitions import HISTORY_TABLES, partitions_of
    from events import services as events
    from events.models import Event as CurrentEvent
    from webhooks.models import Organization as CurrentOrganization
    from webhooks.services import api_key_create

    # Everything is there, each row in its own day's partition (none in the default one).
    assert sorted(CurrentAttempt.objects.values_list("id", flat=True)) == attempt_ids
    assert set(CurrentEvent.objects.values_list("id", flat=True)) == set(rows)
    with connection.cursor() as cursor:
        for table in HISTORY_TABLES:
            cursor.execute(f"SELECT count(*) FROM {table}_default")
            assert cursor.fetchone()[0] == 0, table
            assert len(partitions_of(table)) >= 10, table  # 9 days back to the premade days ahead
    for attempt in CurrentAttempt.objects.select_related("delivery"):
        assert attempt.delivery_created_at == attempt.delivery.created_at

    # A real worker (and beat's sweeper, which finds them) delivers what was due: the delivery
    # mid-retry (its third attempt) and the pending one.
    start_worker(beat=True)
    wait_until(lambda: len(receiver.received("/hook")) >= 2, timeout=30, message="due deliveries not delivered")
    retried = wait_until(lambda: CurrentDelivery.objects.filter(id="dlv_retrying", status="succeeded").first())
    assert retried.attempts == 3
    assert list(CurrentAttempt.objects.filter(delivery=retried).values_list("number", flat=True)) == [1, 2, 3]

    # New events are stored and delivered; a key from before the upgrade still answers its event.
    new = events.emit("org_1", "agent.online", {"agent_id": "agt_1"})
    assert events.emit("org_1", "agent.online", {"agent_id": "agt_1"}, idempotency_key="key-evt_pending").id == (
        "evt_pending"
    )
    wait_until(lambda: CurrentDelivery.objects.filter(event_id=new.id, status="succeeded").exists(), timeout=30)

    # The history shows them all, old and new, with their attempts.
    _, key = api_key_create(organization=CurrentOrganization.objects.get(id="org_1"))
    client = api_client(key)
    shown = {row["id"]: row for row in history(client, "whk_1")}
    assert {"dlv_done", "dlv_retrying", "dlv_pending"} <= set(shown)
    assert len(shown) == 4
    assert shown["dlv_retrying"]["attempts"] == 3
    assert shown["dlv_done"]["status"] == "succeeded"


# The previous release: attempts without their webhook; the stats probed them delivery by delivery.
BEFORE_ATTEMPT_WEBHOOK = [
    ("webhooks", "0004_webhook_filter"),
    ("events", "0003_idempotency_key_index"),
    ("deliveries", "0008_attempt_index_covers_stats"),
]


def test_upgrade_gives_every_attempt_its_webhook_and_the_stats_still_count_them():
    from datetime import timedelta

    old = _migrate(BEFORE_ATTEMPT_WEBHOOK).loader.project_state(BEFORE_ATTEMPT_WEBHOOK).apps
    try:
        Organization, Webhook = old.get_model("webhooks.Organization"), old.get_model("webhooks.Webhook")
        Event, Delivery = old.get_model("events.Event"), old.get_model("deliveries.Delivery")
        Attempt = old.get_model("deliveries.Attempt")
        org = Organization.objects.create(id="org_1", name="Acme")
        now = timezone.now()
        for name, durations in {"whk_a": [100, 300], "whk_b": [40]}.items():
            webhook = Webhook.objects.create(id=name, organization=org, url="https://a.example/", events=["*"])
            event = Event.objects.create(
                id=f"evt_{name}", organization=org, type="test.ping", payload="{}", created_at=now - timedelta(hours=1)
            )
            delivery = Delivery.objects.create(
                id=f"dlv_{name}", organization=org, webhook=webhook, event=event, event_type="test.ping",
                status="succeeded", attempts=len(durations), created_at=event.created_at,
            )  # fmt: skip
            for number, duration in enumerate(durations, start=1):
                Attempt.objects.create(
                    delivery=delivery, number=number, requested_at=now, response_status=200,
                    duration_ms=duration, delivery_created_at=delivery.created_at,
                )  # fmt: skip
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    from deliveries.models import Attempt as CurrentAttempt
    from deliveries.selectors import webhook_stats
    from webhooks.models import Webhook as CurrentWebhook

    assert sorted(CurrentAttempt.objects.values_list("delivery_id", "webhook_id")) == [
        ("dlv_whk_a", "whk_a"),
        ("dlv_whk_a", "whk_a"),
        ("dlv_whk_b", "whk_b"),
    ]
    stats = webhook_stats(CurrentWebhook.objects.get(id="whk_a"), window=timedelta(days=1))
    assert (stats.latency_p50_ms, stats.latency_p95_ms) == (200.0, 290.0)
    assert stats.rates.attempts == 2
