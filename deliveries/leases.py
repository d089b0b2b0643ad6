"""Who holds a delivery, in PostgreSQL: claim, release, and the record of an attempt.

A drain leases the due deliveries it is about to send (``lease_until``) with ``FOR UPDATE
SKIP LOCKED``, so two drains — or two copies of one message, or the sweeper racing the fast
path — never send the same attempt at once. Unsent deliveries are given back; sent ones are
recorded with a compare-and-set on the attempt number, in one set-based statement per batch,
so a duplicate send logs its attempt once and never rewinds the delivery. A worker that dies
holding a lease only delays its deliveries until the lease expires.

All of it is written as bookkeeping (``BOOKKEEPING_SQL``): the pipeline's own writes,
committed without waiting for fsync (see there why that is safe), each statement one query
string and so one round trip.
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from deliveries.http import storable_text
from deliveries.models import DUE_SQL
from webhooks_project.db import savepoint_if_in_transaction

logger = logging.getLogger(__name__)

# Room between the end of the last send a lease allows and the lease's expiry.
LEASE_MARGIN_SECONDS = 10.0
# An error that could not be recorded is itself recorded, shortened to this.
MAX_ERROR_CHARS = 500
# The largest value of a PostgreSQL integer column (duration_ms), and the HTTP status codes
# an attempt row can hold: anything else is recorded as unknown.
MAX_INT_COLUMN = 2**31 - 1
HTTP_STATUS_CODES = range(100, 1000)


def lease_seconds() -> float:
    # A claimed batch is sent only while a whole attempt still fits in the lease.
    return 2 * settings.WEBHOOK_TIMEOUT + LEASE_MARGIN_SECONDS


# Put before a pipeline statement, in the same query string: its commit does not wait for
# fsync. Safe because losing such a commit in a PostgreSQL crash never loses a delivery: a lost
# claim or release only frees a lease early, and a lost outcome means the attempt is made
# again — at least once, with the same delivery id. The event and its deliveries (emit) are
# committed durably. This saves a WAL flush on every step of every delivery.
#
# Outside a transaction (a worker's drain), several statements sent as one query string run
# as one transaction of their own, committed when the last is done, and SET LOCAL holds until
# then: one round trip, where BEGIN, SET, the statement and COMMIT sent apart took three.
# Inside one (a test's), SET LOCAL holds to its end, as the transaction it is part of.
BOOKKEEPING_SQL = "SET LOCAL synchronous_commit TO OFF;"


# --- Claim and release -------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: str
    # The delivery's created_at, its partition key: the record of its attempt finds the row in
    # that day's partition only.
    created_at: datetime
    event_id: str
    event_type: str
    attempts: int
    lease_until: datetime
    body: bytes
    # How long past its due time the delivery was claimed: how far behind the workers are.
    late_seconds: float = 0.0


_CLAIM_SQL = f"""
WITH due AS (
    SELECT id, created_at FROM deliveries_delivery
    WHERE webhook_id = $1
      AND {DUE_SQL}
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries_delivery d
    SET lease_until = now() + $3 * interval '1 second'
    -- With the partition key, each row is found in its day's partition only.
    FROM due WHERE d.id = due.id AND d.created_at = due.created_at
    RETURNING d.id, d.event_id, d.event_type, d.attempts, d.lease_until, d.next_attempt_at, d.created_at
)
SELECT c.id, c.event_id, c.event_type, c.attempts, c.lease_until, e.payload, c.created_at,
       extract(epoch FROM now() - c.next_attempt_at)::float8
