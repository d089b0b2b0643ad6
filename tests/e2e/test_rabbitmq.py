"""End to end with RabbitMQ as the broker (``CELERY_BROKER_URL=amqp://…``): the pipeline with a
retry, and emits while RabbitMQ cannot be reached. Skipped when no RabbitMQ answers on
127.0.0.1:5672. Each run gets its own virtual host when ``rabbitmqctl`` can make one, so runs
side by side never consume each other's messages."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import make_webhook, unused_port, wait_until

from deliveries import dispatch
from deliveries.models import Delivery
from events import emit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RABBITMQ = ("127.0.0.1", 5672)
SWEEP_INTERVAL = 2.0
DELIVERED_WITHIN = SWEEP_INTERVAL + 10
EVENTS = 50
# A backoff no test outlasts: the emitting process retries nothing while the test counts.
LONG_BACKOFF_SECONDS = 600.0


def _rabbitmqctl(*args: str) -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=60, check=False)
    return done.returncode == 0


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    try:
        socket.create_connection(RABBITMQ, timeout=1).close()
    except OSError:
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    vhost = f"webhooks_test_{os.environ['TEST_RUN_ID']}"
    if _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"):
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        _rabbitmqctl("delete_vhost", vhost)
    else:
        yield "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture(autouse=True)
def closed_breaker() -> Iterator[None]:
    dispatch.breaker.close()
    yield
    dispatch.breaker.close()


def test_pipeline_delivers_and_retries_when_rabbitmq_is_the_broker(
    rabbitmq_url, receiver, start_worker, tenant, settings
):
    answers = iter([500])
    receiver.responses["/flaky"] = lambda _: (next(answers, 200), {}, b"answer")
    flaky = make_webhook(tenant.organization, receiver.url("/flaky"), ["agent.online"]).webhook
    make_webhook(tenant.organization, receiver.url("/steady"), ["agent.online"])
    settings.CELERY_BROKER_URL = rabbitmq_url
    start_worker(CELERY_BROKER_URL=rabbitmq_url, WEBHOOK_RETRY_DELAYS="1,1,1,1,1")

    emitted = [emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"}).id for i in range(10)]

    wait_until(lambda: Delivery.objects.filter(status="succeeded").count() == 20, timeout=30)
    assert not dispatch.breaker.is_open()
    first = Delivery.objects.get(webhook=flaky, event_id=emitted[0])
    assert first.attempts == 2  # 500, then the retry (a countdown message through RabbitMQ)
    assert set(Delivery.objects.filter(webhook=flaky).exclude(id=first.id).values_list("attempts", flat=True)) == {1}
    assert sorted(r.json()["id"] for r in receiver.received("/steady")) == sorted(emitted)


def test_emits_while_rabbitmq_is_down_are_delivered_once_it_is_back(
    rabbitmq_url, receiver, start_worker, tenant, settings, caplog
):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    settings.WEBHOOK_WAKE_BACKOFF = LONG_BACKOFF_SECONDS  # in this process: no background retry
    settings.CELERY_BROKER_URL = f"amqp://guest:guest@127.0.0.1:{unused_port()}//"  # RabbitMQ down

    for i in range(EVENTS):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})

    deliveries = Delivery.objects.filter(webhook=webhook)
    assert deliveries.count() == EVENTS
    assert dispatch.breaker.is_open()
    assert caplog.text.count("not sent") == 1  # one failed wake, then none tried

    # RabbitMQ back: a worker and beat on it; the sweeper wakes what the outage missed.
    settings.CELERY_BROKER_URL = rabbitmq_url
    start_worker(beat=True, CELERY_BROKER_URL=rabbitmq_url, WEBHOOK_SWEEP_INTERVAL=str(SWEEP_INTERVAL)).wait_ready()
    back = time.monotonic()  # as for a worker that was running through the outage
    wait_until(
        lambda: deliveries.filter(status="succeeded").count() == EVENTS,
        timeout=DELIVERED_WITHIN,
        message=f"not everything was delivered within {DELIVERED_WITHIN} s of RabbitMQ coming back",
    )
    assert time.monotonic() - back < DELIVERED_WITHIN
    assert len({r.json()["id"] for r in receiver.received()}) == EVENTS
