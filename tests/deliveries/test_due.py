"""What "due" means is one rule: ``Delivery.objects.due()`` for the ORM's readers and
``DUE_SQL`` for the raw-SQL ones (the drain's claim, the metrics' oldest due delivery)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from conftest import make_delivery, make_webhook
from django.db import connection
from django.utils import timezone

from deliveries import leases
from deliveries.models import DUE_SQL, Delivery

pytestmark = pytest.mark.django_db

# Far enough from now that the ORM's statement time and SQL's transaction time agree.
MARGIN = timedelta(hours=1)


def test_due_queryset_and_due_sql_select_the_same_deliveries(tenant):
    webhook = make_webhook(tenant.organization, "https://93.184.216.34/hook").webhook
    now = timezone.now()
    times = [None, now - MARGIN, now + MARGIN]
    for status, next_attempt_at, lease_until in itertools.product(Delivery.Status.values, times, times):
        make_delivery(webhook, status=status, next_attempt_at=next_attempt_at, lease_until=lease_until)

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM deliveries_delivery WHERE {DUE_SQL}")
        by_sql = {row[0] for row in cursor.fetchall()}
    by_orm = set(Delivery.objects.due().values_list("id", flat=True))

    # Open, its time has come, and no lease, or one that has run out: 2 statuses x 2 leases.
    assert len(by_orm) == 4
    assert by_sql == by_orm


def test_any_due_answers_what_the_due_queryset_selects_for_the_webhook(tenant):
    # The drain's last question (a prepared statement over DUE_SQL), asked twice on one
    # connection: once planned, then from its plan.
    waiting = make_webhook(tenant.organization, "https://93.184.216.34/waiting").webhook
    ready = make_webhook(tenant.organization, "https://93.184.216.34/ready").webhook
    now = timezone.now()
    times = [None, now - MARGIN, now + MARGIN]
    for status, next_attempt_at, lease_until in itertools.product(Delivery.Status.values, times, times):
        delivery = make_delivery(waiting, status=status, next_attempt_at=next_attempt_at, lease_until=lease_until)
        if Delivery.objects.due().filter(id=delivery.id).exists():
            delivery.delete()
    due = make_delivery(ready, status=Delivery.Status.PENDING, next_attempt_at=now - MARGIN, lease_until=None)

    assert Delivery.objects.filter(webhook=waiting).count() > 0
    assert (leases.any_due(waiting.id), leases.any_due(ready.id)) == (False, True)
    Delivery.objects.filter(id=due.id).update(lease_until=now + MARGIN)
    assert leases.any_due(ready.id) is False