-- A delivery has its event's created_at (the partition key): one partition probed, not all.
FROM claimed c JOIN events_event e ON e.id = c.event_id AND e.created_at = c.created_at
ORDER BY c.next_attempt_at, c.id
"""
# The claim's parameters (webhook id, limit, lease seconds) as PREPARE declares them.
_CLAIM_STATEMENT = "deliveries_claim(text, int, float8)"

# How long a prepared statement's first plan is kept; each one after is kept twice as long
# as the one before, up to WEBHOOK_PLAN_MAX_AGE.
FIRST_PLAN_SECONDS = 1.0


@dataclass(frozen=True)
class _Plan:
    made_at: float  # time.monotonic()
    lifetime: float


# The statements each database connection has prepared, by its psycopg2 connection (held
# weakly: a new connection prepares them again).
_prepared: weakref.WeakKeyDictionary[Any, dict[str, _Plan]] = weakref.WeakKeyDictionary()


# In force while a prepared statement's plan is made (or remade, after a change to a table).
_PLAN_SETTINGS = "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off;"


def _execute_prepared(cursor: Any, statement: str, sql: str, params: list[object]) -> None:
    """Run ``sql`` as the connection's prepared ``statement`` (``name(types)``), with one
    generic plan made at its first use and reused after.

    Why: the pipeline's statements run for every batch a drain sends, and planning one over
    every daily partition costs more than running it (the claim: 11–13 ms at 40 partitions a
    table where running it takes ~1 ms; at the 6 of a fresh database, ~1.1 ms of planning
    against 0.15–0.3 ms of running, claim and record alike). What is due has no day to prune
    by (a delivery retried by hand reopens at any age), and a record's days are only known as
    it runs; a generic plan is pruned at run time instead, where the day is known.

    A plan kept for the life of a connection outlives the table sizes it was costed on: made
    while a day's partition was empty (a fresh database, the first minutes of a day), it read
    that partition whole, or a whole index of it, on every call as it filled, until an ANALYZE
    replaced it. The bench's claims took 14.5 ms of PostgreSQL's CPU each that way (63 % of
    its time). So the plan is made without sequential scans (these statements find a few rows
    by an index at any size), and remade as it ages: after 1 s, then 2, 4, … up to
    WEBHOOK_PLAN_MAX_AGE, so a young connection's plans soon see the tables as they are, and
    an old one's replanning costs next to nothing.
    """
    name, types = statement.rstrip(")").split("(", 1)
    plans = _prepared.setdefault(connection.connection, {})
    plan = plans.get(name)
    now = time.monotonic()
    if plan is None:
        cursor.execute(f"PREPARE {statement} AS {sql}")
        plans[name] = _Plan(made_at=now, lifetime=FIRST_PLAN_SECONDS)
    elif now - plan.made_at > plan.lifetime:
        cursor.execute(f"DEALLOCATE {name}; PREPARE {statement} AS {sql}")
        plans[name] = _Plan(made_at=now, lifetime=min(2 * plan.lifetime, settings.WEBHOOK_PLAN_MAX_AGE))
    # Each parameter cast to its declared type: psycopg2 sends a list of NULLs as text[]. The
    # commit's and the plan's settings and the statement go as one query string: one round
    # trip, one transaction (BOOKKEEPING_SQL).
    placeholders = ", ".join(f"%s::{kind.strip()}" for kind in types.split(","))
    cursor.execute(f"{BOOKKEEPING_SQL} {_PLAN_SETTINGS} EXECUTE {name}({placeholders})", params)


def claim(webhook_id: str, limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of one webhook; nobody else attempts them meanwhile."""
    with connection.cursor() as cursor:
        _execute_prepared(cursor, _CLAIM_STATEMENT, _CLAIM_SQL, [webhook_id, limit, lease_seconds()])
        rows = cursor.fetchall()
    return [
        Claimed(
            id=r[0],
            created_at=r[6],
            event_id=r[1],
            event_type=r[2],
            attempts=r[3],
            lease_until=r[4],
            body=r[5].encode("utf-8"),
            late_seconds=r[7],
        )
        for r in rows
    ]


_ANY_DUE_SQL = f"SELECT EXISTS (SELECT 1 FROM deliveries_delivery WHERE webhook_id = $1 AND {DUE_SQL})"
_ANY_DUE_STATEMENT = "deliveries_any_due(text)"


def any_due(webhook_id: str) -> bool:
    """Whether any delivery of the webhook is due now: what a drain asks as it ends."""
    # Nothing is written: BOOKKEEPING_SQL is there only because every prepared statement has it.
    with connection.cursor() as cursor:
        _execute_prepared(cursor, _ANY_DUE_STATEMENT, _ANY_DUE_SQL, [webhook_id])
        return bool(cursor.fetchone()[0])


# Gives one lease's deliveries back (parameters: delay, ids, lease_until).
_RELEASE_SQL = (
    "UPDATE deliveries_delivery SET lease_until = NULL,"
    " next_attempt_at = GREATEST(next_attempt_at, now() + %s * interval '1 second')"
    " WHERE id = ANY(%s) AND lease_until = %s;"
)


def release(items: list[Claimed], *, delay: float) -> None:
    """Give claimed deliveries back unattempted, due again after ``delay`` seconds."""
    groups = _group_by_lease(items)
    with connection.cursor() as cursor:
        # One UPDATE a lease, all in one query string (one round trip, one transaction).
        cursor.execute(
            BOOKKEEPING_SQL + _RELEASE_SQL * len(groups),
            [value for lease_until, ids in groups.items() for value in (delay, ids, lease_until)],
        )


def _group_by_lease(items: list[Claimed]) -> dict[datetime, list[str]]:
    groups: dict[datetime, list[str]] = {}
    for item in items:
        groups.setdefault(item.lease_until, []).append(item.id)
    return groups


# --- The record of attempts --------------------------------------------------------------


