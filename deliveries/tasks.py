"""Celery tasks: thin. Each fetches by id, calls one service, and decides what comes next."""

from __future__ import annotations

from celery import shared_task

from deliveries import maintenance, services


@shared_task(name="deliveries.drain")
def drain(webhook_id: str) -> None:
    outcome = services.webhook_drain(webhook_id=webhook_id)
    if outcome.again:
        services.wake(webhook_id)
    if outcome.retry_in is not None:
        services.wake(webhook_id, countdown=outcome.retry_in)


@shared_task(name="deliveries.sweep")
def sweep() -> None:
    services.sweep()


@shared_task(name="deliveries.maintain")
def maintain() -> None:
    maintenance.disable_failing_webhooks()
    maintenance.purge_old_records()
