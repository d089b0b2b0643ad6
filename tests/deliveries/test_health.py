"""webhooks_health: the health of every row of a list page in two queries, agreeing with
webhook_stats (the webhook page's and the API's) on totals, attempts, rates and last status.
Rates count the attempts of the window's deliveries (deliveries.rates)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import make_delivery, make_webhook
from django.utils import timezone

from deliveries.rates import Grade, Rates
from deliveries.selectors import Health, webhook_stats, webhooks_health

pytestmark = pytest.mark.django_db

DAY = timedelta(hours=24)
NONE = {"pending": 0, "retrying": 0, "succeeded": 0, "failed": 0}
OK = [(200, "ok", "")]
BOOM = [(500, "boom", "HTTP 500")]


def test_webhooks_health_agrees_with_webhook_stats_when_histories_differ(tenant):
    busy, quiet, idle = (make_webhook(tenant.organization, f"https://example.com/{n}").webhook for n in range(3))
    now = timezone.now()
    make_delivery(busy, status="retrying", attempt_log=[(503, "", "HTTP 503")], created_at=now - timedelta(hours=5))
    make_delivery(busy, status="succeeded", attempt_log=[*BOOM, *OK], created_at=now - timedelta(hours=4))
    make_delivery(busy, status="succeeded", attempt_log=OK, created_at=now - timedelta(hours=3))
    make_delivery(busy, status="retrying", attempt_log=OK + OK, created_at=now - timedelta(hours=2))  # retried by hand
    make_delivery(busy, status="failed", attempt_log=BOOM, created_at=now - timedelta(hours=1))  # the last attempted
    make_delivery(busy, status="pending", created_at=now)  # newer, never attempted
    make_delivery(quiet, status="failed", attempt_log=BOOM, created_at=now - timedelta(days=3))  # outside the window

    health = webhooks_health([busy, quiet, idle], window=DAY)

    assert health[busy.id].totals == {"pending": 1, "retrying": 2, "succeeded": 2, "failed": 1}
    assert health[busy.id].total == 6
    # Attempts: 503 | 500, 200 | 200 | 200, 200 | 500: 4 of 7 succeeded, whatever the deliveries' states.
    assert health[busy.id].rates == Rates(attempts=7, succeeded=4)
    assert health[busy.id].success_rate == 0.5714  # rounded down
    assert health[busy.id].failure_rate == 0.4286  # rounded up: the two add up to 1
    assert health[busy.id].rates.grade == Grade.FAILING
    assert health[busy.id].last_status == "failed"
    assert health[quiet.id] == Health(totals=NONE, rates=Rates(), last_status="failed")
    assert health[quiet.id].success_rate is None
    assert health[idle.id] == Health(totals=NONE, rates=Rates(), last_status=None)
    for webhook in (busy, quiet, idle):
        stats = webhook_stats(webhook, window=DAY)
        one = health[webhook.id]
        assert (stats.totals, stats.rates, stats.last_status) == (one.totals, one.rates, one.last_status)


def test_webhooks_health_shows_0_percent_when_an_endpoint_starts_failing_while_deliveries_retry(tenant):
    """The issue's endpoint: 6 deliveries succeeded, then it answers 400 and 8 are being retried.
    Over finished deliveries that read "100%" for the ~7 hours of retries; over attempts it
    reads 6 of 22, and an endpoint that answers only errors reads 0% from its first answer."""
    turned, broken = (make_webhook(tenant.organization, f"https://example.com/{n}").webhook for n in range(2))
    for _ in range(6):
        make_delivery(turned, status="succeeded", attempt_log=OK)
    for _ in range(8):
        make_delivery(turned, status="retrying", attempt_log=[(400, "no", "HTTP 400")] * 2)
    make_delivery(broken, status="retrying", attempt_log=[(400, "no", "HTTP 400")])

    health = webhooks_health([turned, broken], window=DAY)

    assert health[turned.id].totals == {"pending": 0, "retrying": 8, "succeeded": 6, "failed": 0}
    assert health[turned.id].success_rate == 0.2727
    assert health[turned.id].rates.grade == Grade.FAILING
    assert health[broken.id].success_rate == 0.0
    assert health[broken.id].failure_rate == 1.0
    assert health[broken.id].rates.grade == Grade.FAILING


@pytest.mark.parametrize("rows", [1, 12])
def test_webhooks_health_reads_two_queries_when_given_one_or_many_webhooks(tenant, django_assert_num_queries, rows):
    webhooks = [make_webhook(tenant.organization, f"https://example.com/{n}").webhook for n in range(rows)]
    for webhook in webhooks:
        make_delivery(webhook, status="succeeded", attempt_log=OK)
        make_delivery(webhook, status="failed", attempt_log=BOOM)

    with django_assert_num_queries(2):
        health = webhooks_health(webhooks, window=DAY)

    assert {webhook_id: (h.success_rate, h.last_status) for webhook_id, h in health.items()} == {
        webhook.id: (0.5, "failed") for webhook in webhooks
    }


def test_webhooks_health_reads_nothing_when_given_no_webhooks(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert webhooks_health([], window=DAY) == {}


def test_stats_latency_is_over_every_attempt_of_the_windows_deliveries_of_that_webhook_only(tenant):
    mine, other = (make_webhook(tenant.organization, f"https://example.com/{n}").webhook for n in range(2))
    now = timezone.now()
    # Attempts take 40 ms x their number (make_delivery): 40 | 40, 80, 120 | none.
    make_delivery(mine, status="succeeded", attempt_log=OK, created_at=now - timedelta(hours=2))
    make_delivery(mine, status="succeeded", attempt_log=[*BOOM, *BOOM, *OK], created_at=now - timedelta(hours=1))
    make_delivery(mine, status="pending", created_at=now)
    # Not counted: another webhook's attempts, and a delivery created before the window (its
    # attempts were made later, but rates and latency describe the window's deliveries).
    make_delivery(other, status="succeeded", attempt_log=BOOM * 5 + OK, created_at=now - timedelta(hours=1))
    make_delivery(mine, status="failed", attempt_log=BOOM * 5, created_at=now - timedelta(days=2))

    stats = webhook_stats(mine, window=DAY)

    assert stats.rates == Rates(attempts=4, succeeded=2)
    # 40, 40, 80, 120: the median between 40 and 80, the 95th percentile near the slowest.
    assert (stats.latency_p50_ms, stats.latency_p95_ms) == (60.0, 114.0)
    assert webhook_stats(other, window=DAY).latency_p95_ms == 230.0
    assert webhook_stats(mine, window=timedelta(minutes=30)).latency_p50_ms is None
