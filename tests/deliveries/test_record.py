"""Recording attempts whatever a receiver answers: NUL bytes, binary bodies, unrecordable rows.

In process against real PostgreSQL, Redis and a loopback receiver; the same with a worker is
in tests/e2e/test_hostile_receivers.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import make_webhook
from django.utils import timezone

from deliveries import drain, http, leases
from deliveries.models import Attempt, Delivery
from events import emit

pytestmark = pytest.mark.django_db(transaction=True)

NUL_BODY = b"ok\x00nul"


def _answer_nul_to(number: int):
    """A receiver that answers request ``number`` (1-based) with a NUL byte in its body."""
    seen = {"count": 0}

    def respond(_handler):
        seen["count"] += 1
        return 200, {}, NUL_BODY if seen["count"] == number else b"ok"

    return respond


def test_drain_records_every_attempt_when_one_answer_holds_a_nul_byte(tenant, receiver, redis_client):
    webhook = make_webhook(tenant.organization, receiver.url("/nul")).webhook
    receiver.responses["/nul"] = _answer_nul_to(10)
    events = [emit(tenant.organization, "test.ping", {"message": str(n)}) for n in range(20)]

    while drain.webhook_drain(webhook_id=webhook.id).again:
        pass

    assert len(receiver.received()) == 20  # each once: nothing was sent again
    deliveries = Delivery.objects.filter(webhook=webhook)
    assert sorted(deliveries.values_list("status", "attempts")) == [("succeeded", 1)] * 20
    odd = Attempt.objects.get(delivery__event_id=events[9].id)
    assert (odd.response_status, odd.response_body, odd.response_body_replaced) == (200, "ok\ufffdnul", True)
    assert Attempt.objects.filter(response_body_replaced=False).count() == 19


def test_drain_records_binary_answer_as_replaced_text_when_body_is_not_utf8(tenant, receiver, redis_client):
    webhook = make_webhook(tenant.organization, receiver.url("/gzip")).webhook
    gzip_body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\x07\x00\x00"
    receiver.responses["/gzip"] = lambda _handler: (500, {"Content-Type": "application/gzip"}, gzip_body)
    emit(tenant.organization, "test.ping", {"message": "x"})

    drain.webhook_drain(webhook_id=webhook.id)

    delivery = Delivery.objects.get(webhook=webhook)
    (attempt,) = Attempt.objects.filter(delivery=delivery)
    assert (delivery.status, delivery.attempts, attempt.response_status) == ("retrying", 1, 500)
    assert "\x00" not in attempt.response_body
    assert attempt.response_body_replaced


def _claimed(delivery: Delivery) -> leases.Claimed:
    return leases.Claimed(
        id=delivery.id,
        created_at=delivery.created_at,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        attempts=delivery.attempts,
        lease_until=timezone.now(),
        body=b"{}",
    )


def test_record_keeps_the_other_rows_when_one_row_cannot_be_stored(tenant, receiver):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    for n in range(3):
        emit(tenant.organization, "test.ping", {"message": str(n)})
    deliveries = list(Delivery.objects.filter(webhook=webhook).order_by("id"))
    ok = http.HttpResult(status=200, body="ok", duration_ms=5, error="")
    # A duration PostgreSQL refuses (the column is a positive integer): that row cannot be stored.
    unstorable = replace(ok, duration_ms=-1)
    sent = [
        drain.Sent(claimed=_claimed(d), requested_at=timezone.now(), result=result)
        for d, result in zip(deliveries, [ok, unstorable, ok], strict=True)
    ]

    drain._record(sent, webhook)

    statuses = dict(Delivery.objects.filter(webhook=webhook).values_list("id", "status"))
    assert statuses == {d.id: "succeeded" for d in deliveries}  # the odd one's outcome still counts
    odd = Attempt.objects.get(delivery_id=deliveries[1].id)
    assert odd.error.startswith("the receiver's answer could not be recorded (IntegrityError")
    assert odd.duration_ms == 0
    assert Attempt.objects.filter(delivery_id__in=[deliveries[0].id, deliveries[2].id], error="").count() == 2
