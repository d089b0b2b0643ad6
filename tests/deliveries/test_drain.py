"""The drain loop in process: signing, secret rotation, disabled webhooks, secrets at rest.

These call the drain directly (no worker) against real PostgreSQL, Redis and a real
loopback receiver; the end-to-end tests with a worker live in tests/e2e.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from conftest import make_webhook
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from deliveries import drain, ratelimit
from deliveries.models import Delivery
from deliveries.signing import documented_signature
from events import emit
from events.models import Event
from webhooks import services as webhook_services
from webhooks.models import Webhook

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "webhooks"  # CELERY_TASK_DEFAULT_QUEUE: the Redis list the messages wait in


def deliver_all(event_id: str) -> list[str]:
    webhook_ids = list(Delivery.objects.filter(event_id=event_id).values_list("webhook_id", flat=True))
    for webhook_id in webhook_ids:
        drain.webhook_drain(webhook_id=webhook_id)
    return webhook_ids


def test_drain_signs_with_both_schemes_when_delivering(tenant, receiver, redis_client):
    created = make_webhook(tenant.organization, receiver.url(), secret="plain-secret-123")
    event = emit(tenant.organization, "agent.online", {"agent_id": "agt_1", "device": {"hostname": "é"}})

    deliver_all(event.id)

    (request,) = receiver.received()
    assert request.headers["X-CyberCage-Signature"] == documented_signature("plain-secret-123", request.body)
    assert request.headers["X-CyberCage-Event"] == "agent.online"
    assert request.body == event.payload.encode("utf-8")
    delivery = Delivery.objects.get(webhook_id=created.webhook.id)
    assert request.headers["X-CyberCage-Delivery-ID"] == delivery.id
    assert request.headers["webhook-id"] == delivery.id
    StandardWebhook(b"plain-secret-123").verify(request.body, request.headers)  # raises if invalid
    assert delivery.status == "succeeded"
    assert delivery.attempts == 1


def test_drain_signs_with_old_and_new_secret_during_rotation_overlap(tenant, receiver, redis_client, settings):
    created = make_webhook(tenant.organization, receiver.url())
    old_secret = created.secret
    new_secret = webhook_services.webhook_rotate_secret(webhook=created.webhook)
    event = emit(tenant.organization, "test.ping", {"message": "hi"})

    deliver_all(event.id)

    (request,) = receiver.received()
    # Receivers not yet updated keep verifying the documented header with the old secret.
    assert request.headers["X-CyberCage-Signature"] == documented_signature(old_secret, request.body)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    StandardWebhook(old_secret).verify(request.body, request.headers)
    StandardWebhook(new_secret).verify(request.body, request.headers)


def test_drain_signs_with_new_secret_only_after_overlap(tenant, receiver, redis_client):
    created = make_webhook(tenant.organization, receiver.url())
    old_secret = created.secret
    new_secret = webhook_services.webhook_rotate_secret(webhook=created.webhook)
    Webhook.objects.filter(id=created.webhook.id).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    event = emit(tenant.organization, "test.ping", {"message": "hi"})

    deliver_all(event.id)

    (request,) = receiver.received()
    assert request.headers["X-CyberCage-Signature"] == documented_signature(new_secret, request.body)
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    StandardWebhook(new_secret).verify(request.body, request.headers)
    with pytest.raises(Exception, match="No matching signature"):
        StandardWebhook(old_secret).verify(request.body, request.headers)


def test_drain_marks_due_deliveries_failed_when_webhook_disabled(tenant, receiver, redis_client):
    created = make_webhook(tenant.organization, receiver.url())
    emit(tenant.organization, "test.ping", {"message": "hi"})
    webhook_services.webhook_update(webhook=created.webhook, changes={"enabled": False})

    drain.webhook_drain(webhook_id=created.webhook.id)

    delivery = Delivery.objects.get(webhook_id=created.webhook.id)
    assert receiver.received() == []
    assert delivery.status == "failed"
    assert delivery.attempts == 0
    assert "disabled" in delivery.last_error


def test_drain_of_a_deleted_webhook_sends_nothing(tenant, receiver, redis_client):
    created = make_webhook(tenant.organization, receiver.url())
    emit(tenant.organization, "test.ping", {"message": "hi"})
    webhook_id = created.webhook.id
    created.webhook.delete()  # its deliveries go with it

    assert drain.webhook_drain(webhook_id=webhook_id) == drain.DrainOutcome()
    assert receiver.received() == []


def _subscriptions(tenant, other_tenant, receiver) -> list[str]:
    """Five webhooks of which only the first two should get a threat.detected of ``tenant``."""
    subscribed = make_webhook(tenant.organization, receiver.url("/a"), events=["threat.detected"])
    wildcard = make_webhook(tenant.organization, receiver.url("/b"), events=["*"])
    make_webhook(tenant.organization, receiver.url("/c"), events=["agent.online"])
    make_webhook(tenant.organization, receiver.url("/d"), events=["*"], enabled=False)
    make_webhook(other_tenant.organization, receiver.url("/e"), events=["*"])
    return sorted([subscribed.webhook.id, wildcard.webhook.id])


def test_emit_fans_out_to_enabled_subscribed_webhooks_only(tenant, other_tenant, receiver, redis_client):
    expected = _subscriptions(tenant, other_tenant, receiver)

    event = emit(tenant.organization, "threat.detected", {"threat_id": "thr_1", "severity": "low"})

    assert sorted(Delivery.objects.filter(event_id=event.id).values_list("webhook_id", flat=True)) == expected


def test_emit_stores_neither_event_nor_deliveries_when_caller_rolls_back(tenant, receiver, redis_client):
    make_webhook(tenant.organization, receiver.url())

    def emit_in_failing_transaction() -> None:
        with transaction.atomic():
            emit(tenant.organization, "test.ping", {"message": "never"})
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        emit_in_failing_transaction()

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert redis_client.keys("*wake*") == []  # nothing was woken for it


def _answers_after(seconds: float):
    def respond(_handler):
        time.sleep(seconds)
        return 200, {}, b"ok"

    return respond


def _drain_messages(redis_client, webhook_id: str) -> int:
    """Drain messages waiting in the broker for ``webhook_id``."""
    messages = [json.loads(raw) for raw in redis_client.lrange(QUEUE, 0, -1)]
    return sum(m["headers"]["task"] == "deliveries.drain" and webhook_id in m["headers"]["argsrepr"] for m in messages)


def _drain_in_thread(webhook_id: str) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(drain.webhook_drain(webhook_id=webhook_id))
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_event_emitted_during_a_drain_is_sent_by_it_without_a_wake_message(tenant, receiver, redis_client):
    webhook = make_webhook(tenant.organization, receiver.url("/slow")).webhook
    receiver.responses["/slow"] = _answers_after(0.3)
    first = emit(tenant.organization, "test.ping", {"message": "first"})
    assert _drain_messages(redis_client, webhook.id) == 1
    redis_client.delete(QUEUE)  # this test runs that drain itself, as a worker would

    thread, outcome = _drain_in_thread(webhook.id)
    receiver.wait_for(1, timeout=5)  # the drain is now waiting for the receiver's answer
    second = emit(tenant.organization, "test.ping", {"message": "second"})
    assert _drain_messages(redis_client, webhook.id) == 0  # the running drain will claim it
    thread.join(timeout=10)

    assert [r.json()["id"] for r in receiver.received()] == [first.id, second.id]
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
    assert not outcome[0].again
    assert _drain_messages(redis_client, webhook.id) == 0


def test_event_emitted_after_a_drain_wakes_the_webhook_again(tenant, receiver, redis_client):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    emit(tenant.organization, "test.ping", {"message": "first"})
    redis_client.delete(QUEUE)
    drain.webhook_drain(webhook_id=webhook.id)

    emit(tenant.organization, "test.ping", {"message": "second"})

    assert _drain_messages(redis_client, webhook.id) == 1


def test_claim_size_fits_what_one_drain_sends_in_a_second_when_receiver_speed_is_known(settings):
    settings.WEBHOOK_BATCH_SIZE = 50
    assert drain._claim_size(None) == 1  # nothing timed yet: one at a time
    assert drain._claim_size(0.001) == 50  # a fast receiver: whole batches
    assert drain._claim_size(0.25) == 4
    assert drain._claim_size(5.0) == 1


def _counting(monkeypatch, module, name: str) -> list:
    """Record the results of every call of ``module.name`` (still called)."""
    results: list = []
    original = getattr(module, name)

    def counted(*args, **kwargs):
        results.append(original(*args, **kwargs))
        return results[-1]

    monkeypatch.setattr(module, name, counted)
    return results


def test_drain_of_a_receiver_already_timed_claims_everything_due_at_once_with_one_grant(
    tenant, receiver, redis_client, monkeypatch
):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    emit(tenant.organization, "test.ping", {"message": "first"})
    drain.webhook_drain(webhook_id=webhook.id)  # this process has now timed the receiver,
    assert drain._send_times.get(webhook.id) is not None
    drain._send_times.remember(webhook.id, 0.001)  # as a fast one (a loaded test machine may not be)
    for n in range(5):
        emit(tenant.organization, "test.ping", {"message": f"then {n}"})
    claims = _counting(monkeypatch, drain.leases, "claim")
    grants = _counting(monkeypatch, drain.ratelimit, "acquire")

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    # One claim of all five: not one, then the rest, then one that finds nothing.
    assert [len(claimed) for claimed in claims] == [5]
    # The first grant covers all five (more follow only if a send runs past its planned moment).
    assert grants[0].granted == 5
    assert outcome.sent == 5
    assert len(receiver.received()) == 6


def test_rate_grants_pace_a_timed_receivers_sends_with_one_call(redis_client, monkeypatch):
    calls = _counting(monkeypatch, drain.ratelimit, "acquire")
    grants = drain.RateGrants("org-paced", send_seconds=0.02)  # a receiver answering in 20 ms

    assert grants.take("wh_paced", wanted=5) is None
    first = time.monotonic()
    for index in range(1, 5):
        time.sleep(max(0.0, first + index * 0.02 - time.monotonic()))  # sends of 20 ms each
        assert grants.take("wh_paced", wanted=5 - index) is None

    assert [grant.granted for grant in calls] == [5]
    # Each send counted at the moment it was planned for: 20 ms apart, by the server's clock.
    stamps = sorted(score for _, score in redis_client.zrange(ratelimit.rate_key("org-paced"), 0, -1, withscores=True))
    assert [round(b - a, 3) for a, b in zip(stamps, stamps[1:], strict=False)] == [20.0] * 4


def test_rate_grants_plan_again_without_waiting_when_sends_run_ahead(redis_client, monkeypatch):
    calls = _counting(monkeypatch, drain.ratelimit, "acquire")
    grants = drain.RateGrants("org-ahead", send_seconds=0.05)  # planned 50 ms apart
    assert grants.take("wh_ahead", wanted=2) is None

    started = time.monotonic()
    assert grants.take("wh_ahead", wanted=1) is None  # at once: 50 ms ahead of its moment
    took = time.monotonic() - started
    grants.give_back()

    assert took < 0.04  # no waiting for the planned moment: a new grant stamped now
    assert [grant.granted for grant in calls] == [2, 1]
    assert redis_client.zcard(ratelimit.rate_key("org-ahead")) == 2  # one member a send made


def test_rate_grants_give_back_what_was_skipped_or_never_sent_when_the_drain_ends(redis_client):
    grants = drain.RateGrants("org-slow", send_seconds=0.01)
    assert grants.take("wh_slow", wanted=10) is None  # ten sends planned 10 ms apart

    time.sleep(0.05)  # a send that took 50 ms: the next few moments have passed
    assert grants.take("wh_slow", wanted=9) is None
    grants.give_back()

    # Two sends made, two members in the log: the skipped and the unused ones were removed.
    assert redis_client.zcard(ratelimit.rate_key("org-slow")) == 2


def test_secrets_absent_from_database_dump_when_stored(tenant, receiver):
    chosen = "a-very-recognizable-secret-4711"
    created = make_webhook(tenant.organization, receiver.url(), secret=chosen)
    rotated = webhook_services.webhook_rotate_secret(webhook=created.webhook)
    generated = make_webhook(tenant.organization, receiver.url()).secret

    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--data-only", connection.settings_dict["NAME"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert created.webhook.id in dump  # the dump does hold the webhook
    for secret in (chosen, rotated, generated, generated.removeprefix("whsec_"), tenant.key):
        assert secret not in dump


def test_drain_stops_and_disables_webhook_when_receiver_answers_gone(tenant, receiver, redis_client):
    created = make_webhook(tenant.organization, receiver.url("/gone"))
    receiver.responses["/gone"] = 410
    for n in range(3):
        emit(tenant.organization, "test.ping", {"message": str(n)})

    outcome = drain.webhook_drain(webhook_id=created.webhook.id)
    drain.webhook_drain(webhook_id=created.webhook.id)

    assert len(receiver.received()) == 1  # nothing more is sent once the receiver said Gone
    webhook = Webhook.objects.get(id=created.webhook.id)
    assert (webhook.enabled, webhook.disabled_reason) == (False, Webhook.DisabledReason.GONE)
    assert webhook.disabled_reason_text == "receiver answered 410 Gone"
    assert outcome.again  # the other two were due: the next drain marks them failed, unattempted
    statuses = sorted(Delivery.objects.filter(webhook=webhook).values_list("status", "attempts"))
    assert statuses == [("failed", 0), ("failed", 0), ("failed", 1)]


def test_drain_sends_nothing_when_the_claim_comes_back_too_late_for_its_lease(
    tenant, receiver, redis_client, settings, monkeypatch
):
    # A 1 s attempt timeout leaves 2 s of lease for sending (2 x 1 s + 10 s, less the 10 s margin).
    settings.WEBHOOK_TIMEOUT = 1
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    emit(tenant.organization, "test.ping", {"message": "late"})
    claim = drain.leases.claim

    def late_claim(webhook_id: str, limit: int):
        claimed = claim(webhook_id, limit)
        time.sleep(1.5)  # the database's reply is held up on its way back (a slow or cut network)
        return claimed

    monkeypatch.setattr(drain.leases, "claim", late_claim)
    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert receiver.received() == []  # its lease may have run out meanwhile: another worker's to send
    delivery = Delivery.objects.get(webhook=webhook)
    assert (delivery.status, delivery.attempts, delivery.lease_until) == ("pending", 0, None)
    assert outcome.again
    monkeypatch.setattr(drain.leases, "claim", claim)
    drain.webhook_drain(webhook_id=webhook.id)
    assert len(receiver.received()) == 1  # given back, and sent by the next drain


def test_database_ends_a_session_left_idle_in_a_transaction(db):
    from django.conf import settings as django_settings

    options = django_settings.DATABASES["default"]["OPTIONS"]["options"]
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        (shown,) = cursor.fetchone()
        cursor.execute("SHOW jit")
        (jit,) = cursor.fetchone()
    assert options == "-c idle_in_transaction_session_timeout=30000 -c jit=off"
    assert shown == "30s"
    assert jit == "off"  # see DATABASE_JIT
