"""The pipeline's prepared statements (deliveries/leases.py): one plan per connection, made
without sequential scans and remade as it ages, so a plan made on an empty partition does not
outlive it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import make_delivery, make_webhook
from django.db import connection
from django.utils import timezone

from deliveries import leases
from deliveries.models import Delivery

pytestmark = pytest.mark.django_db


def _prepared_statements() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements ORDER BY name")
        return [row[0] for row in cursor.fetchall()]


def test_claim_plan_is_remade_twice_as_late_each_time(tenant, monkeypatch, settings):
    settings.WEBHOOK_PLAN_MAX_AGE = 3.0
    webhook = make_webhook(tenant.organization, "https://93.184.216.34/hook").webhook
    due_at = timezone.now() - timedelta(hours=1)  # before the test transaction's now()
    make_delivery(webhook, status=Delivery.Status.PENDING, next_attempt_at=due_at, lease_until=None)
    clock = [1000.0]
    monkeypatch.setattr(leases.time, "monotonic", lambda: clock[0])
    leases._prepared.pop(connection.connection, None)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    lifetimes = []
    for step in (0.0, 0.5, 1.5, 2.0, 3.0, 6.0):
        clock[0] += step
        assert leases.any_due(webhook.id) is True
        lifetimes.append(leases._prepared[connection.connection]["deliveries_any_due"].lifetime)

    # Made at 1000; kept 1 s (still at 1000.5), remade at 1002 (kept 2 s: still at 1004),
    # remade at 1007 (4 s, capped at 3), remade at 1013.
    assert lifetimes == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    assert _prepared_statements() == ["deliveries_any_due"]
    assert [c.id for c in leases.claim(webhook.id, 10)] == list(Delivery.objects.values_list("id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_claim_and_record_are_one_round_trip_each_outside_a_transaction(tenant):
    from django.test.utils import CaptureQueriesContext

    webhook = make_webhook(tenant.organization, "https://93.184.216.34/hook").webhook
    make_delivery(webhook, status=Delivery.Status.PENDING, next_attempt_at=timezone.now() - timedelta(seconds=1))
    leases.any_due(webhook.id)  # the connection exists; the claim below prepares its statement first

    with CaptureQueriesContext(connection) as first:
        (claimed,) = leases.claim(webhook.id, 10)
    with CaptureQueriesContext(connection) as again:
        assert leases.claim(webhook.id, 10) == []

    # Preparing is one more the first time; after that the commit's setting, the plan's and the
    # statement are one query string, run as one transaction: no BEGIN, SET, COMMIT apart.
    assert len(first.captured_queries) == 2
    assert len(again.captured_queries) == 1
    assert again.captured_queries[0]["sql"].startswith(leases.BOOKKEEPING_SQL)
    assert connection.connection.autocommit  # psycopg2 sent no BEGIN of its own
    assert Delivery.objects.get(id=claimed.id).lease_until == claimed.lease_until
