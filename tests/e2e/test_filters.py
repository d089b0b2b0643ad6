"""End to end: payload filters with a real worker and two real receivers. A critical and a high
threat are emitted; the webhook filtered to critical gets only the critical one, the other both."""

from __future__ import annotations

import pytest
from conftest import api_client, make_tenant, wait_until

from deliveries.models import Delivery
from events import emit
from events.catalogue import EVENT_TYPES

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_filtered_webhook_gets_only_the_critical_threat_and_the_other_gets_both(
    receiver, another_receiver, start_worker
):
    tenant = make_tenant("Filters")
    client = api_client(tenant.key)
    pager = client.post(
        "/ui/api/webhooks",
        {"url": receiver.url("/pager"), "events": ["threat.detected"], "filter": {"data.severity": "critical"}},
        format="json",
    )
    assert pager.status_code == 201, pager.json()
    chat = client.post("/ui/api/webhooks", {"url": another_receiver.url("/chat"), "events": ["*"]}, format="json")
    assert chat.status_code == 201, chat.json()
    start_worker()

    sample = EVENT_TYPES["threat.detected"].sample
    critical = emit(tenant.organization, "threat.detected", {**sample, "threat_id": "thr_crit", "severity": "critical"})
    high = emit(tenant.organization, "threat.detected", {**sample, "threat_id": "thr_high", "severity": "high"})

    both = another_receiver.wait_for(2, "/chat")
    assert sorted(request.json()["id"] for request in both) == sorted([critical.id, high.id])
    paged = receiver.wait_for(1, "/pager")
    assert [request.json()["data"]["threat_id"] for request in paged] == ["thr_crit"]
    # Every delivery there is has been recorded: nothing else is on its way to the pager.
    wait_until(
        lambda: (
            not Delivery.objects.exclude(status=Delivery.Status.SUCCEEDED).exists() and Delivery.objects.count() == 3
        ),
        message="deliveries not all recorded",
    )
    assert [request.json()["id"] for request in receiver.received("/pager")] == [critical.id]
    stats = client.get(f"/ui/api/webhooks/{pager.json()['id']}/stats").json()
    assert stats["filtered"] == 1
    assert stats["totals"]["succeeded"] == 1
