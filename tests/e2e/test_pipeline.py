"""End to end: events in through every door, deliveries out to real receivers, history back
through the API, with a real Celery worker, Redis and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from conftest import api_client, make_tenant, make_webhook, wait_until
from django.conf import settings
from django.core.management import call_command
from standardwebhooks.webhooks import Webhook as StandardWebhook

from deliveries.models import Delivery
from events import services as events
from events.models import Event

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NON_ASCII_SECRET = "sécret-日本-🔑-123"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")

# Data JSON.stringify re-serializes differently from a naive encoder: integer-like keys come
# first in numeric order, 1.0 prints as 1, big and tiny floats switch notation, U+2028 and
# non-ASCII text are not escaped, control characters are.
TRICKY_DATA = [
    {
        "threat_id": "thr_ünïcødé",
        "severity": "high",
        "description": "Zugriff auf «geheime» Schlüssel — 日本語 🔥",
        "score": 1.0,
        "ratio": 0.1,
        "tiny": 5e-7,
        "huge": 1e21,
        "negative_zero": -0.0,
        "10": "ten",
        "2": "two",
        "b": "insertion order",
        "a": "kept",
        "line_separator": "a\u2028b",
        "controls": "tab\there\nnewline \x01",
    },
    {
        "server_id": "srv_ünï",
        "name": "ноутбук-server",
        "agent": {"hostname": "ноутбук", "user": "ユーザー@example.com"},
        "1": 1.5,
        "0": 100.0,
        "nested": [1.0, {"9": 9}],
    },
    {"policy": {"id": "pol_1"}, "message": "emoji 👍🏽 and quotes \" \\ '", "float": 123456789.0, "exp": 1.5e300},
]


def _envelope_ok(body: dict, event_type: str, org_id: str) -> None:
    assert set(body) == {"id", "event", "timestamp", "organization_id", "data"}
    assert body["event"] == event_type
    assert body["organization_id"] == org_id
    assert body["id"].startswith("evt_")
    assert ISO_UTC.match(body["timestamp"]), body["timestamp"]


def test_signatures_verify_in_node_when_secret_and_data_are_not_ascii(node_receiver, start_worker, history):
    tenant = make_tenant("Ünïcode GmbH")
    node = node_receiver(NON_ASCII_SECRET)
    webhook = make_webhook(tenant.organization, node.url(), ["*"], secret=NON_ASCII_SECRET).webhook
    client = api_client(tenant.key)
    start_worker()

    sent = {events.emit(tenant.organization, "threat.detected", TRICKY_DATA[0]).id: TRICKY_DATA[0]}
    response = client.post("/ui/api/events", {"event": "server.approved", "data": TRICKY_DATA[1]}, format="json")
    assert response.status_code == 202, response.content
    sent[response.json()["id"]] = TRICKY_DATA[1]
    out = io.StringIO()
    call_command(
        "emit_event", tenant.organization.id, "policy.violation", "--data", json.dumps(TRICKY_DATA[2]), stdout=out
    )
    sent[out.getvalue().strip().splitlines()[-1]] = TRICKY_DATA[2]

    requests = node.wait_for(3)
    # The verifier is not a rubber stamp: a body signed with another secret is refused.
    forged = urllib.request.Request(
        node.url(),
        data=requests[0]["body"].encode(),
        headers={"X-CyberCage-Signature": "sha256=" + hmac.new(b"other", b"", hashlib.sha256).hexdigest()},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=5)
    assert refused.value.code == 401
    requests = node.requests()[:3]
    assert [r["valid"] for r in requests] == [True, True, True], [r["reason"] for r in requests]
    seen_ids = {r["delivery_id"] for r in requests}
    rows = wait_until(
        lambda: (rows := history(client, webhook.id)) and all(r["status"] == "succeeded" for r in rows) and rows,
        message="deliveries not all succeeded in the history",
    )
    assert {r["id"] for r in rows} == seen_ids
    assert len(rows) == 3
    assert {r["event_id"] for r in rows} == set(sent)

    for request in requests:
        headers, body = request["headers"], json.loads(request["body"])
        assert request["body"] == Event.objects.get(id=body["id"]).payload  # the stored bytes, unaltered
        _envelope_ok(body, request["event"], tenant.organization.id)
        assert body["data"] == sent[body["id"]]
        assert headers["x-cybercage-event"] == body["event"]
        assert ISO_UTC.match(headers["x-cybercage-timestamp"]), headers["x-cybercage-timestamp"]
        stamped = datetime.fromisoformat(headers["x-cybercage-timestamp"].replace("Z", "+00:00"))
        assert abs(datetime.now(UTC) - stamped) < timedelta(minutes=1)
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == settings.WEBHOOK_USER_AGENT
        assert headers["webhook-id"] == request["delivery_id"]
        # Standard Webhooks: a secret without the whsec_ prefix is used as its UTF-8 bytes.
        StandardWebhook(NON_ASCII_SECRET.encode("utf-8")).verify(request["body"], headers)

    # A dashboard test event and a manual redelivery verify too; the redelivery keeps its id.
    response = client.post("/ui/api/webhooks/test", {"webhook_id": webhook.id, "event": "test.ping"}, format="json")
    assert response.status_code == 202, response.content
    test_delivery = response.json()["id"]
    node.wait_for(5)  # the three events and the forgery
    response = client.post(f"/ui/api/webhooks/{webhook.id}/deliveries/{rows[0]['id']}/retry")
    assert response.status_code == 202, response.content
    more = node.wait_for(6)[4:]
    assert [(r["delivery_id"], r["event"], r["valid"]) for r in more] == [
        (test_delivery, "test.ping", True),
        (rows[0]["id"], rows[0]["event"], True),
    ]
    wait_until(
        lambda: (
            {(r["id"], r["status"], r["attempts"]) for r in history(client, webhook.id)}
            >= {
                (test_delivery, "succeeded", 1),
                (rows[0]["id"], "succeeded", 2),
            }
        )
    )


def test_standard_webhooks_headers_verify_when_secret_is_generated(receiver, start_worker, tenant, api):
    created = make_webhook(tenant.organization, receiver.url(), ["agent.online"])
    assert created.secret.startswith("whsec_")
    start_worker()

    response = api.post("/ui/api/events", {"event": "agent.online", "data": {"agent_id": "agt_1"}}, format="json")
    assert response.status_code == 202, response.content

    (request,) = receiver.wait_for(1)
    payload = StandardWebhook(created.secret).verify(request.body, request.headers)
    assert payload["event"] == "agent.online"
    assert payload["data"] == {"agent_id": "agt_1"}
    assert request.headers["X-CyberCage-Delivery-ID"] == request.headers["webhook-id"]
    expected = "sha256=" + hmac.new(created.secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-CyberCage-Signature"] == expected


def _quiet(*org_ids: str) -> bool:
    """No delivery left open: nothing more will be sent (emit stores an event's deliveries with it)."""
    return not Delivery.objects.filter(organization_id__in=org_ids, status__in=Delivery.OPEN_STATUSES).exists()


def test_fan_out_reaches_only_enabled_subscribed_webhooks_of_the_org(receiver, start_worker, tenant, other_tenant):
    org, other = tenant.organization, other_tenant.organization
    threats = make_webhook(org, receiver.url("/threats"), ["threat.detected"]).webhook
    everything = make_webhook(org, receiver.url("/all"), ["*"]).webhook
    servers = make_webhook(org, receiver.url("/servers"), ["server.approved", "server.blocked"]).webhook
    disabled = make_webhook(org, receiver.url("/disabled"), ["*"], enabled=False).webhook
    foreign = make_webhook(other, receiver.url("/other-org"), ["*"]).webhook
    start_worker()

    threat = events.emit(org, "threat.detected", {"threat_id": "thr_1", "severity": "low"})
    approval = events.emit(org, "server.approved", {"server_id": "srv_1", "name": "github"})
    offline = events.emit(org, "agent.offline", {"agent_id": "agt_1"})
    foreign_event = events.emit(other, "threat.detected", {"threat_id": "thr_2", "severity": "low"})
    wait_until(lambda: _quiet(org.id, other.id), message="pipeline did not settle")

    def event_ids(path: str) -> list[str]:
        return sorted(r.json()["id"] for r in receiver.received(path))

    assert event_ids("/threats") == [threat.id]
    assert event_ids("/all") == sorted([threat.id, approval.id, offline.id])
    assert event_ids("/servers") == [approval.id]
    assert event_ids("/disabled") == []
    assert event_ids("/other-org") == [foreign_event.id]
    assert not Delivery.objects.filter(webhook=disabled).exists()
    expected = {threats.id: 1, everything.id: 3, servers.id: 1, foreign.id: 1}
    for webhook_id, count in expected.items():
        assert Delivery.objects.filter(webhook_id=webhook_id, status="succeeded").count() == count


def test_repeated_idempotency_key_delivers_once(receiver, start_worker, tenant, api):
    make_webhook(tenant.organization, receiver.url(), ["*"])
    start_worker()
    body = {"event": "threat.blocked", "data": {"threat_id": "thr_1", "action": "tool_call_blocked"}}

    first = api.post("/ui/api/events", body, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    second = api.post("/ui/api/events", body, format="json", HTTP_IDEMPOTENCY_KEY="key-1")
    other = api.post("/ui/api/events", body, format="json", HTTP_IDEMPOTENCY_KEY="key-2")
    assert first.status_code == second.status_code == other.status_code == 202
    assert first.json()["id"] == second.json()["id"] != other.json()["id"]

    receiver.wait_for(2)
    wait_until(lambda: _quiet(tenant.organization.id), message="pipeline did not settle")
    assert sorted(r.json()["id"] for r in receiver.received()) == sorted([first.json()["id"], other.json()["id"]])
