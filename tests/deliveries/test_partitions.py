"""The history's daily partitions (deliveries/partitions.py, migration deliveries 0007): made
ahead, a default partition that refuses nothing, retention that drops whole days, and the keys
that partitioning constrains (ids, attempt numbers, idempotency keys) keeping their guarantees."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from conftest import make_delivery, make_webhook
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from deliveries import partitions, tasks
from deliveries.models import Attempt, Delivery
from events import services as events
from events.models import Event
from webhooks.models import Webhook

DAY = timedelta(days=1)


def add_delivery(webhook: Webhook, *, age: timedelta, attempts: int = 1) -> Delivery:
    log = [(500, "", "HTTP 500")] * attempts
    return make_delivery(webhook, "test.ping", status="failed", created_at=timezone.now() - age, attempt_log=log)


def day_of(table: str, partition: str) -> str:
    return partition.removeprefix(f"{table}_p")  # pg_partman's names: <table>_pYYYY_MM_DD


def partition_holding(table: str, row_id: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE id = %s", [row_id])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_premake_makes_every_table_a_partition_per_day_ahead_when_run(settings):
    settings.WEBHOOK_PARTITION_PREMAKE_DAYS = 10
    partitions.partitions_premake()

    today = timezone.now().date()
    ahead = [(today + n * DAY).strftime("%Y_%m_%d") for n in range(11)]
    for table in partitions.HISTORY_TABLES:
        days = [day_of(table, name) for name in partitions.partitions_of(table)]
        assert set(ahead) <= set(days), table


@pytest.mark.django_db
def test_rows_outside_every_partition_land_in_the_default_and_move_to_their_day_when_premade(tenant, settings):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    later = make_delivery(webhook, created_at=timezone.now() + 60 * DAY, attempt_log=[(500, "", "")])

    assert partition_holding("deliveries_delivery", later.id) == "deliveries_delivery_default"  # not refused
    assert partition_holding("events_event", later.event_id) == "events_event_default"

    assert partitions.partitions_premake() == 3  # the event, the delivery and its attempt

    day = later.created_at.strftime("%Y_%m_%d")
    assert partition_holding("deliveries_delivery", later.id) == f"deliveries_delivery_p{day}"
    assert partition_holding("events_event", later.event_id) == f"events_event_p{day}"
    assert Attempt.objects.get(delivery_id=later.id).number == 1


@pytest.mark.django_db(transaction=True)  # a drop is its own transaction
def test_retention_drops_whole_days_past_retention_when_maintained(tenant, other_tenant, settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    other = make_webhook(other_tenant.organization, "https://example.com/b").webhook
    old = [add_delivery(webhook, age=31 * DAY, attempts=3) for _ in range(3)]
    old += [add_delivery(other, age=40 * DAY) for _ in range(2)]
    kept = [add_delivery(webhook, age=29 * DAY), add_delivery(other, age=DAY)]
    partitions.partitions_premake()  # the old days get their partitions (see the test above)

    dropped = partitions.partitions_drop_expired()

    assert dropped == 6  # days 31 and 40 ago, in each of the three tables
    assert set(Delivery.objects.values_list("id", flat=True)) == {d.id for d in kept}
    assert set(Event.objects.values_list("id", flat=True)) == {d.event_id for d in kept}
    assert not Attempt.objects.filter(delivery_id__in=[d.id for d in old]).exists()
    assert Attempt.objects.filter(delivery_id__in=[d.id for d in kept]).count() == 2
    cutoff = (timezone.now() - 30 * DAY).strftime("%Y_%m_%d")
    for table in partitions.HISTORY_TABLES:
        assert min(day_of(table, name) for name in partitions.partitions_of(table)) >= cutoff
    # Nothing was deleted row by row: the days are gone, the kept partitions have no dead rows.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM deliveries_delivery WHERE created_at < now() - interval '30 days'")
        assert cursor.fetchone()[0] == 0
    assert partitions.partitions_drop_expired() == 0


@pytest.mark.django_db(transaction=True)  # a drop is its own transaction
def test_partitions_task_premakes_and_drops_when_run(tenant, settings):
    settings.WEBHOOK_RETENTION_DAYS = 3
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    add_delivery(webhook, age=6 * DAY)
    recent = add_delivery(webhook, age=DAY)

    tasks.maintain_partitions()

    assert list(Delivery.objects.values_list("id", flat=True)) == [recent.id]
    assert "deliveries.partitions" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}


@pytest.mark.django_db(transaction=True)  # a drop is its own transaction
def test_retention_leaves_a_table_for_the_next_run_when_its_lock_is_not_granted(tenant, settings):
    settings.WEBHOOK_RETENTION_DAYS = 3
    settings.WEBHOOK_PARTITION_LOCK_TIMEOUT = 100
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    old = add_delivery(webhook, age=6 * DAY)
    partitions.partitions_premake()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:  # a long read holds the attempts' parent
            cursor.execute("BEGIN; SELECT count(*) FROM deliveries_attempt")
            assert partitions.partitions_drop_expired() == 0
            cursor.execute("ROLLBACK")
    finally:
        other.close()

    assert Delivery.objects.filter(id=old.id).exists()
    assert partitions.partitions_drop_expired() == 3


# --- Keys under partitioning -------------------------------------------------------------


@pytest.mark.django_db
def test_primary_keys_include_the_day_and_ids_stay_unique_when_generated_in_sql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conrelid::regclass::text, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE c.contype = 'p' AND c.conrelid::regclass::text = ANY(%s)",
            [list(partitions.HISTORY_TABLES)],
        )
        keys = dict(cursor.fetchall())
        # Uniqueness of ids is the generator's (ms clock + 80 random bits); 200,000 of them in
        # one statement, as fast as the fan-out makes them, never repeat.
        cursor.execute("SELECT count(DISTINCT new_id('dlv')) FROM generate_series(1, 200000)")
        distinct = cursor.fetchone()[0]
    assert keys == {
        "events_event": "PRIMARY KEY (id, created_at)",
        "deliveries_delivery": "PRIMARY KEY (id, created_at)",
        "deliveries_attempt": "PRIMARY KEY (id, delivery_created_at)",
    }
    assert distinct == 200000


@pytest.mark.django_db
def test_rows_are_found_by_id_alone_in_any_partition(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    deliveries = [add_delivery(webhook, age=days * DAY) for days in (0, 3, 12)]

    for delivery in deliveries:
        found = Delivery.objects.select_related("event").get(id=delivery.id)
        assert found.event.id == delivery.event_id
        assert [a.number for a in found.attempt_log.all()] == [1]


@pytest.mark.django_db
def test_an_attempt_number_is_recorded_once_per_delivery_when_partitioned(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/a").webhook
    delivery = add_delivery(webhook, age=2 * DAY)
    first = Attempt.objects.get(delivery=delivery)
    assert first.delivery_created_at == delivery.created_at  # lives in its delivery's day

    with pytest.raises(IntegrityError), transaction.atomic():
        Attempt.objects.create(delivery=delivery, number=1, requested_at=timezone.now())


@pytest.mark.django_db
def test_an_idempotency_key_is_unique_per_organization_across_partitions(tenant, other_tenant):
    org = tenant.organization
    Event.objects.create(
        organization=org, type="test.ping", payload="{}", idempotency_key="k-1", created_at=timezone.now() - 2 * DAY
    )

    # Another day, another partition: still refused, as the unique index did.
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(organization=org, type="test.ping", payload="{}", idempotency_key="k-1")
    # Other organizations, and events without a key, are not affected.
    Event.objects.create(organization=other_tenant.organization, type="test.ping", payload="{}", idempotency_key="k-1")
    Event.objects.create(organization=org, type="test.ping", payload="{}")
    Event.objects.create(organization=org, type="test.ping", payload="{}")
    assert Event.objects.filter(idempotency_key="k-1").count() == 2


@pytest.mark.django_db
def test_an_idempotency_key_older_than_the_window_is_free_again_in_a_later_partition(tenant, settings):
    settings.WEBHOOK_IDEMPOTENCY_WINDOW = 3600
    old = events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"}, idempotency_key="k-2")
    Event.objects.filter(id=old.id).update(created_at=timezone.now() - 2 * DAY)  # moves it two days back

    again = events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"}, idempotency_key="k-2")
    repeat = events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"}, idempotency_key="k-2")

    assert again.id != old.id
    assert repeat.id == again.id
    assert Event.objects.get(id=old.id).idempotency_key is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_emits_of_one_idempotency_key_store_one_event(tenant):
    org_id = tenant.organization.id
    other = connections.create_connection("default")
    results: list[str] = []
    try:
        with other.cursor() as cursor:
            # A first emit of the key, not yet committed, in another session.
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO events_event (id, organization_id, type, payload, created_at, idempotency_key)"
                " VALUES ('evt_first', %s, 'agent.online', '{}', now(), 'k-3')",
                [org_id],
            )

            def second() -> None:
                try:
                    event = events.emit(org_id, "agent.online", {"agent_id": "agt_1"}, idempotency_key="k-3")
                    results.append(event.id)
                finally:
                    connection.close()

            thread = threading.Thread(target=second)
            thread.start()
            thread.join(timeout=1)
            assert thread.is_alive()  # waiting for the first to commit or roll back
            cursor.execute("COMMIT")
            thread.join(timeout=10)
    finally:
        other.close()

    assert results == ["evt_first"]  # the second emit answers the first's event
    assert list(Event.objects.filter(idempotency_key="k-3").values_list("id", flat=True)) == ["evt_first"]


@pytest.mark.django_db
def test_deliveries_carry_their_event_created_at_whichever_door_made_them(tenant):
    # The claim reads a delivery's payload from its event's partition by this created_at (no
    # foreign key holds it): every writer of deliveries must copy the event's.
    from deliveries.services import delivery_send_test

    webhooks = [make_webhook(tenant.organization, f"https://example.com/{n}").webhook for n in range(2)]
    emitted = events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    tested = delivery_send_test(webhook=webhooks[0], event_type="test.ping")

    rows = list(Delivery.objects.filter(event_id__in=[emitted.id, tested.event_id]).select_related("event"))
    assert len(rows) == 3
    assert all(row.created_at == row.event.created_at for row in rows)
