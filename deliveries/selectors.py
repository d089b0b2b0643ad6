"""Reads of delivery history and health, always through webhooks the caller looked up in its organization
(but for `all_webhooks_health`: operators' figures across organizations, for `/metrics`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from deliveries import rates
from deliveries.models import Attempt, Delivery
from deliveries.rates import Rates
from events.catalogue import ALL_EVENTS
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


def delivery_body(delivery: Delivery) -> bytes:
    """The request body the delivery sent, byte for byte: what its signatures cover.

    Every attempt of every delivery of an event sends the event's payload, serialized once at
    emit time, as UTF-8 (``leases.claim``).
    """
    return delivery.event.payload.encode("utf-8")


def attempts_of(delivery: Delivery) -> list[Attempt]:
    """The delivery's attempt log, first attempt first."""
    return list(delivery.attempt_log.filter(delivery_created_at=delivery.created_at).order_by("number"))


@dataclass(frozen=True)
class Health:
    """How a webhook's deliveries are going: those created in a window, by status, the rates of
    their attempts (``deliveries.rates``), and the status of the one attempted last (whenever
    that was)."""

    totals: dict[str, int]
    rates: Rates
    last_status: str | None

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def success_rate(self) -> float | None:
        return self.rates.success_rate()

    @property
    def failure_rate(self) -> float | None:
        return self.rates.failure_rate()


@dataclass(frozen=True)
class WebhookStats(Health):
    """Health, with the latency of the window's attempts (ms, to ``LATENCY_PLACES``)."""

    window_seconds: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    # Events of the window the webhook's filter skipped (``filtered_count``).
    filtered: int = 0


# Latencies are read to a tenth of a millisecond: percentiles interpolate between whole-ms
# durations, and 49.099999999999994 says nothing 49.1 does not.
LATENCY_PLACES = 1


Totals = dict[str, int]


def _tally(deliveries: QuerySet[Delivery]) -> tuple[dict[str, Totals], dict[str, Rates]]:
    """``deliveries`` counted by webhook in one grouped query: by status, and their attempts."""
    counted = (
        deliveries.order_by()
        .values("webhook_id", "status")
        # Named apart from the model's fields: an aggregate called "attempts" would shadow the
        # column the other aggregate reads.
        .annotate(n=Count("id"), tried=rates.attempts_sum(), ok=rates.successful_attempts_sum())
        .values_list("webhook_id", "status", "n", "tried", "ok")
    )
    totals: dict[str, Totals] = {}
    sums: dict[str, Rates] = {}
    for webhook_id, status, n, attempts, succeeded in counted:
        totals.setdefault(webhook_id, dict.fromkeys(Delivery.Status.values, 0))[status] = n
        sums[webhook_id] = sums.get(webhook_id, Rates()) + Rates(attempts=attempts, succeeded=succeeded)
    return totals, sums


def webhooks_health(
    webhooks: Sequence[Webhook], *, window: timedelta, now: datetime | None = None
) -> dict[str, Health]:
    """The health of every one of ``webhooks`` (a list page's rows), by webhook id, in two queries.

    However many rows: the window's deliveries counted by webhook and status in one grouped
    query (``delivery_history``: webhook, then created_at), and each webhook's last attempted
    delivery found by a correlated subquery walking the same index from its newest end.
    """
    ids = [webhook.id for webhook in webhooks]
    if not ids:
        return {}
    since = (now or timezone.now()) - window
    totals, sums = _tally(Delivery.objects.filter(webhook_id__in=ids, created_at__gte=since))
    last_attempted = (
        Delivery.objects.filter(webhook_id=OuterRef("id"), last_attempt_at__isnull=False)
        .order_by("-created_at", "-id")
        .values("status")[:1]
    )
    last_status = dict(
        Webhook.objects.filter(id__in=ids)
        .order_by()
        .annotate(last_status=Subquery(last_attempted))
        .values_list("id", "last_status")
    )
    # A webhook deleted meanwhile has no row left: no last status either.
    return {
        webhook_id: Health(
            totals=totals.get(webhook_id, dict.fromkeys(Delivery.Status.values, 0)),
            rates=sums.get(webhook_id, Rates()),
            last_status=last_status.get(webhook_id),
        )
        for webhook_id in ids
    }


def all_webhooks_health(*, window: timedelta) -> tuple[dict[str, Totals], dict[str, Rates]]:
    """Every webhook's deliveries created in ``window`` by status, and their attempts' rates,
    each by webhook id (webhooks without deliveries in it are left out): for operators'
    ``/metrics``, across organizations. One grouped query through the index on ``created_at``."""
    return _tally(Delivery.objects.filter(created_at__gte=timezone.now() - window))


# Events of the subscribed types, less this webhook's deliveries of them, over the same span:
# each delivery is of one event with the event's created_at (the fan-out and test events both
# set it so), and no event has two for one webhook, so the difference is the events it did not
# get. Two index range counts (event_org_created, delivery_history_event or delivery_history),
# where an anti-join would look up every event's deliveries.
_FILTERED_SQL = """
SELECT
  (SELECT count(*) FROM events_event
   WHERE organization_id = %(org)s AND created_at >= %(since)s AND (%(all)s OR type = ANY(%(types)s)))
  - (SELECT count(*) FROM deliveries_delivery
     WHERE webhook_id = %(webhook)s AND created_at >= %(since)s AND (%(all)s OR event_type = ANY(%(types)s)))
"""


def filtered_count(webhook: Webhook, *, since: datetime) -> int:
    """How many events since ``since`` the webhook's filter skipped, counted when read so that
    emit() pays nothing for it: the organization's events of a type the webhook subscribes to
    that have no delivery for it, emitted since the filter, the subscriptions or ``enabled`` last
    changed (``filter_since``; before that, another rule chose). 0 without a filter, and while
    disabled (then no event gets a delivery, filtered or not)."""
    if webhook.filter is None or not webhook.enabled or webhook.filter_since is None:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            _FILTERED_SQL,
            {
                "org": webhook.organization_id,
                "since": max(since, webhook.filter_since),
                "all": ALL_EVENTS in webhook.events,
                "types": list(webhook.events),
                "webhook": webhook.id,
            },
        )
        return max(0, cursor.fetchone()[0])


def webhook_stats(webhook: Webhook, *, window: timedelta) -> WebhookStats:
    """``webhooks_health`` of one webhook, and the latency of its window's attempts."""
    now = timezone.now()
    health = webhooks_health([webhook], window=window, now=now)[webhook.id]
    since = now - window
    with connection.cursor() as cursor:
        cursor.execute(
            # The attempts of the window's deliveries (created in it, as for the rates): one range
            # of attempt_webhook_window in each of the window's daily partitions, index only.
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)"
            " FROM deliveries_attempt WHERE webhook_id = %s AND delivery_created_at >= %s",
            [webhook.id, since],
        )
        p50, p95 = cursor.fetchone()
    return WebhookStats(
        totals=health.totals,
        rates=health.rates,
        last_status=health.last_status,
        window_seconds=int(window.total_seconds()),
        latency_p50_ms=None if p50 is None else round(p50, LATENCY_PLACES),
        latency_p95_ms=None if p95 is None else round(p95, LATENCY_PLACES),
        filtered=filtered_count(webhook, since=since),
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
