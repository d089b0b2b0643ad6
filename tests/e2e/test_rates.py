"""End to end: rates that never hide a failing endpoint. A real worker delivers to a real
receiver that answers 200, then 400 to everything; while its deliveries wait for their retries
(minutes), the API's stats and the dashboard's list already show the failing attempts."""

from __future__ import annotations

import pytest
from conftest import api_client, create_member, make_webhook, wait_until
from django.test import Client

from deliveries.models import Delivery
from events import services as events

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIST = "/ui/settings/integrations/webhooks"


def test_rates_drop_at_the_first_failed_attempt_when_an_endpoint_starts_answering_400(receiver, start_worker, tenant):
    receiver.responses["/turns"] = 200
    receiver.responses["/broken"] = 400
    turns = make_webhook(tenant.organization, receiver.url("/turns"), ["threat.detected"]).webhook
    broken = make_webhook(tenant.organization, receiver.url("/broken"), ["agent.online"]).webhook
    start_worker(WEBHOOK_RETRY_DELAYS="60,300,900,3600,21600")  # the documented schedule: retries wait
    api = api_client(tenant.key)

    def count(webhook, status: str, n: int):
        return wait_until(
            lambda: Delivery.objects.filter(webhook=webhook, status=status, attempts__gte=1).count() >= n,
            timeout=30,
            message=f"{n} {status} deliveries of {webhook.url}",
        )

    for i in range(6):
        events.emit(tenant.organization, "threat.detected", {"threat_id": f"thr_{i}", "severity": "high"})
    count(turns, "succeeded", 6)
    assert api.get(f"/ui/api/webhooks/{turns.id}/stats").json()["health"] == "healthy"
    receiver.responses["/turns"] = 400
    for i in range(8):
        events.emit(tenant.organization, "threat.detected", {"threat_id": f"thr_x{i}", "severity": "high"})
    events.emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    count(turns, "retrying", 8)
    count(broken, "retrying", 1)

    turned = api.get(f"/ui/api/webhooks/{turns.id}/stats").json()
    failing = api.get(f"/ui/api/webhooks/{broken.id}/stats").json()

    # The figures: "retrying": 8, "succeeded": 6 used to read "success_rate": 1.0.
    assert turned["totals"] == {"pending": 0, "retrying": 8, "succeeded": 6, "failed": 0}
    assert turned["attempts"] == {"total": 14, "succeeded": 6, "failed": 8}
    assert (turned["success_rate"], turned["health"]) == (0.4285, "failing")
    assert failing["totals"]["retrying"] == 1
    assert (failing["success_rate"], failing["failure_rate"], failing["health"]) == (0.0, 1.0, "failing")
    member = Client()
    member.force_login(create_member(tenant.organization, "alice@acme.example"))
    listing = member.get(LIST).content.decode()
    assert '<span class="rate-text rate-failing">0%</span>' in listing
    assert '<span class="rate-text rate-failing">42.8%</span>' in listing
