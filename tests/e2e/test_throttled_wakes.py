"""End to end: held wakes cost almost nothing at the broker. With a real worker, an organization
emits 100 events/s while every message published to the broker (Redis: an LPUSH onto the
queue, countdowns included) is counted with MONITOR: over its hourly limit, to two webhooks;
and to one webhook whose drains find the workers behind (WEBHOOK_COALESCE_SECONDS)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from conftest import make_webhook, wait_until

from deliveries import dispatch
from deliveries.models import Delivery
from events import emit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUEUE = "webhooks"  # CELERY_TASK_DEFAULT_QUEUE
WEBHOOKS = 2
PER_HOUR = 4  # two events to each webhook spend the hour
RATE = 100  # events/s while throttled
SECONDS = 3


@dataclass
class PublishCounter:
    """Counts LPUSHes onto the queue in this run's Redis database (the broker's publishes)."""

    client: redis.Redis
    db: int
    published: list[float] = field(default_factory=list)
    stopping: bool = False

    def run(self) -> None:
        with self.client.monitor() as monitor:
            while not self.stopping:
                command = monitor.next_command()
                if int(command["db"]) == self.db and command["command"].startswith(f"LPUSH {QUEUE} "):
                    self.published.append(time.monotonic())


@pytest.fixture
def publishes(redis_client) -> Iterator[PublishCounter]:
    counter = PublishCounter(
        redis.Redis.from_url(os.environ["REDIS_URL"]), db=redis_client.connection_pool.connection_kwargs["db"]
    )
    thread = threading.Thread(target=counter.run, daemon=True)
    thread.start()
    time.sleep(0.2)  # MONITOR is on before anything is counted
    yield counter
    counter.stopping = True
    redis_client.ping()  # any command wakes the monitor so it sees the flag
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def closed_breaker() -> Iterator[None]:
    dispatch.breaker.close()
    yield
    dispatch.breaker.close()


def test_org_over_its_hourly_limit_costs_at_most_one_message_per_webhook_per_second(
    receiver, start_worker, tenant, publishes
):
    hooks = [make_webhook(tenant.organization, receiver.url(f"/{i}")).webhook for i in range(WEBHOOKS)]
    start_worker(WEBHOOK_RATE_PER_HOUR=str(PER_HOUR))
    for i in range(PER_HOUR // WEBHOOKS + 1):  # the hour's budget, and one event over it
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})
    receiver.wait_for(PER_HOUR)
    wait_until(lambda: Delivery.objects.filter(status="pending", attempts=0).count() == WEBHOOKS)

    start = time.monotonic()
    published_before = len(publishes.published)
    for i in range(RATE * SECONDS):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_over_{i}"})
        time.sleep(max(0.0, start + (i + 1) / RATE - time.monotonic()))
    time.sleep(1)  # whatever those emits set off has reached the broker
    elapsed = time.monotonic() - start
    published = len(publishes.published) - published_before

    assert len(receiver.received()) == PER_HOUR  # nothing sent over the limit
    assert Delivery.objects.filter(webhook__in=hooks, status="pending").count() == WEBHOOKS * (RATE * SECONDS + 1)
    assert published <= WEBHOOKS * elapsed, f"{published} broker messages in {elapsed:.1f} s"


COALESCE_SECONDS = 1.0
# The second event comes this long after the first: its drain would have ended by then.
SECOND_EVENT_AFTER = 0.3


def test_behind_workers_hold_a_webhooks_wake_and_its_countdown_delivers(receiver, start_worker, tenant, publishes):
    # Lateness 0: every drain counts as behind, as under a load this test cannot make on purpose.
    hook = make_webhook(tenant.organization, receiver.url()).webhook
    start_worker(WEBHOOK_COALESCE_LATENESS="0", WEBHOOK_COALESCE_SECONDS=str(COALESCE_SECONDS))

    emit(tenant.organization, "agent.online", {"agent_id": "agt_first"})
    receiver.wait_for(1)
    first_drained = time.monotonic()
    time.sleep(SECOND_EVENT_AFTER)
    emit(tenant.organization, "agent.online", {"agent_id": "agt_second"})
    emitted = time.monotonic()
    receiver.wait_for(2)
    arrived = time.monotonic()

    # The wake stayed held: the second event sent no message of its own and went with the
    # countdown, a window after the first drain (unheld, it would have gone at once).
    assert arrived - first_drained >= COALESCE_SECONDS * 0.9, f"arrived {arrived - emitted:.2f} s after its emit"
    held = [t - first_drained for t in publishes.published if first_drained + 0.1 < t < emitted + 0.5]
    assert not held, f"messages published while the wake was held: {held}"
    wait_until(lambda: Delivery.objects.filter(webhook=hook, status="succeeded").count() == 2)
