"""End to end: emitting through a Redis outage. Redis (the broker and the limiter) is a
dedicated redis-server this test stops and starts again, empty; a real worker and beat run
against it. Emits go on at the producer's speed (one failed wake, then none tried until the
backoff ends), and once Redis is back the sweeper has everything delivered."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from conftest import make_webhook, wait_until

from deliveries import dispatch
from deliveries.models import Delivery
from events import emit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SWEEP_INTERVAL = 2.0
# The bound: everything emitted during the outage delivered this long after Redis is back.
DELIVERED_WITHIN = SWEEP_INTERVAL + 10
EVENTS = 50
# A backoff no test outlasts: the emitting process retries nothing while the test counts.
LONG_BACKOFF_SECONDS = 600.0


@pytest.fixture(autouse=True)
def closed_breaker() -> Iterator[None]:
    dispatch.breaker.close()
    yield
    dispatch.breaker.close()


def test_emits_through_a_redis_outage_are_delivered_once_redis_is_back(
    redis_server, receiver, start_worker, tenant, settings, caplog
):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    settings.WEBHOOK_WAKE_BACKOFF = LONG_BACKOFF_SECONDS  # in this process: no background retry
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url
    start_worker(
        beat=True,
        REDIS_URL=redis_server.url,
        CELERY_BROKER_URL=redis_server.url,
        WEBHOOK_SWEEP_INTERVAL=str(SWEEP_INTERVAL),
    )
    emit(tenant.organization, "agent.online", {"agent_id": "agt_before"})
    receiver.wait_for(1)  # the pipeline runs on this Redis

    redis_server.stop()
    for i in range(EVENTS):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})

    deliveries = Delivery.objects.filter(webhook=webhook)
    assert deliveries.count() == EVENTS + 1  # every event stored with its delivery
    # The first wake failed and opened the breaker; the other 49 emits did not try at all.
    assert dispatch.breaker.is_open()
    assert caplog.text.count("not sent") == 1
    assert len(receiver.received()) == 1

    redis_server.start()  # back, and empty: every message and wake flag is gone
    back = time.monotonic()
    wait_until(
        lambda: deliveries.filter(status="succeeded").count() == EVENTS + 1,
        timeout=DELIVERED_WITHIN,
        message=f"not everything was delivered within {DELIVERED_WITHIN} s of Redis coming back",
    )
    assert time.monotonic() - back < DELIVERED_WITHIN
    arrived = {r.json()["data"]["agent_id"] for r in receiver.received()}
    assert arrived == {"agt_before", *(f"agt_{i}" for i in range(EVENTS))}
