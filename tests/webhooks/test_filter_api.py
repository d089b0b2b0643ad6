"""Payload filters through the API: set, shown, replaced and cleared by POST, PUT and PATCH; bad
filters as 400s naming the path and the operator; filter-check; the test event's answer; emit()
creating deliveries only where the filter matches; the stats' ``filtered``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import api_client, make_webhook
from django.db import connection
from django.utils import timezone

from deliveries.models import Delivery
from deliveries.services import delivery_send_test
from events import emit
from events.catalogue import EVENT_TYPES
from webhooks.filters import compile_filter
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.216.34/hook"
CRITICAL = {"data.severity": "critical"}
HIGH_OR_CRITICAL = {"data.severity": {"$in": ["high", "critical"]}}


def _threat(severity: str) -> dict:
    return {**EVENT_TYPES["threat.detected"].sample, "severity": severity}


def _stored(webhook_id: str) -> Webhook:
    return Webhook.objects.get(id=webhook_id)


def test_filter_is_set_at_create_and_shown(api):
    created = api.post(
        "/ui/api/webhooks", {"url": PUBLIC_URL, "events": ["*"], "filter": HIGH_OR_CRITICAL}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert created.json()["filter"] == HIGH_OR_CRITICAL
    webhook_id = created.json()["id"]
    assert api.get(f"/ui/api/webhooks/{webhook_id}").json()["filter"] == HIGH_OR_CRITICAL
    assert api.get("/ui/api/webhooks").json()["results"][0]["filter"] == HIGH_OR_CRITICAL
    stored = _stored(webhook_id)
    assert stored.filter_path is not None
    assert stored.filter_since is not None


def test_webhook_without_filter_shows_null(api):
    created = api.post("/ui/api/webhooks", {"url": PUBLIC_URL, "events": ["*"]}, format="json").json()
    assert created["filter"] is None
    assert _stored(created["id"]).filter_path is None


@pytest.mark.parametrize("method", ["put", "patch"])
def test_filter_is_replaced_and_cleared_by_put_and_patch(api, tenant, method):
    webhook = make_webhook(tenant.organization, PUBLIC_URL).webhook
    send = getattr(api, method)

    replaced = send(f"/ui/api/webhooks/{webhook.id}", {"filter": CRITICAL}, format="json")
    assert replaced.status_code == 200, replaced.json()
    assert replaced.json()["filter"] == CRITICAL
    set_at = _stored(webhook.id).filter_since

    # Other fields leave the filter alone; the same filter again keeps its count's start.
    send(f"/ui/api/webhooks/{webhook.id}", {"description": "pager", "filter": CRITICAL}, format="json")
    assert _stored(webhook.id).filter == CRITICAL
    assert _stored(webhook.id).filter_since == set_at

    cleared = send(f"/ui/api/webhooks/{webhook.id}", {"filter": None}, format="json")
    assert cleared.status_code == 200
    assert cleared.json()["filter"] is None
    assert _stored(webhook.id).filter is None
    assert _stored(webhook.id).filter_path is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"data.severity": {"$in": "critical"}}, "filter.data.severity.$in: expected a list"),
        ({"data.severity": {"$regex": "^c"}}, "filter.data.severity.$regex: unknown operator; use one of"),
        ({"$or": [{"event": "x"}, {"data.score": {"$gt": [1]}}]}, "filter.$or[1].data.score.$gt: expected a number"),
        ({"$not": {"data.x": {"$exists": "yes"}}}, "filter.$not.data.x.$exists: expected true or false"),
        ("critical", "filter: expected a JSON object"),
        ({}, "filter: an empty filter matches every event; send null to remove the filter"),
    ],
)
def test_bad_filter_is_a_400_naming_path_and_operator(api, tenant, bad, message):
    created = api.post("/ui/api/webhooks", {"url": PUBLIC_URL, "events": ["*"], "filter": bad}, format="json")
    assert created.status_code == 400
    assert created.json()["message"].startswith(message)
    field = message.split(":")[0]
    assert field in created.json()["fields"]
    assert not Webhook.objects.exists()

    webhook = make_webhook(tenant.organization, PUBLIC_URL).webhook
    patched = api.patch(f"/ui/api/webhooks/{webhook.id}", {"filter": bad}, format="json")
    assert patched.status_code == 400
    assert patched.json()["message"].startswith(message)
    assert _stored(webhook.id).filter is None


def test_filter_over_the_size_limit_is_a_400(api, settings):
    settings.WEBHOOK_FILTER_MAX_BYTES = 100
    bad = {"data.severity": {"$in": [f"level-{i}" for i in range(20)]}}
    response = api.post("/ui/api/webhooks", {"url": PUBLIC_URL, "events": ["*"], "filter": bad}, format="json")
    assert response.status_code == 400
    assert "at most 100 (WEBHOOK_FILTER_MAX_BYTES)" in response.json()["message"]


def test_filter_check_answers_whether_it_matches_sending_nothing(api, tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL, filter=CRITICAL).webhook
    url = f"/ui/api/webhooks/{webhook.id}/filter-check"

    critical = api.post(url, {"event": "threat.detected", "data": _threat("critical")}, format="json")
    high = api.post(url, {"event": "threat.detected", "data": _threat("high")}, format="json")
    assert critical.status_code == 200
    assert critical.json() == {"matches": True}
    assert high.json() == {"matches": False}
    # A filter to try instead of the saved one; null: none.
    tried = api.post(
        url, {"event": "threat.detected", "data": _threat("high"), "filter": HIGH_OR_CRITICAL}, format="json"
    )
    assert tried.json() == {"matches": True}
    assert api.post(
        url, {"event": "threat.detected", "data": _threat("low"), "filter": None}, format="json"
    ).json() == {"matches": True}
    assert not Delivery.objects.exists()


def test_filter_check_refuses_bad_input_naming_the_field(api, tenant, other_tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL, filter=CRITICAL).webhook
    url = f"/ui/api/webhooks/{webhook.id}/filter-check"

    bad_filter = api.post(url, {"event": "threat.detected", "data": {}, "filter": {"a": {"$in": 1}}}, format="json")
    assert bad_filter.status_code == 400
    assert bad_filter.json()["message"] == "filter.a.$in: expected a list"
    bad_data = api.post(
        url, {"event": "threat.detected", "data": {"threat_id": "t", "severity": "urgent"}}, format="json"
    )
    assert bad_data.status_code == 400
    assert bad_data.json()["message"].startswith("data.severity:")
    not_object = api.post(url, {"event": "threat.detected", "data": ["critical"]}, format="json")
    assert not_object.json()["message"] == "data: Must be a JSON object."
    unknown = api.post(url, {"event": "threat.found", "data": {}}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["message"].startswith("event: Unknown event type")
    theirs = make_webhook(other_tenant.organization, PUBLIC_URL).webhook
    assert (
        api.post(
            f"/ui/api/webhooks/{theirs.id}/filter-check", {"event": "test.ping", "data": {}}, format="json"
        ).status_code
        == 404
    )


def test_test_event_is_sent_whatever_the_filter_and_says_if_it_matches(api, tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL, filter=CRITICAL).webhook

    # The sample threat is "high": the filter would skip it, and it is sent all the same.
    skipped = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id, "event": "threat.detected"}, format="json")
    assert skipped.status_code == 202
    assert skipped.json()["filter_matches"] is False
    assert Delivery.objects.filter(id=skipped.json()["id"], webhook=webhook).exists()

    api.patch(f"/ui/api/webhooks/{webhook.id}", {"filter": HIGH_OR_CRITICAL}, format="json")
    matched = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id, "event": "threat.detected"}, format="json")
    assert matched.json()["filter_matches"] is True
    api.patch(f"/ui/api/webhooks/{webhook.id}", {"filter": None}, format="json")
    ping = api.post("/ui/api/webhooks/test", {"webhook_id": webhook.id}, format="json")
    assert ping.json()["filter_matches"] is True


def test_emit_creates_deliveries_only_where_the_filter_matches(tenant):
    pager = make_webhook(tenant.organization, PUBLIC_URL, filter={"event": "threat.detected", **CRITICAL}).webhook
    chat = make_webhook(tenant.organization, PUBLIC_URL).webhook
    siem = make_webhook(
        tenant.organization,
        PUBLIC_URL,
        filter={"$or": [{"event": "threat.blocked"}, {"data.details.blocked": True}]},
    ).webhook

    critical = emit(tenant.organization, "threat.detected", {**_threat("critical"), "details": {"blocked": False}})
    high = emit(tenant.organization, "threat.detected", _threat("high"))
    blocked = emit(tenant.organization, "threat.blocked", EVENT_TYPES["threat.blocked"].sample)

    def received(webhook):
        return set(Delivery.objects.filter(webhook=webhook).values_list("event_id", flat=True))

    assert received(pager) == {critical.id}
    assert received(chat) == {critical.id, high.id, blocked.id}
    assert received(siem) == {high.id, blocked.id}


def test_emit_with_a_nul_character_is_filtered_as_the_evaluator_says(tenant):
    filtered = make_webhook(tenant.organization, PUBLIC_URL, filter={"data.note": {"$startsWith": "a"}}).webhook
    event = emit(tenant.organization, "threat.detected", {**_threat("high"), "note": "a\x00b"})
    assert Delivery.objects.filter(webhook=filtered, event_id=event.id).exists()


def test_a_filter_that_cannot_be_evaluated_never_fails_emit(tenant):
    # A predicate written by hand that errors in PostgreSQL (no filter compiles to one): no match, no error.
    webhook = make_webhook(tenant.organization, PUBLIC_URL).webhook
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE webhooks_webhook SET filter = '{}', filter_path = 'strict $.data.severity.size() > 1'"
            " WHERE id = %s",
            [webhook.id],
        )
    event = emit(tenant.organization, "threat.detected", _threat("high"))
    assert event.id
    assert not Delivery.objects.filter(webhook=webhook).exists()


def test_stats_count_the_events_the_filter_skipped(tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL, events=["threat.detected"], filter=CRITICAL).webhook
    other = make_webhook(tenant.organization, PUBLIC_URL).webhook
    emit(tenant.organization, "threat.detected", _threat("critical"))
    for severity in ("high", "low", "medium"):
        emit(tenant.organization, "threat.detected", _threat(severity))
    emit(tenant.organization, "threat.blocked", EVENT_TYPES["threat.blocked"].sample)  # not subscribed: not counted
    client = api_client(tenant.key)

    stats = client.get(f"/ui/api/webhooks/{webhook.id}/stats", {"window": "1h"}).json()
    assert stats["filtered"] == 3
    assert stats["totals"]["pending"] == 1
    assert client.get(f"/ui/api/webhooks/{other.id}/stats").json()["filtered"] == 0
    # A test event to this webhook is delivered to it: not skipped, whatever its type.
    delivery_send_test(webhook=webhook, event_type="threat.detected")
    delivery_send_test(webhook=webhook, event_type="agent.online")
    assert client.get(f"/ui/api/webhooks/{webhook.id}/stats", {"window": "1h"}).json()["filtered"] == 3

    # Counted from when the filter was set: a new filter starts again.
    Webhook.objects.filter(id=webhook.id).update(filter_since=timezone.now() - timedelta(hours=2))
    client.patch(f"/ui/api/webhooks/{webhook.id}", {"filter": HIGH_OR_CRITICAL}, format="json")
    assert client.get(f"/ui/api/webhooks/{webhook.id}/stats").json()["filtered"] == 0
    emit(tenant.organization, "threat.detected", _threat("low"))
    assert client.get(f"/ui/api/webhooks/{webhook.id}/stats").json()["filtered"] == 1
    # While disabled nothing is delivered, filtered or not: nothing is counted as filtered.
    client.patch(f"/ui/api/webhooks/{webhook.id}", {"enabled": False}, format="json")
    assert client.get(f"/ui/api/webhooks/{webhook.id}/stats").json()["filtered"] == 0


def test_stored_predicate_is_the_compiled_filter(tenant):
    webhook = make_webhook(tenant.organization, PUBLIC_URL, filter=HIGH_OR_CRITICAL).webhook
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT filter_path::text = %s::jsonpath::text FROM webhooks_webhook WHERE id = %s",
            [compile_filter(HIGH_OR_CRITICAL), webhook.id],
        )
        assert cursor.fetchone()[0] is True


def test_openapi_documents_the_filter_filter_check_and_filtered(client):
    schema = client.get("/ui/api/schema", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    assert "filter" in components["Webhook"]["properties"]
    assert "$in" in components["WebhookWrite"]["properties"]["filter"]["description"]
    assert components["WebhookWrite"]["properties"]["filter"]["nullable"] is True
    assert "filter" in components["WebhookUpdate"]["properties"]
    check = schema["paths"]["/ui/api/webhooks/{webhook_id}/filter-check"]["post"]
    assert {"200", "400", "404"} <= set(check["responses"])
    assert "matches" in components["FilterCheckResult"]["properties"]
    assert set(components["FilterCheck"]["properties"]) == {"event", "data", "filter"}
    assert "filter_matches" in components["TestEventSent"]["properties"]
    assert "filtered" in components["WebhookStats"]["properties"]
