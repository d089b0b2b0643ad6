"""The periodic work of beat: the sweeper, and the hourly housekeeping.

* ``sweep`` (``deliveries.sweep``, every WEBHOOK_SWEEP_INTERVAL): PostgreSQL is the source of
  truth, and a delivery's ``next_attempt_at`` is committed before any message that announces
  it is sent, so re-waking every webhook with due, unleased deliveries means a lost message is
  never a lost delivery.
* ``disable_failing_webhooks`` (``deliveries.maintain``, hourly): disable endpoints that only
  fail, set-based in SQL, with no per-webhook loop. The history's daily partitions (made
  ahead, dropped past retention) are ``deliveries/partitions.py``'s, hourly too
  (``deliveries.partitions``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.utils import timezone

from deliveries.dispatch import wake
from deliveries.models import Delivery
from webhooks.models import Webhook
from webhooks.services import webhooks_disable

logger = logging.getLogger(__name__)

# Rows the sweeper handles per run; the next run takes the rest.
SWEEP_BATCH = 1000


def sweep() -> int:
    """Re-wake every webhook the database says has overdue deliveries; return how many.

    Lost messages never lose deliveries: the rows say what is due.
    """
    webhook_ids = list(
        Delivery.objects.due()
        # One row per webhook, most overdue first. (A bare distinct() would also select the
        # Meta.ordering column, id: one row per delivery, so one backlog fills the batch.)
        .values("webhook_id")
        .annotate(oldest=Min("next_attempt_at"))
        .order_by("oldest")
        .values_list("webhook_id", flat=True)[:SWEEP_BATCH]
    )
    for webhook_id in webhook_ids:
        # Not coalesced: a pending flag may belong to a message the broker has lost.
        wake(webhook_id, coalesce=False)
    if webhook_ids:
        logger.info("sweep: %d webhooks woken", len(webhook_ids))
    return len(webhook_ids)


# Which webhooks only fail (see disable_failing_webhooks). Per enabled webhook, two indexed
# probes: its newest successful delivery (index on webhook, status, id) and whether a
# delivery created after that success but at least N days ago was attempted and never
# succeeded (index on webhook, created_at). A delivery's first attempt follows its creation
# at once, so such a delivery is a failed attempt at least N days old with no success since.
_FAILING_WEBHOOKS_SQL = """
WITH candidates AS (
    SELECT w.id, (
        SELECT d.last_attempt_at FROM deliveries_delivery d
        WHERE d.webhook_id = w.id AND d.status = 'succeeded'
        ORDER BY d.id DESC LIMIT 1
    ) AS last_success
    FROM webhooks_webhook w
    WHERE w.enabled AND w.updated_at <= %(since)s
)
SELECT c.id FROM candidates c
WHERE (c.last_success IS NULL OR c.last_success < %(since)s)
  AND EXISTS (
    SELECT 1 FROM deliveries_delivery d
    WHERE d.webhook_id = c.id
      AND d.created_at <= %(since)s
      AND d.created_at > coalesce(c.last_success, '-infinity'::timestamptz)
      AND d.status <> 'succeeded' AND d.attempts > 0
      AND (d.response_status IS NULL OR d.response_status NOT BETWEEN 200 AND 299)
  )
"""


def disable_failing_webhooks() -> list[str]:
    """Disable every enabled webhook whose deliveries have all failed for WEBHOOK_DISABLE_AFTER_DAYS.

    A webhook qualifies when it had a failed attempt at least N days ago and no successful
    attempt since then. One query selects them and one statement disables them
    (``webhooks.services.webhooks_disable``), whatever their number. A webhook changed
    (re-enabled, edited) within the last N days is left alone — also one changed between the
    two — so re-enabling an endpoint is not undone by the next hourly run.
    """
    since = timezone.now() - timedelta(days=settings.WEBHOOK_DISABLE_AFTER_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(_FAILING_WEBHOOKS_SQL, {"since": since})
        failing = [row[0] for row in cursor.fetchall()]
    if not failing:
        return []
    return webhooks_disable(webhook_ids=failing, reason=Webhook.DisabledReason.FAILING, unchanged_since=since)
