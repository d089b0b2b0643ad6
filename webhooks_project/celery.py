"""The Celery application: configured from Django settings (the ``CELERY_`` names)."""

from __future__ import annotations

import logging
import os
from typing import Any

import kombu
from celery import Celery
from celery.app.amqp import AMQP
from celery.signals import task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webhooks_project.settings")

logger = logging.getLogger(__name__)


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

    def maybe_close_channel(self, channel: Any) -> None:
        """Close a channel, ignoring what a lost broker raises, as kombu does, and also the
        AttributeError of a channel left half closed. When the broker goes away, Celery's
        consumer first ``collect()``s its connection (which detaches the transport even if a
        channel's close failed on the dead socket) and then closes it: the second close of that
        channel wants a new Redis client from the detached transport and raised
        AttributeError, which killed the worker ("Unrecoverable error"). Its unacked messages
        stay in the broker's unacked index, which puts them back after the visibility timeout."""
        try:
            super().maybe_close_channel(channel)
        except AttributeError as exc:
            if self._transport is not None:
                raise
            logger.warning("broker channel closed after the connection was lost: %r", exc)


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
