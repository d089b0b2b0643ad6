"""A worker or beat that lost the broker tries again at least every
CELERY_BROKER_RECONNECT_MAX_INTERVAL seconds, however long the outage: kombu's own schedule
(2, 4, 6, … up to 30 s between tries) left a worker idle for up to 30 s after Redis came back
(measured: 31 s after a 45 s outage, 4.4 s with the cap). And a worker that loses the broker in
the middle of its work survives to reconnect."""

from __future__ import annotations

import pytest
from conftest import unused_port
from kombu import Consumer, Exchange, Producer, Queue
from kombu.common import ignore_errors
from kombu.exceptions import OperationalError
from kombu.message import Message

from webhooks_project.celery import BrokerConnection, app

TRIES = 4


def test_the_worker_and_beat_connect_through_the_capped_connection():
    assert isinstance(app.connection_for_write(), BrokerConnection)
    assert isinstance(app.connection_for_read().clone(), BrokerConnection)


def test_a_lost_broker_is_tried_again_at_least_every_max_interval(settings):
    cap = app.conf.broker_reconnect_max_interval
    assert cap == settings.CELERY_BROKER_RECONNECT_MAX_INTERVAL
    waits: list[float] = []
    conn = app.connection_for_write(f"redis://127.0.0.1:{unused_port()}/0")
    # As Celery's consumer and beat call it: an errback and a number of retries, nothing else.
    with pytest.raises(OperationalError):
        conn.ensure_connection(lambda exc, interval: waits.append(interval), TRIES)
    assert len(waits) == TRIES
    assert max(waits) <= cap
    assert waits[-1] == cap  # the backoff still grows up to the cap


def test_a_caller_that_names_its_intervals_keeps_them():
    waits: list[float] = []
    conn = app.connection_for_write(f"redis://127.0.0.1:{unused_port()}/0")
    with pytest.raises(OperationalError):
        conn.ensure_connection(lambda exc, interval: waits.append(interval), 1, interval_start=0.25)
    assert waits == [0.25]


def drain_until_idle(conn, tries: int = 5) -> None:
    """Read what the channel has (the broadcast subscription's confirmation) until a read
    times out, leaving a BRPOP in flight."""
    for _ in range(tries):
        try:
            conn.drain_events(timeout=0.1)
        except TimeoutError:
            return
    raise AssertionError("the channel never went idle")


def lose_redis_mid_work(redis_server) -> tuple[BrokerConnection, Message]:
    """A worker's connection as Redis goes away: a task received and not yet acked, a BRPOP
    and the broadcast subscription in flight; then what Celery's consumer does on losing the
    broker (on_connection_error_after_connected): collect the connection and close it,
    ignoring connection errors. Returns the connection and the unacked task."""
    conn = app.connection_for_read(redis_server.url)
    channel = conn.default_channel
    tasks = Queue("tasks")
    broadcast = Queue("broadcast", Exchange("broadcast", type="fanout"), auto_delete=True)
    Producer(channel).publish({"task": 1}, routing_key="tasks", declare=[tasks])
    unacked: list[Message] = []
    Consumer(channel, [tasks], callbacks=[lambda body, message: unacked.append(message)]).consume()
    Consumer(channel, [broadcast], no_ack=True).consume()
    conn.drain_events(timeout=2)
    assert len(unacked) == 1
    drain_until_idle(conn)

    redis_server.stop()
    conn.collect(socket_timeout=1)
    # The second close of the channel left half closed raised AttributeError from kombu's
    # Redis transport, and the worker died ("Unrecoverable error").
    ignore_errors(conn, conn.close)
    return conn, unacked[0]


def test_a_worker_that_loses_redis_mid_work_closes_its_connection_without_dying(redis_server):
    conn, _task = lose_redis_mid_work(redis_server)
    assert conn.connected is False


def test_a_task_that_ends_after_the_reconnect_is_acked_without_killing_the_worker(redis_server):
    _conn, task = lose_redis_mid_work(redis_server)
    redis_server.start()  # Celery's consumer has reconnected; the task running meanwhile ends

    task.ack()  # raised AttributeError (the old connection's transport detached): the worker died

    assert task.acknowledged
