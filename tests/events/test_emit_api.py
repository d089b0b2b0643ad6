"""``POST /ui/api/events``: what is accepted is stored intact, what is refused stores nothing."""

from __future__ import annotations

import json

import pytest
from conftest import DOCUMENT_EXAMPLES, api_client, assert_refused_storing_nothing
from django.conf import settings

from events.models import Event

pytestmark = pytest.mark.django_db


THREAT = DOCUMENT_EXAMPLES["threat.detected"]


def _emit(api, body, **headers):
    return api.post("/ui/api/events", body, format="json", **headers)


def test_emit_event_stores_payload_when_valid(api, tenant):
    response = _emit(api, {"event": "threat.detected", "data": THREAT})
    assert response.status_code == 202, response.content
    event_id = response.json()["id"]
    assert event_id.startswith("evt_")
    event = Event.objects.get(id=event_id)
    assert event.organization_id == tenant.organization.id
    assert event.type == "threat.detected"
    envelope = json.loads(event.payload)
    assert envelope["event"] == "threat.detected"
    assert envelope["organization_id"] == tenant.organization.id
    assert envelope["id"] == event_id
    assert envelope["data"] == THREAT


def test_emit_event_keeps_data_intact_when_unicode_and_numbers(api):
    data = {
        "policy": {"id": "pol_ü"},
        "text": "Schlüssel — 日本語 🔥 \u2028",
        "10": 1,
        "2": [1.5, None, False],
        "nested": {"deep": {"x": -0.25}},
    }
    response = _emit(api, {"event": "policy.violation", "data": data})
    assert response.status_code == 202, response.content
    assert Event.objects.get(id=response.json()["id"]).data == data


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "threat.exploded", "data": {}}, "event"),
        ({"event": "", "data": {}}, "event"),
        ({"event": 7, "data": {}}, "event"),
        ({"data": {}}, "event"),
        ({"event": "threat.detected"}, "data"),
        ({"event": "threat.detected", "data": None}, "data"),
        ({"event": "threat.detected", "data": [1, 2]}, "data"),
        ({"event": "threat.detected", "data": "text"}, "data"),
        ({"event": "threat.detected", "data": 5}, "data"),
        ({"event": "threat.detected", "data": {"n": 2**1100}}, "data"),
        ({"event": "threat.detected", "data": {}, "extra": 1}, "extra"),
        ([{"event": "threat.detected", "data": {}}], "body"),
    ],
)
def test_emit_event_refuses_and_stores_nothing_when_invalid(api, body, field):
    assert_refused_storing_nothing(_emit(api, body), 400, field)


def test_emit_event_lists_valid_types_when_type_unknown(api):
    body = assert_refused_storing_nothing(_emit(api, {"event": "threat.exploded", "data": {}}), 400, "event")
    assert "threat.detected" in body["message"]
    assert "policy.violation" in body["message"]


@pytest.mark.parametrize("raw", ['{"event": "threat.detected", "data": {', '{"event": "x", "data": {"n": NaN}}'])
def test_emit_event_refuses_and_stores_nothing_when_json_malformed(api, raw):
    assert_refused_storing_nothing(api.post("/ui/api/events", raw, content_type="application/json"), 400, "body")


def _body_of_size(size: int) -> str:
    head, tail = '{"event": "threat.detected", "data": {"threat_id": "t", "severity": "low", "blob": "', '"}}'
    body = head + "x" * (size - len(head) - len(tail)) + tail
    assert len(body.encode()) == size
    return body


def test_emit_event_answers_413_and_stores_nothing_when_body_over_limit(api):
    body = _body_of_size(settings.WEBHOOK_MAX_PAYLOAD_BYTES + 1)
    response = api.post("/ui/api/events", body, content_type="application/json")
    assert_refused_storing_nothing(response, 413)
    assert response.json()["error"] == "payload_too_large"


def test_emit_event_accepts_and_stores_intact_when_body_at_limit(api):
    body = _body_of_size(settings.WEBHOOK_MAX_PAYLOAD_BYTES)
    response = api.post("/ui/api/events", body, content_type="application/json")
    assert response.status_code == 202, response.content[:300]
    assert Event.objects.get(id=response.json()["id"]).data == json.loads(body)["data"]


def test_emit_event_returns_original_when_idempotency_key_repeated(api):
    first = _emit(api, {"event": "agent.online", "data": {"agent_id": "a"}}, HTTP_IDEMPOTENCY_KEY="k-1")
    second = _emit(api, {"event": "agent.online", "data": {"agent_id": "a"}}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert Event.objects.count() == 1


def test_emit_event_stores_new_event_when_idempotency_key_differs(api):
    first = _emit(api, {"event": "agent.online", "data": {"agent_id": "a"}}, HTTP_IDEMPOTENCY_KEY="k-1")
    second = _emit(api, {"event": "agent.online", "data": {"agent_id": "a"}}, HTTP_IDEMPOTENCY_KEY="k-2")
    third = _emit(api, {"event": "agent.online", "data": {"agent_id": "a"}})
    assert len({first.json()["id"], second.json()["id"], third.json()["id"]}) == 3
    assert Event.objects.count() == 3


def test_emit_event_keeps_organizations_apart_when_same_idempotency_key(api, tenant, other_tenant):
    mine = _emit(api, {"event": "agent.online", "data": {"agent_id": "a"}}, HTTP_IDEMPOTENCY_KEY="shared")
    theirs = _emit(
        api_client(other_tenant.key),
        {"event": "agent.online", "data": {"agent_id": "a"}},
        HTTP_IDEMPOTENCY_KEY="shared",
    )
    assert mine.json()["id"] != theirs.json()["id"]
    assert Event.objects.get(id=mine.json()["id"]).organization_id == tenant.organization.id
    assert Event.objects.get(id=theirs.json()["id"]).organization_id == other_tenant.organization.id


def test_emit_event_refuses_idempotency_key_when_too_long(api):
    response = _emit(api, {"event": "agent.online", "data": {"agent_id": "a"}}, HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert_refused_storing_nothing(response, 400, "idempotency_key")
