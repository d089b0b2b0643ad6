"""The deliveries of a batch of events, created at emit: one row per event and enabled webhook
subscribed to it.

``emit_many()`` (events; ``emit()`` is a batch of one) stores events; this app registers
``event_fan_out_at_emit`` with it at start-up (``DeliveriesConfig.ready``, through
``events.hooks``), so the events' INSERT and this INSERT ... SELECT go to PostgreSQL as one
query string: one round trip and, outside a transaction, one implicit transaction, committed
durably. Events are stored with their deliveries or not at all. After the commit each of those
webhooks is woken once (``deliveries.dispatch.wake_all``), however many events it got.

The statement is built from named fragments: which events (``NEW_EVENTS_SQL``), which
webhooks (``CANDIDATES_SQL``), which webhook wants which event (``SUBSCRIBED_SQL``, written
once, here: nothing else in the service matches subscriptions) and when it is due
(``DUE_SQL``).
"""

from __future__ import annotations

import json

from django.db import connection, transaction

from deliveries.dispatch import wake_all
from events.catalogue import ALL_EVENTS
from events.hooks import EventStatement
from events.models import Event

# The batch's events, one row each as stored by the statement before (``event``, payload
# included, for whatever a subscription may test), with their position in the batch
# (``batch.position``, from 1). Parameter: the events' ids, in order.
NEW_EVENTS_SQL = (
    "unnest(%s::text[]) WITH ORDINALITY AS batch (id, position) JOIN events_event AS event ON event.id = batch.id"
)
# The organization's webhooks that take new deliveries. Parameter: the organization's id.
CANDIDATES_SQL = "webhook.organization_id = %s AND webhook.enabled"
# A webhook subscribes to an event's type: it lists that type, or the wildcard. Both are
# containment tests on the JSON list.
SUBSCRIBED_SQL = (
    f"(webhook.events @> jsonb_build_array(event.type) OR webhook.events @> '{json.dumps([ALL_EVENTS])}'::jsonb)"
)
# Due at once, in the batch's order: a drain claims due rows by next_attempt_at (then by id,
# which is random within a millisecond), so the batch's deliveries are spaced a microsecond
# apart, the last at the transaction's now(). Never ahead of the database's clock (an
# application server's clock may be). Parameter: the number of events.
DUE_SQL = "now() - (%s - batch.position) * interval '1 microsecond'"

_FAN_OUT_SQL = f"""
INSERT INTO deliveries_delivery
    (id, organization_id, webhook_id, event_id, event_type, status, attempts, last_error, created_at, next_attempt_at)
SELECT new_id('dlv'), webhook.organization_id, webhook.id, event.id, event.type, 'pending', 0, '', event.created_at,
    {DUE_SQL}
FROM {NEW_EVENTS_SQL}
JOIN webhooks_webhook AS webhook ON {CANDIDATES_SQL} AND {SUBSCRIBED_SQL}
FOR KEY SHARE OF webhook
RETURNING webhook_id
"""


def event_fan_out_at_emit(*, events: list[Event], store_events: EventStatement) -> list[str]:
    """Store ``events`` (one organization's) and one delivery per event and enabled webhook
    subscribed to it; wake each of those webhooks once after commit.

    ``store_events`` is the events app's SQL for the event rows. The share lock keeps a
    webhook from being deleted before the commit.
    """
    if not events:
        return []
    sql, params = store_events
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql};\n{_FAN_OUT_SQL}",
            [
                *params,
                len(events),
                [event.id for event in events],
                events[0].organization_id,
            ],
        )
        webhook_ids = list(dict.fromkeys(row[0] for row in cursor.fetchall()))
    transaction.on_commit(lambda: wake_all(webhook_ids))  # at once when not in a transaction
    return webhook_ids
