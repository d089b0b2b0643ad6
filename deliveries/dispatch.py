"""Waking a webhook's drain: the ``deliveries.drain`` messages, coalesced, now or later.

A wake is a message naming a webhook ("it may have work"), never a delivery: the drain asks
the database what is due. While one is pending or running, the webhook's wake-pending flag
(Redis) is set and further wakes send nothing: the running drain's next claim picks their
deliveries up, so a burst of events sends one message. A wake that never arrives costs
latency, not a delivery: the sweeper (``deliveries.periodic``) finds what is due.

The wake after a commit (``wake_all``: an emit, a retry, a test event) runs on the producer's
time, so it never waits on an outage. Its flags go through a Redis client and its message
through a broker connection that give up after WEBHOOK_WAKE_TIMEOUT on any connect, read or
write, and nothing is retried inline (kombu's publish retry policy and its connection retries,
~0.6 s against a refused port and far longer against one that drops packets, are off). After a
failure the process sends no such wake for WEBHOOK_WAKE_BACKOFF (a circuit breaker), then tries
again in the background, off any producer's time: an outage costs a producer one timeout, once.
The webhooks skipped meanwhile are remembered and woken when a wake gets through again; the
sweeper covers them as well.

The worker's own wakes (``wake``: drain again, a countdown to a retry, a parked webhook, the
sweeper's) keep Celery's publish with its retries: they hold up no producer, and a worker cut
off from its broker has nothing else to do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from functools import lru_cache

import redis
from django.conf import settings
from kombu.pools import ProducerPool

from deliveries import concurrency
from webhooks_project.celery import app as celery_app
from webhooks_project.redis import get_redis, get_wake_redis

logger = logging.getLogger(__name__)

DRAIN_TASK = "deliveries.drain"
# How long a coalesced wake stays "pending" if its message never runs (the sweeper covers it).
WAKE_PENDING_TTL_SECONDS = 15.0
# A countdown must stay clear of the broker's visibility timeout (else Redis redelivers it).
COUNTDOWN_HEADROOM = 0.9
# Most webhooks remembered while wakes are paused (beyond that, only the sweeper finds them).
MISSED_WAKES_MAX = 1_000
# Broker connections kept for the wake path per process (threads beyond it wait for one).
WAKE_CONNECTIONS = 10


class WakeBreaker:
    """The wake path's circuit breaker: after a failure, no wake is sent for WEBHOOK_WAKE_BACKOFF.

    Closed, ``admit`` lets every wake through. After a failure it is open: wakes are skipped and
    their webhooks remembered (up to MISSED_WAKES_MAX). Once the backoff is over, the next wake
    does not try inline either: it hands the remembered webhooks to one background attempt (the
    probe), which closes the breaker if it gets through and opens it again if not. So in an
    outage only the first failure costs a producer anything (at most the timeout); every later
    attempt is off the producer's time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_until: float | None = None  # None: closed
        self._probing = False
        self._missed: dict[str, None] = {}  # an insertion-ordered set

    def admit(self, webhook_ids: list[str], probe: Callable[[list[str]], None]) -> list[str]:
        """The webhooks to wake now, inline: all of them while closed, none otherwise.

        With the backoff over and no probe running, ``probe(missed)`` is started in a thread.
        """
        with self._lock:
            if self._open_until is None:
                return webhook_ids
            self._remember(webhook_ids)
            if self._probing or time.monotonic() < self._open_until:
                return []
            self._probing = True
            missed, self._missed = list(self._missed), {}
        threading.Thread(target=probe, args=(missed,), name="wake-probe", daemon=True).start()
        return []

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = None
            self._probing = False

    def failed(self, webhook_ids: list[str]) -> None:
        with self._lock:
            self._open_until = time.monotonic() + settings.WEBHOOK_WAKE_BACKOFF
            self._probing = False
            self._remember(webhook_ids)

    def is_open(self) -> bool:
        return self._open_until is not None

    def close(self) -> None:
        """Forget the failure and the missed wakes (tests; an operator's shell)."""
        with self._lock:
            self._open_until = None
            self._probing = False
            self._missed = {}

    def _remember(self, webhook_ids: list[str]) -> None:
        for webhook_id in webhook_ids:
            if len(self._missed) < MISSED_WAKES_MAX:
                self._missed[webhook_id] = None


