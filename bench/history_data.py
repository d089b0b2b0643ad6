"""Bulk-load a delivery history at scale with set-based SQL (INSERT ... SELECT generate_series).

One organization, ``len(webhook_ids)`` webhooks, ``events`` events spread evenly over the last
``days`` days, each fanned out to every webhook: ``events * len(webhook_ids)`` deliveries, with
their attempt logs; and ``expired_events`` more (and their deliveries) in one day past
retention, for retention to drop. Status mix: 92% succeeded (1 attempt), 5% failed
(6 attempts, HTTP 500), 2% retrying (2 attempts, due in an hour), 1% pending (due in an hour,
nothing attempted). Ids are zero-padded counters, so id order follows time as real ids
(time-ordered) do. The daily partitions of those days are made first (pg_partman), so no row
lands in the default partition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from django.db import connection

from events import catalogue

# The document's eight types (test events are not part of a history).
EVENT_TYPES = tuple(name for name in catalogue.names() if name != "test.ping")

_EVENTS_SQL = """
INSERT INTO events_event (id, type, payload, created_at, idempotency_key, organization_id)
SELECT 'evt_' || %(prefix)s || lpad(g::text, 25, '0'),
       (%(types)s::text[])[1 + g %% 8],
       '{"id":"evt_' || %(prefix)s || lpad(g::text, 25, '0') || '","event":"' || (%(types)s::text[])[1 + g %% 8]
         || '","timestamp":"2025-01-15T10:30:00.000Z","organization_id":"' || %(org)s
         || '","data":{"threat_id":"thr_' || g || '","severity":"high","type":"data_exfiltration",'
         || '"description":"Attempted to access sensitive API keys","agent":{"id":"agt_def456",'
         || '"hostname":"john-laptop","user":"user@example.com"}}}',
       %(start)s::timestamptz + %(days)s * interval '1 day' * (g - 1)::float8 / %(events)s,
       NULL,
       %(org)s
FROM generate_series(1, %(events)s) AS g
"""

_DELIVERIES_SQL = """
INSERT INTO deliveries_delivery
    (id, event_type, status, attempts, response_status, last_error, created_at, last_attempt_at,
     next_attempt_at, lease_until, event_id, organization_id, webhook_id)
SELECT 'dlv_' || %(prefix)s || lpad((g * 100 + w.k)::text, 25, '0'),
       (%(types)s::text[])[1 + g %% 8],
       s.status,
       s.attempts,
       s.response_status,
       s.last_error,
       t.created_at,
       CASE WHEN s.attempts > 0 THEN t.created_at + s.attempts * interval '1 minute' END,
       CASE WHEN s.status IN ('pending', 'retrying') THEN now() + interval '1 hour' END,
       NULL,
       'evt_' || %(prefix)s || lpad(g::text, 25, '0'),
       %(org)s,
       w.id
FROM generate_series(1, %(events)s) AS g
CROSS JOIN unnest(%(webhooks)s::text[]) WITH ORDINALITY AS w(id, k)
CROSS JOIN LATERAL (
    SELECT %(start)s::timestamptz + %(days)s * interval '1 day' * (g - 1)::float8 / %(events)s AS created_at,
           (g::bigint * 7919 + w.k * 104729) %% 100 AS r
) AS t
CROSS JOIN LATERAL (
    SELECT CASE WHEN t.r < 92 THEN 'succeeded' WHEN t.r < 97 THEN 'failed'
                WHEN t.r < 99 THEN 'retrying' ELSE 'pending' END AS status,
           CASE WHEN t.r < 92 THEN 1 WHEN t.r < 97 THEN 6 WHEN t.r < 99 THEN 2 ELSE 0 END AS attempts,
           CASE WHEN t.r < 92 THEN 200 WHEN t.r < 99 THEN 500 END AS response_status,
           CASE WHEN t.r < 92 OR t.r >= 99 THEN '' ELSE 'HTTP 500' END AS last_error
) AS s
"""

_ATTEMPTS_SQL = """
INSERT INTO deliveries_attempt
    (number, requested_at, response_status, duration_ms, error, response_body, delivery_id, delivery_created_at,
     webhook_id)
