"""Reads of delivery history, scoped to one organization's webhook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, QuerySet
from django.http import Http404
from django.utils import timezone

from deliveries.models import Attempt, Delivery
from webhooks.models import Webhook


def deliveries_of(webhook: Webhook, *, status: str | None = None, event_type: str | None = None) -> QuerySet[Delivery]:
    queryset = Delivery.objects.filter(webhook=webhook)
    if status:
        queryset = queryset.filter(status=status)
    if event_type:
        queryset = queryset.filter(event_type=event_type)
    return queryset


def delivery_get(webhook: Webhook, delivery_id: str) -> Delivery:
    delivery = Delivery.objects.filter(webhook=webhook, id=delivery_id).select_related("event").first()
    if delivery is None:
        raise Http404("No such delivery.")
    return delivery


def attempts_of(delivery: Delivery) -> list[Attempt]:
    """The delivery's attempt log, first attempt first."""
    return list(delivery.attempt_log.order_by("number"))


@dataclass(frozen=True)
class WebhookStats:
    window_seconds: int
    totals: dict[str, int]
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    last_status: str | None


def webhook_stats(webhook: Webhook, *, window: timedelta) -> WebhookStats:
    """Totals by status, success rate and attempt latency of the deliveries created in ``window``.

    ``success_rate`` is succeeded / (succeeded + failed): deliveries still being retried are
    not counted either way yet. None when nothing finished in the window.
    """
    since = timezone.now() - window
    totals = {status: 0 for status in Delivery.Status.values}
    rows = (
        Delivery.objects.filter(webhook=webhook, created_at__gte=since)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    totals.update(dict(rows))
    finished = totals["succeeded"] + totals["failed"]
    with connection.cursor() as cursor:
        cursor.execute(
            # Attempts are reached from the window's deliveries through the (delivery_id, number)
            # index; OFFSET 0 keeps the planner from flattening this into a scan of every attempt.
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a.duration_ms),"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms)"
            " FROM deliveries_delivery d CROSS JOIN LATERAL"
            " (SELECT duration_ms FROM deliveries_attempt WHERE delivery_id = d.id OFFSET 0) a"
            " WHERE d.webhook_id = %s AND d.created_at >= %s",
            [webhook.id, since],
        )
        p50, p95 = cursor.fetchone()
    last = (
        Delivery.objects.filter(webhook=webhook, last_attempt_at__isnull=False).order_by("-created_at", "-id").first()
    )
    return WebhookStats(
        window_seconds=int(window.total_seconds()),
        totals=totals,
        success_rate=round(totals["succeeded"] / finished, 4) if finished else None,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        last_status=last.status if last else None,
    )


def delivery_series(webhook: Webhook, *, window: timedelta, buckets: int) -> list[tuple[datetime, int, int]]:
    """(bucket start, succeeded, failed) for ``buckets`` equal slices of the last ``window``."""
    now = timezone.now()
    since = now - window
    step = window.total_seconds() / buckets
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT floor(extract(epoch FROM created_at - %s) / %s)::int AS bucket,"
            " count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed')"
            " FROM deliveries_delivery WHERE webhook_id = %s AND created_at >= %s GROUP BY bucket",
            [since, step, webhook.id, since],
        )
        counts = {row[0]: (row[1], row[2]) for row in cursor.fetchall()}
    return [
        (since + timedelta(seconds=i * step), *counts.get(i, (0, 0)))  # type: ignore[misc]
        for i in range(buckets)
    ]
