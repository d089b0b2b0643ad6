"""End to end: what one receiver or one organization does never stalls anyone else's deliveries.

A real worker, real PostgreSQL and Redis, and receivers that misbehave on purpose.
"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import make_tenant, make_webhook, wait_until

from deliveries.models import Attempt, Delivery
from events import emit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_every_attempt_is_recorded_once_when_one_answer_in_a_batch_holds_nul(receiver, start_worker, tenant):
    webhook = make_webhook(tenant.organization, receiver.url("/nul")).webhook
    count = {"n": 0}
    lock = threading.Lock()

    def respond(_handler):
        with lock:
            count["n"] += 1
            nth = count["n"]
        return 200, {}, b"ok\x00nul" if nth == 10 else b"ok"

    receiver.responses["/nul"] = respond
    for n in range(20):
        emit(tenant.organization, "test.ping", {"message": str(n)})
    start_worker()

    wait_until(
        lambda: Delivery.objects.filter(webhook=webhook, status="succeeded").count() == 20,
        timeout=30,
        message="not every delivery succeeded",
    )
    time.sleep(1.5)  # a lease expiring or a sweep would send again now (sweeps run every second)
    assert len(receiver.received("/nul")) == 20
    assert sorted(Delivery.objects.filter(webhook=webhook).values_list("attempts", flat=True)) == [1] * 20
    odd = Attempt.objects.get(delivery__webhook=webhook, response_body_replaced=True)
    assert odd.response_body == "ok\ufffdnul"


ORG_CONCURRENCY = 3
HANGING_WEBHOOKS = 40
WORKER_THREADS = 8
VICTIM_EVENTS = 40
VICTIM_RATE = 10.0  # events per second
# Far below the attempt timeout the hanging endpoints hold a thread for; generous for CI.
VICTIM_DEADLINE_S = 1.5


def test_other_organization_is_not_delayed_when_one_has_many_hanging_endpoints(
    drip_server, receiver, start_worker, redis_client
):
    hostile, victim = make_tenant("Hostile"), make_tenant("Victim")
    drip = drip_server(0.5)  # one byte every half second: each attempt runs to its deadline
    for _ in range(HANGING_WEBHOOKS):
        make_webhook(hostile.organization, drip.url())
    make_webhook(victim.organization, receiver.url("/victim"))
    start_worker(
        beat=True,
        WEBHOOK_TIMEOUT="1",
        WEBHOOK_ORG_CONCURRENCY=str(ORG_CONCURRENCY),
        CELERY_WORKER_CONCURRENCY=str(WORKER_THREADS),
        WEBHOOK_RETRY_DELAYS="600,600,600,600,600",
    )
    emit(hostile.organization, "test.ping", {"message": "to every hanging endpoint"})
    wait_until(lambda: len(drip.hits) >= ORG_CONCURRENCY, timeout=10, message="the hanging endpoints were not tried")

    emitted: dict[str, float] = {}
    for n in range(VICTIM_EVENTS):
        event = emit(victim.organization, "test.ping", {"message": str(n)})
        emitted[event.id] = time.time()
        time.sleep(1 / VICTIM_RATE)
    arrivals = receiver.wait_for(VICTIM_EVENTS, path="/victim", timeout=10)

    delays = sorted(r.at - emitted[r.json()["id"]] for r in arrivals)
    assert delays[-1] < VICTIM_DEADLINE_S, f"slowest victim delivery took {delays[-1]:.2f}s"
    # The hostile organization never had more attempts open than its cap ...
    hits = sorted(drip.hits)
    assert max(sum(1 for t in hits if start <= t < start + 0.9) for start in hits) <= ORG_CONCURRENCY
    # ... and its parked work still went out: every hanging endpoint was tried once.
    wait_until(
        lambda: (
            Delivery.objects.filter(webhook__organization=hostile.organization, attempts=1).count() == HANGING_WEBHOOKS
        ),
        timeout=60,
        message="parked webhooks were not all woken",
    )
