"""``POST /ui/api/events/batch``: a batch is stored all or none, answered in order, charged
per event; what is refused names the item and stores nothing."""

from __future__ import annotations

import pytest
from conftest import DOCUMENT_EXAMPLES, api_client, assert_refused_storing_nothing, make_webhook
from django.conf import settings

from deliveries.models import Delivery
from events.models import Event

pytestmark = pytest.mark.django_db

THREAT = DOCUMENT_EXAMPLES["threat.detected"]
BATCH = "/ui/api/events/batch"


def _threats(count: int) -> list[dict]:
    return [{"event": "threat.detected", "data": {**THREAT, "threat_id": f"thr_{i}"}} for i in range(count)]


def _post(api, body):
    return api.post(BATCH, body, format="json")


def test_batch_stores_every_event_and_answers_their_ids_in_order(api, tenant, receiver):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    items = [*_threats(3), {"event": "agent.online", "data": {"agent_id": "agt_1"}}]

    response = _post(api, {"events": items})

    assert response.status_code == 202, response.content
    ids = response.json()["ids"]
    assert len(ids) == 4
    stored = Event.objects.in_bulk(ids)
    assert [stored[event_id].data for event_id in ids] == [item["data"] for item in items]
    assert all(stored[event_id].organization_id == tenant.organization.id for event_id in ids)
    assert Delivery.objects.filter(webhook=webhook).count() == 4


def test_batch_refuses_the_batch_naming_the_invalid_item(api, tenant, receiver):
    make_webhook(tenant.organization, receiver.url())
    items = _threats(5)
    items[3]["data"] = {**THREAT, "severity": "urgent"}

    body = assert_refused_storing_nothing(_post(api, {"events": items}), 400, "events[3].data.severity", only=True)

    assert body["message"].startswith("events[3].data.severity: 'urgent' is not one of")
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": {"event": "threat.detected"}}, "events"),
        ({}, "events"),
        ({"events": _threats(1), "extra": 1}, "extra"),
        ([_threats(1)], "body"),
        ({"events": [*_threats(1), 7]}, "events[1]"),
        ({"events": [*_threats(1), {"event": "threat.detected", "data": THREAT, "idempotency_key": "k" * 256}]}, None),
    ],
)
def test_batch_refuses_and_stores_nothing_when_malformed(api, body, field):
    response = _post(api, body)
    assert_refused_storing_nothing(response, 400, field or "events[1].idempotency_key", only=True)


def test_batch_refuses_more_than_the_maximum_before_judging_an_item(api, settings):
    settings.WEBHOOK_BATCH_MAX_EVENTS = 3

    body = assert_refused_storing_nothing(_post(api, {"events": [{"event": "nope"}] * 4}), 400, "events", only=True)

    assert "WEBHOOK_BATCH_MAX_EVENTS (3)" in body["message"]
    assert _post(api, {"events": _threats(3)}).status_code == 202


def test_batch_answers_413_and_stores_nothing_when_the_whole_body_is_over_the_limit(api):
    blob = "x" * (settings.WEBHOOK_MAX_PAYLOAD_BYTES // 4)
    items = [{"event": "threat.detected", "data": {**THREAT, "blob": blob}} for _ in range(4)]

    response = _post(api, {"events": items})

    assert_refused_storing_nothing(response, 413)
    assert response.json()["error"] == "payload_too_large"


def test_batch_answers_repeated_keys_with_the_original_ids(api):
    first = _post(api, {"events": [{"event": "test.ping", "data": {}, "idempotency_key": "k-1"}]}).json()["ids"][0]
    items = [
        {"event": "test.ping", "data": {}, "idempotency_key": "k-2"},
        {"event": "test.ping", "data": {}, "idempotency_key": "k-1"},
        {"event": "test.ping", "data": {}, "idempotency_key": "k-2"},
    ]

    ids = _post(api, {"events": items}).json()["ids"]

    assert ids[1] == first
    assert ids[2] == ids[0] != first
    assert Event.objects.count() == 2
    assert _post(api, {"events": items}).json()["ids"] == ids


def test_batch_keeps_organizations_apart(api, tenant, other_tenant, receiver):
    theirs = make_webhook(other_tenant.organization, receiver.url()).webhook

    mine = _post(api, {"events": _threats(2)}).json()["ids"]
    other = _post(api_client(other_tenant.key), {"events": _threats(1)}).json()["ids"]

    assert set(Event.objects.filter(organization=tenant.organization).values_list("id", flat=True)) == set(mine)
    assert list(Delivery.objects.values_list("event_id", flat=True)) == other
    assert Delivery.objects.get().webhook_id == theirs.id


def test_batch_is_charged_one_per_event_all_or_none(api, settings, redis_client):
    settings.API_EVENTS_THROTTLE_RATE = "5/min"

    assert _post(api, {"events": _threats(3)}).status_code == 202
    refused = _post(api, {"events": _threats(3)})  # 6 > 5: refused whole, nothing counted

    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert Event.objects.count() == 3
    assert _post(api, {"events": _threats(2)}).status_code == 202
    assert api.post("/ui/api/events", _threats(1)[0], format="json").status_code == 429


def test_batch_refuses_an_idempotency_key_with_a_nul_character(api):
    item = {"event": "test.ping", "data": {}, "idempotency_key": "k\x00"}
    assert_refused_storing_nothing(_post(api, {"events": [item]}), 400, "events[0].idempotency_key", only=True)
