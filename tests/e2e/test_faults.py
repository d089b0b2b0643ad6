"""End to end: at-least-once delivery through faults. A worker killed mid-flight, Redis flushed
before first attempts and while retries wait, Redis unreachable: every delivery still arrives."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from conftest import make_tenant, make_webhook, wait_until
from django.db.models.functions import Now
from django.utils import timezone

from deliveries.models import Delivery
from events import services as events
from events.models import Event
from webhooks_project.ids import new_id

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUEUE = "webhooks"  # CELERY_TASK_DEFAULT_QUEUE: the Redis list the messages wait in
# Short attempts, so a killed worker's leases (2 * timeout + 10 s) expire soon.
FAST_LEASES = {"WEBHOOK_TIMEOUT": "2"}


def _slowly(_handler):
    time.sleep(0.02)
    return 200, {}, b"ok"


def _delivery_ids_by_event(requests) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for request in requests:
        seen[request.json()["id"]].add(request.headers["X-CyberCage-Delivery-ID"])
    return seen


def test_every_delivery_arrives_when_worker_is_killed_mid_flight(receiver, start_worker, tenant):
    receiver.responses["/slow"] = _slowly
    webhook = make_webhook(tenant.organization, receiver.url("/slow")).webhook
    total = 300
    for i in range(total):
        events.emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})
    worker = start_worker(**FAST_LEASES)

    wait_until(lambda: len(receiver.received()) >= 30, timeout=30, interval=0.01)
    worker.kill()
    arrived_before_kill = {r.headers["X-CyberCage-Delivery-ID"] for r in receiver.received()}
    assert len(arrived_before_kill) < total, "everything arrived before the kill: nothing was tested"
    # Some deliveries were leased by the dead worker: only lease expiry can free them.
    assert Delivery.objects.filter(webhook=webhook, lease_until__gt=Now(), status="pending").exists()

    start_worker(beat=True, **FAST_LEASES)
    wait_until(
        lambda: Delivery.objects.filter(webhook=webhook, status="succeeded").count() == total,
        timeout=60,
        message="not every delivery succeeded after the restart",
    )
    seen = _delivery_ids_by_event(receiver.received())
    assert len(seen) == total  # every event arrived
    # Duplicates are allowed (at least once), but a repeat carries the same delivery id.
    assert all(len(ids) == 1 for ids in seen.values())
    assert set().union(*seen.values()) == set(Delivery.objects.filter(webhook=webhook).values_list("id", flat=True))


def test_every_delivery_arrives_when_redis_loses_its_messages(receiver, start_worker, redis_client, tenant):
    failed_once: set[str] = set()

    def fail_first_attempt(handler):
        delivery_id = handler.headers["X-CyberCage-Delivery-ID"]
        if delivery_id in failed_once:
            return 200, {}, b"ok"
        failed_once.add(delivery_id)
        return 500, {}, b"not yet"

    receiver.responses["/flaky"] = fail_first_attempt
    flaky = make_webhook(tenant.organization, receiver.url("/flaky"), ["agent.online"]).webhook
    steady = make_webhook(tenant.organization, receiver.url("/steady"), ["agent.offline"]).webhook
    # Twenty deliveries wait for their retry; the worker holds the countdown messages.
    worker = start_worker(WEBHOOK_RETRY_DELAYS="2,2,2,2,2")
    for i in range(20):
        events.emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})
    wait_until(lambda: Delivery.objects.filter(webhook=flaky, status="retrying", attempts=1).count() == 20)
    worker.kill()
    # Fifty events whose deliveries' wake-up message waits in Redis for a worker.
    emitted = {events.emit(tenant.organization, "agent.offline", {"agent_id": f"agt_{i}"}).id for i in range(50)}
    assert redis_client.llen(QUEUE) >= 1

    redis_client.flushdb()  # every message is gone: only the database remembers
    start_worker(beat=True, WEBHOOK_RETRY_DELAYS="2,2,2,2,2")
    wait_until(
        lambda: (
            Delivery.objects.filter(webhook=flaky, status="succeeded", attempts=2).count() == 20
            and Delivery.objects.filter(webhook=steady, status="succeeded").count() == 50
        ),
        timeout=30,
    )
    attempts_seen = Counter(r.headers["X-CyberCage-Delivery-ID"] for r in receiver.received("/flaky"))
    assert len(attempts_seen) == 20
    assert min(attempts_seen.values()) >= 2  # the failed first attempt, then the retry
    assert set(_delivery_ids_by_event(receiver.received("/steady"))) == emitted


def test_sweeper_recovers_lost_delivery_when_another_endpoint_has_a_backlog(drip_server, receiver, start_worker):
    # More due deliveries than one sweep handles, at an endpoint that never answers.
    busy_tenant, quiet_tenant = make_tenant("Busy"), make_tenant("Quiet")
    silent = drip_server(None)
    busy = make_webhook(busy_tenant.organization, silent.url()).webhook
    quiet = make_webhook(quiet_tenant.organization, receiver.url()).webhook
    # Rows written straight to the database, as if every wake-up message had been lost. The
    # quiet endpoint's delivery is the oldest.
    lost = _lost_deliveries(quiet, 1) + _lost_deliveries(busy, 1100)

    start_worker(beat=True, **FAST_LEASES).wait_ready()
    (request,) = receiver.wait_for(1, timeout=10)
    assert request.headers["X-CyberCage-Delivery-ID"] == lost[0].id


def _lost_deliveries(webhook, count: int) -> list[Delivery]:
    now = timezone.now() - timedelta(minutes=1)
    built = [
        events.build_event(webhook.organization_id, "agent.online", {"agent_id": f"agt_{i}"}) for i in range(count)
    ]
    for event in built:
        event.created_at = now
    Event.objects.bulk_create(built)
    return Delivery.objects.bulk_create(
        [
            Delivery(
                id=new_id("dlv"),
                organization_id=webhook.organization_id,
                webhook=webhook,
                event=event,
                event_type=event.type,
                created_at=now,
                next_attempt_at=now,
            )
            for event in built
        ]
    )


def test_deliveries_wait_when_redis_is_unreachable(receiver, start_worker, tenant, tmp_path):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    # The broker still works; the rate limiter and endpoint slots (REDIS_URL) do not answer.
    worker = start_worker(beat=True, REDIS_URL="redis://127.0.0.1:1/0")
    for i in range(3):
        events.emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})

    log = tmp_path / "worker0.log"
    wait_until(lambda: log.read_text().count("redis unavailable") >= 2, timeout=30)
    deliveries = Delivery.objects.filter(webhook=webhook)
    assert deliveries.count() == 3
    assert set(deliveries.values_list("status", "attempts")) == {("pending", 0)}
    assert receiver.received() == []

    worker.stop()
    start_worker()  # Redis is back (the first beat keeps sweeping)
    receiver.wait_for(3, timeout=20)
    wait_until(lambda: deliveries.filter(status="succeeded").count() == 3)
