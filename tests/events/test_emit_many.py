"""emit_many() in process: a batch is stored with its deliveries in one round trip, all or
nothing, in order, and wakes each webhook once."""

from __future__ import annotations

import inspect

import pytest
from conftest import DOCUMENT_EXAMPLES, make_webhook
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

import events
from deliveries import fanout
from deliveries.models import Delivery
from events import emit_many
from events.models import Event
from events.services import EmitError

pytestmark = pytest.mark.django_db(transaction=True)

THREAT = DOCUMENT_EXAMPLES["threat.detected"]


def _threats(count: int, **extra) -> list[dict]:
    return [{"event": "threat.detected", "data": {**THREAT, "threat_id": f"thr_{i}"}, **extra} for i in range(count)]


@pytest.fixture
def wakes(monkeypatch) -> list[list[str]]:
    """The webhook ids of each wake_all() call the fan-out makes (the broker is not the subject)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(fanout, "wake_all", calls.append)
    return calls


def test_events_emit_many_is_the_real_function_with_its_signature():
    from events import services

    assert events.emit_many is services.emit_many
    assert list(inspect.signature(events.emit_many).parameters) == ["organization", "events"]


def test_emit_many_stores_events_and_deliveries_in_one_round_trip_in_order(tenant, receiver, wakes):
    threats = make_webhook(tenant.organization, receiver.url(), events=["threat.detected"]).webhook
    everything = make_webhook(tenant.organization, receiver.url()).webhook
    make_webhook(tenant.organization, receiver.url(), events=["agent.online"])
    make_webhook(tenant.organization, receiver.url(), enabled=False)
    items = [*_threats(3), {"event": "agent.online", "data": {"agent_id": "agt_1"}}]

    with CaptureQueriesContext(connection) as queries:
        stored = emit_many(tenant.organization, items)

    assert len(queries) == 1
    assert [event.type for event in stored] == ["threat.detected"] * 3 + ["agent.online"]
    assert [event.data for event in stored] == [item["data"] for item in items]
    assert list(Event.objects.order_by("created_at").values_list("id", flat=True)) == [e.id for e in stored]
    assert Delivery.objects.filter(webhook=threats).count() == 3
    assert Delivery.objects.filter(webhook=everything).count() == 4
    assert Delivery.objects.count() == 3 + 4 + 1
    assert len(wakes) == 1
    assert sorted(wakes[0]) == sorted(
        {threats.id, everything.id, *Delivery.objects.values_list("webhook_id", flat=True)}
    )
    assert len(wakes[0]) == 3  # each webhook once, however many events it got


def test_emit_many_makes_deliveries_due_in_the_batchs_order(tenant, receiver, wakes):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook

    stored = emit_many(tenant.organization, _threats(20))

    due = list(
        Delivery.objects.filter(webhook=webhook).order_by("next_attempt_at", "id").values_list("event_id", flat=True)
    )
    assert due == [event.id for event in stored]


def test_emit_many_refuses_the_batch_naming_the_item_when_one_is_invalid(tenant, receiver, wakes):
    make_webhook(tenant.organization, receiver.url())
    items = _threats(5)
    items[3]["data"] = {**THREAT, "severity": "urgent"}

    with pytest.raises(EmitError) as refused:
        emit_many(tenant.organization, items)

    assert refused.value.field == "events[3].data.severity"
    assert list(refused.value.fields) == ["events[3].data.severity"]
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert wakes == []


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"event": "threat.exploded", "data": {}}, "events[1].event"),
        ({"event": 7, "data": {}}, "events[1].event"),
        ({"data": {}}, "events[1].event"),
        ({"event": "threat.detected"}, "events[1].data"),
        ({"event": "threat.detected", "data": [1]}, "events[1].data"),
        ({"event": "threat.detected", "data": THREAT, "extra": 1}, "events[1].extra"),
        ({"event": "threat.detected", "data": THREAT, "idempotency_key": ""}, "events[1].idempotency_key"),
        ({"event": "threat.detected", "data": THREAT, "idempotency_key": 5}, "events[1].idempotency_key"),
        ("threat.detected", "events[1]"),
    ],
)
def test_emit_many_refuses_and_stores_nothing_when_an_item_is_malformed(tenant, wakes, item, field):
    with pytest.raises(EmitError) as refused:
        emit_many(tenant.organization, [*_threats(1), item])

    assert refused.value.field == field
    assert not Event.objects.exists()


def test_emit_many_refuses_more_than_the_batch_maximum(tenant, settings, wakes):
    settings.WEBHOOK_BATCH_MAX_EVENTS = 3

    with pytest.raises(EmitError) as refused:
        emit_many(tenant.organization, _threats(4))

    assert refused.value.field == "events"
    assert "WEBHOOK_BATCH_MAX_EVENTS (3)" in refused.value.message
    assert not Event.objects.exists()
    assert len(emit_many(tenant.organization, _threats(3))) == 3


def test_emit_many_answers_repeated_keys_with_the_original_event(tenant, receiver, wakes):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    first = emit_many(tenant.organization, [_threats(1, idempotency_key="k-1")[0]])[0]
    items = [
        {"event": "test.ping", "data": {}, "idempotency_key": "k-2"},
        {"event": "test.ping", "data": {}, "idempotency_key": "k-1"},  # an earlier batch's
        {"event": "test.ping", "data": {}, "idempotency_key": "k-2"},  # this batch's first item
        {"event": "test.ping", "data": {}},
    ]

    stored = emit_many(tenant.organization, items)

    assert stored[1].id == first.id
    assert stored[2].id == stored[0].id
    assert len({stored[0].id, stored[3].id, first.id}) == 3
    assert Event.objects.count() == 3
    assert Event.objects.get(id=stored[0].id).idempotency_key == "k-2"
    assert Delivery.objects.filter(webhook=webhook).count() == 3
    assert emit_many(tenant.organization, items[:3])[0].id == stored[0].id  # nothing new
    assert Event.objects.count() == 3


def test_emit_many_stores_nothing_when_the_callers_transaction_rolls_back(tenant, receiver, wakes):
    make_webhook(tenant.organization, receiver.url())

    with transaction.atomic():
        emit_many(tenant.organization, _threats(3))
        transaction.set_rollback(True)

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert wakes == []


def test_emit_many_stores_no_event_when_one_delivery_cannot_be_stored(tenant, receiver, wakes):
    make_webhook(tenant.organization, receiver.url())
    with connection.cursor() as cursor:
        # The third delivery of the batch is refused, as a constraint or a full disk would.
        cursor.execute(
            "CREATE FUNCTION refuse_third() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF (SELECT count(*) FROM deliveries_delivery) >= 2 THEN RAISE EXCEPTION 'third refused'; END IF;"
            " RETURN NEW; END $$;"
            " CREATE TRIGGER refuse_third BEFORE INSERT ON deliveries_delivery"
            " FOR EACH ROW EXECUTE FUNCTION refuse_third()"
        )
    try:
        with pytest.raises(DatabaseError, match="third refused"):
            emit_many(tenant.organization, _threats(5))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_third ON deliveries_delivery; DROP FUNCTION refuse_third()")

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert wakes == []


def test_emit_many_of_nothing_stores_nothing(tenant, wakes):
    with CaptureQueriesContext(connection) as queries:
        assert emit_many(tenant.organization, []) == []
    assert len(queries) == 0


def test_emit_many_refuses_an_unknown_organization(wakes):
    with pytest.raises(EmitError) as refused:
        emit_many("org_doesnotexist", _threats(2))
    assert refused.value.field == "organization"