SELECT n,
       d.created_at + n * interval '1 minute',
       d.response_status,
       20 + (hashtext(d.id) & 511),
       CASE WHEN d.status = 'succeeded' THEN '' ELSE 'HTTP 500' END,
       CASE WHEN d.status = 'succeeded' THEN 'ok' ELSE 'Internal Server Error' END,
       d.id,
       d.created_at,
       d.webhook_id
FROM deliveries_delivery d
CROSS JOIN LATERAL generate_series(1, d.attempts) AS n
WHERE d.organization_id = %(org)s
"""


TABLES = ("events_event", "deliveries_delivery", "deliveries_attempt")

# Secondary indexes (not backing a primary key or unique constraint) of the loaded tables.
_SECONDARY_INDEXES_SQL = """
SELECT i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
ORDER BY i.indexname
"""


def load(
    *,
    org_id: str,
    webhook_ids: Sequence[str],
    events: int,
    days: int,
    expired_events: int = 0,
    retention_days: int = 30,
) -> dict[str, float]:
    """Insert the history; returns row counts per table and the seconds of each step.

    The fast way to load a lot: secondary indexes are dropped and built again afterwards (one
    sort each instead of millions of inserts each), and triggers are off for the session (the
    rows are consistent by construction). Only for the bench's own database, which run.py
    creates afresh on every run, so an interrupted load leaves nothing behind.
    """
    params = {"org": org_id, "webhooks": list(webhook_ids), "types": list(EVENT_TYPES)}
    # (id prefix, first moment, days spanned, events): the history, and a day past retention.
    loads = [("h", f"now() - interval '{days} days'", days, events)]
    if expired_events:
        # The day whose end is the first past retention: the next drop takes it, and only it.
        loads.append(("x", f"date_trunc('day', now() - interval '{retention_days + 1} days')", 1, expired_events))
    counts: dict[str, float] = {}
    with connection.cursor() as cursor:
        started = time.perf_counter()
        _make_partitions(cursor, days=max(days, retention_days + 1 if expired_events else 0))
        counts["partition seconds"] = time.perf_counter() - started
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(_SECONDARY_INDEXES_SQL, [list(TABLES)])
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        started = time.perf_counter()
        try:
            for prefix, start, span, count in loads:
                cursor.execute("SELECT " + start)
                load_params = {**params, "prefix": prefix, "start": cursor.fetchone()[0], "days": span, "events": count}
                for table, sql in zip(TABLES[:2], (_EVENTS_SQL, _DELIVERIES_SQL), strict=True):
                    cursor.execute(sql, load_params)
                    counts[table] = counts.get(table, 0) + cursor.rowcount
            cursor.execute(_ATTEMPTS_SQL, params)
            counts[TABLES[2]] = cursor.rowcount
        finally:
            counts["insert seconds"] = time.perf_counter() - started
            started = time.perf_counter()
            cursor.execute("SET session_replication_role = origin")
            _build_indexes([definition for _name, definition in indexes])
            counts["index seconds"] = time.perf_counter() - started
        started = time.perf_counter()
        for table in TABLES:
            # As autovacuum would leave them: statistics, and a visibility map for index-only scans.
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        counts["vacuum seconds"] = time.perf_counter() - started
    return counts


def _make_partitions(cursor: Any, *, days: int) -> None:
    """The daily partitions of the last ``days`` days, in each table (the migration made today's on)."""
    for table in TABLES:
        cursor.execute(
            "SELECT partman.create_partition_time(%s, array(SELECT generate_series("
            " date_trunc('day', now()) - %s * interval '1 day', date_trunc('day', now()), interval '1 day')),"
            " p_analyze := false)",
            [f"public.{table}", days],
        )


# Index builds run this many at a time, each on its own connection (one per core).
INDEX_BUILDERS = 2


def _build_indexes(definitions: list[str]) -> None:
    pending = list(definitions)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def builder() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '256MB'")
                while True:
                    with lock:
                        if not pending:
                            return
                        definition = pending.pop().replace(" ON ONLY ", " ON ")  # every partition's too
                    cursor.execute(definition)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=builder) for _ in range(INDEX_BUILDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
