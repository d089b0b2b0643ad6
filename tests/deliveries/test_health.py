"""webhooks_health: the health of every row of a list page in two queries, agreeing with
webhook_stats (the webhook page's and the API's) on totals, success rate and last status."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import make_delivery, make_webhook
from django.utils import timezone

from deliveries.selectors import Health, webhook_stats, webhooks_health

pytestmark = pytest.mark.django_db

DAY = timedelta(hours=24)
NONE = {"pending": 0, "retrying": 0, "succeeded": 0, "failed": 0}
OK = [(200, "ok", "")]
BOOM = [(500, "boom", "HTTP 500")]


def test_webhooks_health_agrees_with_webhook_stats_when_histories_differ(tenant):
    busy, quiet, idle = (make_webhook(tenant.organization, f"https://example.com/{n}").webhook for n in range(3))
    now = timezone.now()
    make_delivery(busy, status="retrying", attempt_log=[(503, "", "HTTP 503")], created_at=now - timedelta(hours=4))
    make_delivery(busy, status="succeeded", attempt_log=OK, created_at=now - timedelta(hours=3))
    make_delivery(busy, status="succeeded", attempt_log=OK, created_at=now - timedelta(hours=2))
    make_delivery(busy, status="failed", attempt_log=BOOM, created_at=now - timedelta(hours=1))  # the last attempted
    make_delivery(busy, status="pending", created_at=now)  # newer, never attempted
    make_delivery(quiet, status="failed", attempt_log=BOOM, created_at=now - timedelta(days=3))  # outside the window

    health = webhooks_health([busy, quiet, idle], window=DAY)

    assert health[busy.id].totals == {"pending": 1, "retrying": 1, "succeeded": 2, "failed": 1}
    assert health[busy.id].total == 5
    assert health[busy.id].success_rate == 0.6667  # 2 of the 3 finished; retrying and pending count neither way
    assert health[busy.id].last_status == "failed"
    assert health[quiet.id] == Health(totals=NONE, last_status="failed")
    assert health[quiet.id].success_rate is None
    assert health[idle.id] == Health(totals=NONE, last_status=None)
    for webhook in (busy, quiet, idle):
        stats = webhook_stats(webhook, window=DAY)
        one = health[webhook.id]
        assert (stats.totals, stats.success_rate, stats.last_status) == (one.totals, one.success_rate, one.last_status)


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