breaker = WakeBreaker()


@lru_cache(maxsize=4)
def _wake_producers(broker_url: str, timeout: float) -> ProducerPool:
    """Producers on broker connections that give up after ``timeout`` and never retry.

    ``max_retries=0`` stops kombu's connection retries; the socket options bound a connect, a
    read and a write on Redis (``socket_*``) and on RabbitMQ (``connect_timeout``,
    ``read_timeout``, ``write_timeout``). Keyed by what builds them, like the Redis client.
    """
    connection = celery_app.connection_for_write(
        broker_url,
        connect_timeout=timeout,
        transport_options={
            "max_retries": 0,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "read_timeout": timeout,
            "write_timeout": timeout,
        },
    )
    return ProducerPool(
        connection.Pool(limit=WAKE_CONNECTIONS), limit=WAKE_CONNECTIONS, Producer=celery_app.amqp.Producer
    )


def _after_fork_in_child() -> None:
    # A forked child (a forking producer, gunicorn with --preload) must not share its parent's
    # broker sockets, nor a breaker whose lock another thread held at the fork: fresh ones.
    global breaker
    _wake_producers.cache_clear()
    breaker = WakeBreaker()


os.register_at_fork(after_in_child=_after_fork_in_child)


def wake_all(webhook_ids: list[str]) -> None:
    """Immediate, coalesced wakes after a commit, on the producer's time: bounded, never retried.

    One Redis round trip sets the webhooks' wake-pending flags; one message goes to each webhook
    whose flag was not already set. A failure opens the breaker (nothing is raised: the
    deliveries are committed, and the sweeper wakes them).
    """
    if webhook_ids:
        admitted = breaker.admit(webhook_ids, probe=_wake_or_open)
        if admitted:
            _wake_or_open(admitted)


def _wake_or_open(webhook_ids: list[str]) -> None:
    client = get_wake_redis()
    newly: list[str] = []
    try:
        marked = concurrency.mark_wakes_pending(client, webhook_ids, WAKE_PENDING_TTL_SECONDS)
        newly = [webhook_id for webhook_id, is_new in zip(webhook_ids, marked, strict=True) if is_new]
        if newly:
            with _wake_producers(settings.CELERY_BROKER_URL, settings.WEBHOOK_WAKE_TIMEOUT).acquire(
                block=True
            ) as producer:
                for webhook_id in newly:
                    celery_app.send_task(DRAIN_TASK, args=[webhook_id], producer=producer, retry=False)
    except Exception as exc:  # noqa: BLE001 - the database holds the deliveries; the sweeper wakes them
        breaker.failed(webhook_ids)
        logger.warning(
            "wake of %d webhooks not sent (%s: %s); none sent for %.1f s, the sweeper will pick them up",
            len(webhook_ids),
            type(exc).__name__,
            exc,
            settings.WEBHOOK_WAKE_BACKOFF,
        )
        if newly:  # the broker failed, not Redis: free the flags so the next wake is not held back
            with contextlib.suppress(redis.RedisError):  # else they expire by themselves
                concurrency.clear_wakes_pending(client, newly)
        return
    breaker.succeeded()


def wake(webhook_id: str, *, countdown: float | None = None, coalesce: bool = True) -> None:
    """The worker's wake: enqueue a drain of ``webhook_id`` now or after ``countdown`` seconds.

    Immediate wakes are coalesced: while one is pending, another adds nothing (the pending one
    claims everything due when it runs). A countdown beyond the broker's visibility timeout is
    not sent at all: the sweeper finds the delivery when it is due.
    """
    try:
        if countdown is not None and countdown > 0:
            if countdown > settings.CELERY_VISIBILITY_TIMEOUT * COUNTDOWN_HEADROOM:
                return
            celery_app.send_task(DRAIN_TASK, args=[webhook_id], countdown=countdown)
            return
        if coalesce and not concurrency.mark_wake_pending(get_redis(), webhook_id, WAKE_PENDING_TTL_SECONDS):
            return
        celery_app.send_task(DRAIN_TASK, args=[webhook_id])
    except Exception:  # noqa: BLE001 - the database holds the delivery; the sweeper will wake it
        logger.warning("wake of webhook %s not enqueued; the sweeper will pick it up", webhook_id, exc_info=True)
