"""The deliveries of an event, created at emit: one row per enabled webhook subscribed to it.

``emit()`` (events) stores an event; this app registers ``event_fan_out_at_emit`` with it at
start-up (``DeliveriesConfig.ready``, through ``events.hooks``), so the event's INSERT and
this INSERT ... SELECT go to PostgreSQL as one query string: one round trip and, outside a
transaction, one implicit transaction, committed durably. An event is stored with its
deliveries or not at all. After the commit each of those webhooks is woken
(``deliveries.dispatch``).

Which webhook wants which event is written once, here, in SQL (``SUBSCRIBED_SQL``): nothing
else in the service matches subscriptions. A webhook's payload filter is its compiled jsonpath
predicate (``webhooks.filters``), evaluated in the same statement (``FILTER_MATCHES_SQL``).
"""

from __future__ import annotations

import json

from django.db import connection, transaction

from deliveries.dispatch import wake_all
from events.catalogue import ALL_EVENTS
from events.hooks import EventStatement
from events.models import Event
from webhooks.filters import filter_document

# A webhook (webhooks_webhook) subscribes to the event type given as the parameter: it lists
# that type, or the wildcard. Both are containment tests on the JSON list.
SUBSCRIBED_SQL = f"(events @> jsonb_build_array(%s::text) OR events @> '{json.dumps([ALL_EVENTS])}'::jsonb)"

# A webhook's payload filter holds for the event whose jsonb is the parameter (the text of
# webhooks.filters.filter_document): no filter, or its predicate is true. Silent: an error in
# evaluating it is no match, never a failed emit. Unknown (null) is no match, as the evaluator says.
FILTER_MATCHES_SQL = "(filter_path IS NULL OR jsonb_path_match(%s::jsonb, filter_path, '{}', true))"

_FAN_OUT_SQL = f"""
INSERT INTO deliveries_delivery
    (id, organization_id, webhook_id, event_id, event_type, status, attempts, last_error, created_at, next_attempt_at)
SELECT new_id('dlv'), organization_id, id, %s, %s, 'pending', 0, '', %s, now()
FROM webhooks_webhook
WHERE organization_id = %s AND enabled AND {SUBSCRIBED_SQL} AND {FILTER_MATCHES_SQL}
FOR KEY SHARE
RETURNING webhook_id
"""


def event_fan_out_at_emit(*, event: Event, store_event: EventStatement) -> list[str]:
    """Store an event and one delivery per enabled webhook subscribed to it; wake them after commit.

    ``store_event`` is the events app's SQL for the event row. The share lock keeps a webhook
    from being deleted before the commit.
    """
    sql, params = store_event
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql};\n{_FAN_OUT_SQL}",
            [
                *params,
                event.id,
                event.type,
                event.created_at,
                event.organization_id,
                event.type,
                filter_document(event.payload),
            ],
        )
        webhook_ids = [row[0] for row in cursor.fetchall()]
    transaction.on_commit(lambda: wake_all(webhook_ids))  # at once when not in a transaction
    return webhook_ids