_RECORD_SQL = """
WITH v AS (
    SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        AS v (id, created_at, number, requested_at, response_status, duration_ms, error, response_body,
              response_body_replaced, status, delay)
), ins AS (
    -- The attempt is partitioned with its delivery (delivery_created_at), read from the row with
    -- its webhook: an attempt only for a delivery that exists, in that delivery's day.
    INSERT INTO deliveries_attempt
        (delivery_id, number, requested_at, response_status, duration_ms, error, response_body, response_body_replaced,
         delivery_created_at, webhook_id)
    SELECT v.id, v.number, v.requested_at, v.response_status, v.duration_ms, v.error, v.response_body,
           v.response_body_replaced, d.created_at, d.webhook_id
    FROM v JOIN deliveries_delivery d ON d.id = v.id AND d.created_at = v.created_at
    ON CONFLICT (delivery_id, number, delivery_created_at) DO NOTHING
)
UPDATE deliveries_delivery d
SET attempts = v.number,
    status = v.status,
    response_status = v.response_status,
    last_error = v.error,
    last_attempt_at = v.requested_at,
    next_attempt_at = CASE WHEN v.delay IS NULL THEN NULL ELSE now() + v.delay * interval '1 second' END,
    lease_until = NULL
FROM v
WHERE d.id = v.id AND d.created_at = v.created_at AND d.attempts = v.number - 1
"""
# The record's parameters, one array a column (any number of outcomes, one prepared statement),
# in Outcome.as_params()'s order, as PREPARE declares them.
_RECORD_STATEMENT = (
    "deliveries_record(text[], timestamptz[], int[], timestamptz[], int[], int[], text[], text[], boolean[],"
    " text[], float8[])"
)
# Anything that keeps one row from being written: a value PostgreSQL refuses (DataError,
# IntegrityError) or that psycopg2 cannot send (ValueError).
_UNRECORDABLE = (DatabaseError, ValueError)


@dataclass(frozen=True)
class Outcome:
    """One attempt as it is recorded: the attempt row and its delivery's new state."""

    delivery_id: str
    created_at: datetime  # the delivery's
    number: int
    requested_at: datetime
    response_status: int | None
    duration_ms: int
    error: str
    response_body: str
    response_body_replaced: bool
    status: str
    delay: float | None

    def as_params(self) -> list[object]:
        return [
            self.delivery_id,
            self.created_at,
            self.number,
            self.requested_at,
            self.response_status,
            self.duration_ms,
            self.error,
            self.response_body,
            self.response_body_replaced,
            self.status,
            self.delay,
        ]


def record(outcomes: list[Outcome], *, webhook_id: str) -> None:
    """Write every attempt and its delivery's new state (compare-and-set on the attempt count).

    All rows go in one statement; should that fail, each is written on its own, so one row
    that cannot be stored never costs the record of the others (see ``_record_one``).
    """
    try:
        _write_outcomes(outcomes)
    except _UNRECORDABLE:
        logger.warning("recording %d attempts of webhook %s together failed; one by one", len(outcomes), webhook_id)
        for outcome in outcomes:
            _record_one(outcome)


def _write_outcomes(outcomes: list[Outcome]) -> None:
    rows = [outcome.as_params() for outcome in outcomes]
    columns: list[object] = [list(column) for column in zip(*rows, strict=True)]
    # A refused row must not abort a caller's transaction: ``record`` then writes row by row.
    with savepoint_if_in_transaction(), connection.cursor() as cursor:
        _execute_prepared(cursor, _RECORD_STATEMENT, _RECORD_SQL, columns)


def _record_one(outcome: Outcome) -> None:
    """Write one attempt; if it cannot be stored, store that as its error instead.

    The attempt still counts, with the same outcome, so the delivery moves on instead of
    being sent again and again. Only if even that fails is it left leased, to be sent again
    after the lease.
    """
    try:
        _write_outcomes([outcome])
        return
    except _UNRECORDABLE as exc:
        reason = f"the receiver's answer could not be recorded ({type(exc).__name__}: {exc})"
        logger.warning("delivery %s attempt %d: %s", outcome.delivery_id, outcome.number, reason)
    readable = replace(
        outcome,
        duration_ms=max(0, min(outcome.duration_ms, MAX_INT_COLUMN)),
        response_status=outcome.response_status if outcome.response_status in HTTP_STATUS_CODES else None,
        error=storable_text(reason.encode("utf-8", errors="replace"))[0][:MAX_ERROR_CHARS],
        response_body="",
        response_body_replaced=False,
    )
    try:
        _write_outcomes([readable])
    except _UNRECORDABLE:
        logger.exception("delivery %s attempt %d could not be recorded", outcome.delivery_id, outcome.number)
