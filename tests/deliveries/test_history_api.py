"""Delivery history (``/ui/api/webhooks/{id}/deliveries``) and test events
(``/ui/api/webhooks/test``) through the API; rows are made directly with the ORM."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from conftest import make_delivery, make_webhook
from django.utils import timezone

from deliveries.models import Attempt, Delivery
from events.catalogue import EVENT_TYPES
from events.models import Event

pytestmark = pytest.mark.django_db


PUBLIC_URL = "https://93.184.216.34/hook"
LIST_FIELDS = {
    "id",
    "event_id",
    "event",
    "status",
    "attempts",
    "response_status",
    "created_at",
    "last_attempt_at",
    "next_attempt_at",
}
# Fields the list may show beyond the required ones.
OPTIONAL_FIELDS = {"webhook_id", "last_error"}
ATTEMPT_FIELDS = {
    "number",
    "requested_at",
    "response_status",
    "duration_ms",
    "error",
    "response_body",
    "response_body_replaced",
}


@pytest.fixture
def webhook(tenant):
    return make_webhook(tenant.organization, PUBLIC_URL, ["*"], secret="webhook_secret").webhook


def _history(api, webhook_id: str, query: str = "") -> list[dict]:
    response = api.get(f"/ui/api/webhooks/{webhook_id}/deliveries{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_delivery_history_lists_newest_first_with_documented_fields(api, webhook):
    now = timezone.now()
    ages = [5, 1, 3, 2, 4]  # created out of order: ids and times disagree
    for minutes in ages:
        make_delivery(webhook, created_at=now - timedelta(minutes=minutes))
    rows = _history(api, webhook.id)
    assert len(rows) == 5
    for row in rows:
        assert LIST_FIELDS <= set(row) <= LIST_FIELDS | OPTIONAL_FIELDS
        assert row["id"].startswith("dlv_")
        assert row["event_id"].startswith("evt_")
    created = [row["created_at"] for row in rows]
    assert created == sorted(created, reverse=True)


def test_delivery_history_shows_attempt_outcome_when_attempted(api, webhook):
    attempted_at = timezone.now() - timedelta(minutes=1)
    retry_at = timezone.now() + timedelta(minutes=4)
    delivery = make_delivery(
        webhook,
        "server.blocked",
        status=Delivery.Status.RETRYING,
        attempts=1,
        response_status=503,
        last_attempt_at=attempted_at,
        next_attempt_at=retry_at,
    )
    [row] = _history(api, webhook.id)
    assert row["id"] == delivery.id
    assert row["event_id"] == delivery.event_id
    assert row["event"] == "server.blocked"
    assert row["status"] == "retrying"
    assert row["attempts"] == 1
    assert row["response_status"] == 503
    assert row["last_attempt_at"] is not None
    assert row["next_attempt_at"] is not None
    assert row["last_attempt_at"] < row["next_attempt_at"]


def test_delivery_history_pages_through_all_when_limit_given(api, webhook):
    now = timezone.now()
    expected = [make_delivery(webhook, created_at=now - timedelta(seconds=s)).id for s in range(7)]
    seen, url, pages = [], f"/ui/api/webhooks/{webhook.id}/deliveries?limit=3", 0
    while url:
        body = api.get(url).json()
        assert len(body["results"]) <= 3
        seen.extend(row["id"] for row in body["results"])
        url = body["next"]
        pages += 1
        assert pages <= 4
    assert pages == 3
    assert seen == expected


def test_delivery_history_pages_stably_when_times_are_equal(api, webhook):
    moment = timezone.now()
    ids = {make_delivery(webhook, created_at=moment).id for _ in range(5)}
    seen, url = [], f"/ui/api/webhooks/{webhook.id}/deliveries?limit=2"
    while url:
        body = api.get(url).json()
        seen.extend(row["id"] for row in body["results"])
        url = body["next"]
    assert sorted(seen) == sorted(ids)


def test_delivery_history_filters_by_status_and_event(api, webhook):
    succeeded = make_delivery(webhook, "threat.detected", status=Delivery.Status.SUCCEEDED, response_status=200)
    failed = make_delivery(webhook, "threat.detected", status=Delivery.Status.FAILED, response_status=500)
    other = make_delivery(webhook, "agent.online", status=Delivery.Status.FAILED, response_status=404)
    assert {r["id"] for r in _history(api, webhook.id, "?status=failed")} == {failed.id, other.id}
    assert {r["id"] for r in _history(api, webhook.id, "?status=succeeded")} == {succeeded.id}
    assert {r["id"] for r in _history(api, webhook.id, "?event=threat.detected")} == {succeeded.id, failed.id}
    assert [r["id"] for r in _history(api, webhook.id, "?event=agent.online&status=failed")] == [other.id]
    assert _history(api, webhook.id, "?status=pending") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=exploded", "status"),
        ("?event=threat.exploded", "event"),
        ("?limit=0", "limit"),
        ("?colour=1", "colour"),
    ],
)
def test_delivery_history_refuses_filter_when_value_invalid(api, webhook, query, field):
    make_delivery(webhook)
    response = api.get(f"/ui/api/webhooks/{webhook.id}/deliveries{query}")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]


def test_delivery_history_is_scoped_to_the_webhook(api, tenant, webhook):
    sibling = make_webhook(tenant.organization, "https://93.184.216.35/hook").webhook
    mine = make_delivery(webhook)
    make_delivery(sibling)
    assert [r["id"] for r in _history(api, webhook.id)] == [mine.id]


def test_delivery_detail_includes_attempt_log_in_order(api, webhook):
    delivery = make_delivery(webhook, status=Delivery.Status.SUCCEEDED, attempts=2, response_status=200)
    start = timezone.now() - timedelta(minutes=2)
    Attempt.objects.create(
        delivery=delivery,
        number=2,
        requested_at=start + timedelta(minutes=1),
        response_status=200,
        duration_ms=42,
        response_body="ok",
    )
    Attempt.objects.create(
        delivery=delivery, number=1, requested_at=start, response_status=None, duration_ms=30000, error="timed out"
    )
    response = api.get(f"/ui/api/webhooks/{webhook.id}/deliveries/{delivery.id}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= LIST_FIELDS
    assert body["id"] == delivery.id
    log = body["attempt_log"]
    assert [a["number"] for a in log] == [1, 2]
    for attempt in log:
        assert set(attempt) == ATTEMPT_FIELDS
    assert (log[0]["response_status"], log[0]["error"], log[0]["duration_ms"]) == (None, "timed out", 30000)
    assert (log[1]["response_status"], log[1]["response_body"], log[1]["duration_ms"]) == (200, "ok", 42)
    assert "webhook_secret" not in response.content.decode()


def test_delivery_detail_answers_404_when_delivery_belongs_to_another_webhook(api, tenant, webhook):
    sibling = make_webhook(tenant.organization, "https://93.184.216.35/hook").webhook
    theirs = make_delivery(sibling)
    response = api.get(f"/ui/api/webhooks/{webhook.id}/deliveries/{theirs.id}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_delivery_history_answers_404_when_webhook_unknown(api):
    response = api.get("/ui/api/webhooks/whk_nope/deliveries")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- Test events ---------------------------------------------------------------------------


def test_send_test_event_creates_one_delivery_for_that_webhook_only(api, tenant, webhook):
    bystander = make_webhook(tenant.organization, "https://93.184.216.35/all", ["*"]).webhook
    response = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id, "event": "test.ping"}, format="json")
    assert response.status_code in (200, 201, 202), response.content
    body = response.json()
    assert body["id"].startswith("dlv_")
    assert body["status"] == "pending"
    assert body["event"] == "test.ping"
    delivery = Delivery.objects.get(id=body["id"])
    assert delivery.webhook_id == webhook.id
    assert Delivery.objects.count() == 1
    assert not Delivery.objects.filter(webhook=bystander).exists()
    envelope = delivery.event.envelope
    assert envelope["event"] == "test.ping"
    assert envelope["organization_id"] == tenant.organization.id
    assert envelope["data"] == EVENT_TYPES["test.ping"].sample
    # It shows in that webhook's history.
    assert [r["id"] for r in _history(api, webhook.id)] == [body["id"]]
    assert _history(api, bystander.id) == []


def test_send_test_event_defaults_to_ping_when_event_omitted(api, webhook):
    response = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id}, format="json")
    assert response.status_code in (200, 201, 202), response.content
    assert response.json()["event"] == "test.ping"


def test_send_test_event_uses_sample_data_when_other_type(api, webhook):
    event_type = random.choice(["threat.detected", "server.approved", "policy.violation"])
    response = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id, "event": event_type}, format="json")
    assert response.status_code in (200, 201, 202), response.content
    delivery = Delivery.objects.get(id=response.json()["id"])
    assert delivery.event_type == event_type
    assert delivery.event.data == EVENT_TYPES[event_type].sample


def test_send_test_event_answers_404_when_webhook_unknown(api, webhook):
    response = api.post("/ui/api/webhooks/test", {"webhook_id": "whk_nope", "event": "test.ping"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert not Delivery.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event": "test.ping"}, "webhook_id"),
        ({"webhook_id": None, "event": "test.ping"}, "webhook_id"),
        ({"webhook_id": 123, "event": "test.ping"}, "webhook_id"),
        ({"webhook_id": "{id}", "event": "threat.exploded"}, "event"),
        ({"webhook_id": "{id}", "event": "test.ping", "extra": 1}, "extra"),
    ],
)
def test_send_test_event_refuses_and_sends_nothing_when_invalid(api, webhook, body, field):
    body = {k: (v.format(id=webhook.id) if isinstance(v, str) else v) for k, v in body.items()}
    response = api.post("/ui/api/webhooks/test", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert not Delivery.objects.exists()
