"""Celery tasks: thin. Each fetches by id, calls one service, and decides what comes next."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from deliveries import partitions, periodic
from deliveries.dispatch import DRAIN_TASK, wake
from deliveries.drain import webhook_drain


@shared_task(name=DRAIN_TASK)
def drain(webhook_id: str) -> None:
    outcome = webhook_drain(webhook_id=webhook_id)
    if outcome.again:
        wake(webhook_id)
    if outcome.retry_in is not None:
        wake(webhook_id, countdown=outcome.retry_in)
    if outcome.coalesced:
        wake(webhook_id, countdown=settings.WEBHOOK_COALESCE_SECONDS)


@shared_task(name="deliveries.sweep")
def sweep() -> None:
    periodic.sweep()


@shared_task(name="deliveries.maintain")
def maintain() -> None:
    periodic.disable_failing_webhooks()


@shared_task(name="deliveries.partitions")
def maintain_partitions() -> None:
    # A task of its own, so nothing else failing keeps the days ahead from being made.
    partitions.partitions_premake()
    partitions.partitions_drop_expired()
