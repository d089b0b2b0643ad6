"""The wake after a commit against real sockets: Redis and a broker that refuse, hang or work.

A producer never waits on an outage: every socket step of the wake gives up after
WEBHOOK_WAKE_TIMEOUT, nothing is retried, and after one failure the breaker keeps the process
from trying again for WEBHOOK_WAKE_BACKOFF. What an outage costs in time is a benchmark
figure (``bench/run outage``); these tests check the behaviour.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from conftest import make_webhook, wait_until

from deliveries import dispatch
from deliveries.models import Delivery
from events import emit

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "webhooks"  # CELERY_TASK_DEFAULT_QUEUE: the Redis list the messages wait in
# Far above WEBHOOK_WAKE_TIMEOUT, far below what one wake cost before it was bounded
# (0.6 s against a refused port, 5 s against a Redis that never answers).
GENEROUS_BOUND_SECONDS = 0.5
# A backoff no test outlasts: nothing is retried in the background while it counts.
LONG_BACKOFF_SECONDS = 600.0


@dataclass
class DeadServer:
    """A TCP port that takes connections and never answers (``hang``) or closes them at once."""

    hang: bool
    sock: socket.socket = field(default_factory=socket.socket)
    accepted: int = 0
    held: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.hang:
                self.held.append(conn)
            else:
                conn.close()


@pytest.fixture
def dead_server() -> Iterator[Callable[..., DeadServer]]:
    servers: list[DeadServer] = []

    def start(*, hang: bool) -> DeadServer:
        server = DeadServer(hang=hang)
        server.sock.bind(("127.0.0.1", 0))
        server.sock.listen(64)
        threading.Thread(target=server.serve, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.sock.close()
        for conn in server.held:
            conn.close()


@pytest.fixture(autouse=True)
def closed_breaker() -> Iterator[None]:
    dispatch.breaker.close()
    yield
    dispatch.breaker.close()  # a later test's emits must not find it open


def _drain_messages(redis_client) -> list[str]:
    """The webhook ids of the drain messages waiting in the broker."""
    messages = [json.loads(raw) for raw in redis_client.lrange(QUEUE, 0, -1)]
    return [m["headers"]["argsrepr"] for m in messages if m["headers"]["task"] == dispatch.DRAIN_TASK]


def test_wake_gives_up_at_once_when_redis_accepts_but_never_answers(tenant, settings, dead_server, caplog):
    make_webhook(tenant.organization, "http://127.0.0.1:9/hook")
    silent = dead_server(hang=True)
    settings.REDIS_URL = settings.CELERY_BROKER_URL = silent.url

    started = time.monotonic()
    event = emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    took = time.monotonic() - started

    assert took < GENEROUS_BOUND_SECONDS
    assert Delivery.objects.filter(event=event).count() == 1  # stored; the sweeper will wake it
    assert dispatch.breaker.is_open()
    assert "not sent" in caplog.text


def test_later_wakes_try_nothing_when_the_breaker_is_open(tenant, settings, dead_server, caplog):
    settings.WEBHOOK_WAKE_BACKOFF = LONG_BACKOFF_SECONDS  # no background retry within the test
    make_webhook(tenant.organization, "http://127.0.0.1:9/hook")
    refusing = dead_server(hang=False)
    settings.REDIS_URL = settings.CELERY_BROKER_URL = refusing.url

    emit(tenant.organization, "agent.online", {"agent_id": "agt_0"})
    wait_until(lambda: refusing.accepted >= 1, timeout=5)
    tried = refusing.accepted
    for i in range(1, 50):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})

    assert Delivery.objects.count() == 50
    assert refusing.accepted == tried  # not one more connection for the 49 emits after the failure
    assert caplog.text.count("not sent") == 1


def test_wakes_start_again_in_the_background_after_the_backoff(tenant, settings, redis_client, dead_server):
    first = make_webhook(tenant.organization, "http://127.0.0.1:9/a", ["agent.online"]).webhook
    second = make_webhook(tenant.organization, "http://127.0.0.1:9/b", ["agent.offline"]).webhook
    third = make_webhook(tenant.organization, "http://127.0.0.1:9/c", ["test.ping"]).webhook
    working_url = settings.REDIS_URL
    settings.WEBHOOK_WAKE_BACKOFF = 0.5
    settings.REDIS_URL = settings.CELERY_BROKER_URL = dead_server(hang=False).url
    emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})  # fails: the breaker opens
    assert dispatch.breaker.is_open()

    settings.REDIS_URL = settings.CELERY_BROKER_URL = working_url  # Redis is back
    emit(tenant.organization, "agent.offline", {"agent_id": "agt_2"})  # within the backoff: skipped
    assert _drain_messages(redis_client) == []

    time.sleep(settings.WEBHOOK_WAKE_BACKOFF)  # the backoff is over; nothing tries by itself
    emit(tenant.organization, "agent.offline", {"agent_id": "agt_3"})
    # That emit tried nothing inline: a background probe wakes every webhook skipped, each once.
    wait_until(lambda: len(_drain_messages(redis_client)) == 2, timeout=5)
    assert sorted(_drain_messages(redis_client)) == sorted([f"['{first.id}']", f"['{second.id}']"])
    wait_until(lambda: not dispatch.breaker.is_open(), timeout=5)

    emit(tenant.organization, "test.ping", {"message": "closed again"})  # inline once more
    assert f"['{third.id}']" in _drain_messages(redis_client)


def test_wake_is_coalesced_and_sent_when_redis_works(tenant, redis_client):
    webhook = make_webhook(tenant.organization, "http://127.0.0.1:9/hook").webhook
    for i in range(5):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})
    assert _drain_messages(redis_client) == [f"['{webhook.id}']"]
    assert not dispatch.breaker.is_open()
