"""End to end: a secret rotation breaks no receiver. A real worker delivers to a receiver
running the product document's verifier with the old secret only (it keeps verifying
X-CyberCage-Signature through the overlap), then to one holding only the new secret after the
switch — by ``expire-previous-secret``, by the overlap running out, and at once for a leaked
secret — and every delivery is checked with the ``standardwebhooks`` library too."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import pytest
from conftest import make_webhook, wait_until
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from deliveries.concurrency import SLOT_KEY_PREFIX, WAKE_KEY_PREFIX
from deliveries.models import Delivery
from deliveries.signing import documented_signature
from deliveries.verify import VerificationError, verify
from events import services as events

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OLD = "whsec_" + base64.b64encode(b"rotation-e2e-old-secret-01234567").decode()


def _standard_verifies(secret: str, body: bytes | str, headers: dict[str, str]) -> bool:
    try:
        StandardWebhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


def _delivered_once(event_id: str) -> Delivery:
    """The event's delivery, once it has succeeded: at its first attempt, or the test fails."""
    delivery = wait_until(
        lambda: Delivery.objects.filter(event_id=event_id, status="succeeded").first(),
        message=f"event {event_id} not delivered",
    )
    assert delivery.attempts == 1, f"{event_id} needed {delivery.attempts} attempts"
    return delivery


def _idle(redis_client, webhook_id: str) -> bool:
    """No drain of the webhook runs (one reads the secrets once, when it starts)."""
    return not redis_client.zcard(f"{SLOT_KEY_PREFIX}{webhook_id}") and not redis_client.exists(
        f"{WAKE_KEY_PREFIX}{webhook_id}"
    )


def _until(body: dict) -> datetime:
    return datetime.fromisoformat(body["previous_secret_expires_at"].replace("Z", "+00:00"))


def test_a_rotation_breaks_no_receiver_from_the_old_secret_to_the_switch(
    node_receiver, receiver, start_worker, tenant, api, redis_client, settings
):
    node = node_receiver(OLD)  # the document's verifyWebhook, verbatim, holding the old secret
    webhook = make_webhook(tenant.organization, node.url(), ["*"], secret=OLD).webhook
    start_worker(WEBHOOK_RETRY_DELAYS="1,1,1,1,1")
    org = tenant.organization

    # Before the rotation: the old secret signs everything.
    _delivered_once(events.emit(org, "agent.online", {"agent_id": "agt_1"}).id)

    # Rotate with the default overlap: the receiver holding only the old secret keeps verifying.
    rotated = api.post(f"/ui/api/webhooks/{webhook.id}/rotate-secret", format="json").json()
    new = rotated["secret"]
    overlap = timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP)
    assert abs(_until(rotated) - (timezone.now() + overlap)) < timedelta(minutes=1)
    for n in range(3):
        _delivered_once(events.emit(org, "agent.online", {"agent_id": f"agt_{n}"}).id)
    requests = node.wait_for(4)
    assert [r["valid"] for r in requests] == [True] * 4, [r["reason"] for r in requests]
    for request in requests[1:]:
        assert _standard_verifies(OLD, request["body"], request["headers"])
        assert _standard_verifies(new, request["body"], request["headers"])
        assert verify(request["body"].encode(), request["headers"], [OLD, new])

    # The receivers are updated; the early switch: from now on the new secret signs everything.
    held = {"secrets": [new]}

    def new_only(handler) -> tuple[int, dict, bytes]:
        try:
            verify(handler.received_body, dict(handler.headers.items()), held["secrets"])
        except VerificationError as exc:
            return 400, {}, str(exc).encode()
        return 200, {}, b"ok"

    receiver.responses["/new-only"] = new_only
    wait_until(lambda: _idle(redis_client, webhook.id), message="a drain is still running")
    moved = api.patch(f"/ui/api/webhooks/{webhook.id}", {"url": receiver.url("/new-only")}, format="json")
    assert moved.status_code == 200, moved.content
    expired = api.post(f"/ui/api/webhooks/{webhook.id}/expire-previous-secret").json()
    assert expired["previous_secret_expires_at"] is None
    _delivered_once(events.emit(org, "agent.online", {"agent_id": "agt_9"}).id)
    (switched,) = receiver.received("/new-only")
    assert switched.headers["X-CyberCage-Signature"] == documented_signature(new, switched.body)
    assert _standard_verifies(new, switched.body, switched.headers)
    assert not _standard_verifies(OLD, switched.body, switched.headers)

    # A second rotation whose overlap runs out: the receiver keeps the (now previous) secret it
    # holds until the switch, then holds only the newest one.
    rotated = api.post(f"/ui/api/webhooks/{webhook.id}/rotate-secret", {"expire_previous_in": 3}, format="json").json()
    newer = rotated["secret"]
    _delivered_once(events.emit(org, "agent.offline", {"agent_id": "agt_9"}).id)
    during = receiver.received("/new-only")[-1]
    assert _standard_verifies(new, during.body, during.headers)
    assert _standard_verifies(newer, during.body, during.headers)
    wait_until(lambda: timezone.now() > _until(rotated), timeout=10, message="the overlap did not end")
    held["secrets"] = [newer]
    _delivered_once(events.emit(org, "agent.offline", {"agent_id": "agt_8"}).id)
    after = receiver.received("/new-only")[-1]
    assert _standard_verifies(newer, after.body, after.headers)
    assert not _standard_verifies(new, after.body, after.headers)

    # A leaked secret: both headers switch at once. The receiver refuses until it has the new
    # one; then the retry goes through, with the same delivery id.
    leaked = api.post(f"/ui/api/webhooks/{webhook.id}/rotate-secret", {"expire_previous_in": 0}, format="json")
    newest = leaked.json()["secret"]
    assert leaked.json()["previous_secret_expires_at"] is None
    event = events.emit(org, "agent.online", {"agent_id": "agt_7"})
    refused = wait_until(lambda: Delivery.objects.filter(event_id=event.id, status="retrying").first())
    assert refused.response_status == 400
    held["secrets"] = [newest]
    delivery = wait_until(lambda: Delivery.objects.filter(event_id=event.id, status="succeeded").first())
    assert delivery.attempts == 2
    first, retried = receiver.received("/new-only")[-2:]
    assert first.headers["X-CyberCage-Delivery-ID"] == retried.headers["X-CyberCage-Delivery-ID"] == delivery.id
    assert not _standard_verifies(newer, first.body, first.headers)
    assert _standard_verifies(newest, retried.body, retried.headers)
