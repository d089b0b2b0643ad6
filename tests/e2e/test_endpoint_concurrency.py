"""End to end: a slow endpoint gets parallel attempts up to its limit, and never delays others."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import make_tenant, make_webhook, wait_until

from deliveries.models import Delivery
from events import emit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ENDPOINT_CONCURRENCY = 3
BACKLOG = 30
ANSWER_SECONDS = 0.3  # the backlog takes BACKLOG * ANSWER_SECONDS / ENDPOINT_CONCURRENCY = 3 s at best


class SlowAnswers:
    """Answers after ANSWER_SECONDS, counting the requests in flight at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def __call__(self, _handler):
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(ANSWER_SECONDS)
        with self.lock:
            self.in_flight -= 1
        return 200, {}, b"ok"


def test_slow_endpoint_gets_its_concurrency_and_others_are_not_delayed_when_backlogged(receiver, start_worker):
    slow_tenant, other_tenant = make_tenant("Slow"), make_tenant("Other")
    slow = make_webhook(slow_tenant.organization, receiver.url("/slow")).webhook
    make_webhook(other_tenant.organization, receiver.url("/other"))
    answers = SlowAnswers()
    receiver.responses["/slow"] = answers
    start_worker(WEBHOOK_ENDPOINT_CONCURRENCY=str(ENDPOINT_CONCURRENCY))

    for n in range(BACKLOG):
        emit(slow_tenant.organization, "agent.online", {"agent_id": f"agt_{n}"})
    receiver.wait_for(1, path="/slow", timeout=10)
    other = emit(other_tenant.organization, "agent.online", {"agent_id": "agt_other"})

    # It arrives long before the slow endpoint's backlog (3 s or more) is through.
    (request,) = receiver.wait_for(1, path="/other", timeout=1.5)
    assert request.json()["id"] == other.id
    assert len(receiver.received("/slow")) < BACKLOG
    wait_until(
        lambda: Delivery.objects.filter(webhook=slow, status="succeeded").count() == BACKLOG,
        timeout=30,
        message="the slow endpoint's backlog was not delivered",
    )
    assert answers.most_in_flight == ENDPOINT_CONCURRENCY  # drains beside each other, up to the limit
    assert len(receiver.received("/slow")) == BACKLOG  # each once
