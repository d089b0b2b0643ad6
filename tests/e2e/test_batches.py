"""End to end: a batch in (emit_many in process, POST /ui/api/events/batch), every event out
once to each subscribed receiver, signed, with a real Celery worker, Redis and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import make_webhook, wait_until
from standardwebhooks.webhooks import Webhook as StandardWebhook

from deliveries.models import Delivery
from events import emit_many

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCH = 100


def _settled(org_id: str) -> bool:
    return not Delivery.objects.filter(organization_id=org_id, status__in=Delivery.OPEN_STATUSES).exists()


def test_batches_deliver_every_event_once_to_each_subscribed_receiver(receiver, start_worker, tenant, api):
    org = tenant.organization
    everything = make_webhook(org, receiver.url("/all"), ["*"])
    threats = make_webhook(org, receiver.url("/threats"), ["threat.detected"])
    start_worker()
    items = [
        {"event": "threat.detected", "data": {"threat_id": f"thr_{i}", "severity": "low"}}
        if i % 2
        else {"event": "agent.online", "data": {"agent_id": f"agt_{i}"}}
        for i in range(BATCH)
    ]

    in_process = [event.id for event in emit_many(org, items)]
    response = api.post(
        "/ui/api/events/batch", {"events": [{**item, "idempotency_key": f"k-{i}"} for i, item in enumerate(items)]},
        format="json",
    )  # fmt: skip
    assert response.status_code == 202, response.content
    over_rest = response.json()["ids"]
    repeat = api.post("/ui/api/events/batch", {"events": [{**items[0], "idempotency_key": "k-0"}]}, format="json")
    assert repeat.json()["ids"] == over_rest[:1]

    receiver.wait_for(2 * BATCH, "/all", timeout=60)
    receiver.wait_for(BATCH, "/threats", timeout=60)
    wait_until(lambda: _settled(org.id), timeout=60, message="pipeline did not settle")

    emitted = in_process + over_rest
    threat_ids = {event_id for i, event_id in enumerate(emitted) if i % BATCH % 2}
    at_all = Counter(
        StandardWebhook(everything.secret).verify(r.body, r.headers)["id"] for r in receiver.received("/all")
    )
    at_threats = Counter(
        StandardWebhook(threats.secret).verify(r.body, r.headers)["id"] for r in receiver.received("/threats")
    )
    assert at_all == Counter(emitted)  # every event once
    assert at_threats == Counter(threat_ids)
    assert Delivery.objects.filter(organization=org, status="succeeded").count() == 3 * BATCH
