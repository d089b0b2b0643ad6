"""The Celery application: configured from Django settings (the ``CELERY_`` names)."""

from __future__ import annotations

import os
from typing import Any

import kombu
from celery import Celery
from celery.app.amqp import AMQP
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")


class BrokerConnection(kombu.Connection):
    """kombu's connection, which after losing the broker tries again at least every
    CELERY_BROKER_RECONNECT_MAX_INTERVAL seconds, where kombu backs off to every 30 s (the
    worker's consumer and beat call ``ensure_connection`` with its defaults). So the work of an
    outage resumes within seconds of the broker coming back, however long it was down.
    A caller that names its own intervals keeps them."""

    def ensure_connection(self, *args: Any, **kwargs: Any) -> BrokerConnection:
        if len(args) <= 2:  # (errback, max_retries): the intervals are left to their defaults
            cap = float(app.conf.broker_reconnect_max_interval)
            kwargs.setdefault("interval_start", 0)
            kwargs.setdefault("interval_step", cap / 2)
            kwargs.setdefault("interval_max", cap)
        super().ensure_connection(*args, **kwargs)
        return self

    def _do_close_transport(self) -> None:
        """Closing drops the transport but, unlike kombu, leaves it pointing at this connection.

        When the broker goes away, Celery's consumer ``collect()``s and closes its connection
        and opens a new one; a channel of the old one can still be used after that: closed a
        second time (it was left half closed on the dead socket), or acking a task that ends
        after the reconnect. Kombu's Redis transport then builds a new Redis client from its
        connection, and with ``transport.client`` set to None that raised AttributeError,
        which killed the worker ("Unrecoverable error"). With the reference kept, such a late
        call reaches Redis like any other: it succeeds once Redis is back, or raises a
        connection error, which Celery and kombu handle."""
        self._transport = None


class BrokerAMQP(AMQP):
    Connection = BrokerConnection


app = Celery("webhooks_project", amqp=BrokerAMQP)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _drop_stale_connections(**_kwargs: object) -> None:
    # Connections are kept across tasks for speed (CELERY_DB_REUSE_MAX); one broken by a
    # database restart or past CONN_MAX_AGE is closed here and reopened on first use.
    from django.db import close_old_connections

    close_old_connections()
