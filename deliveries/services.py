"""Fan-out, the drain loop that signs and sends, the sweeper, and manual redelivery.

How a delivery moves:

* ``emit`` stores an event and, in the same transaction, one delivery row per subscribed,
  enabled webhook (``event_fan_out_at_emit``, registered with ``events.hooks`` by
  ``DeliveriesConfig.ready``); after commit it wakes each of those webhooks.
* A wake is a ``deliveries.drain`` message naming a webhook. While one is pending or running,
  the webhook's wake-pending flag is set and further wakes send nothing: the running drain's
  next claim picks their deliveries up. ``webhook_drain`` takes one of the endpoint's
  concurrency slots (WEBHOOK_ENDPOINT_CONCURRENCY, cluster-wide), then repeatedly claims due
  deliveries in PostgreSQL (a lease: ``lease_until``) — as many as it sends in about
  SLOW_BATCH_SECONDS, at most WEBHOOK_BATCH_SIZE — sends them over one keep-alive connection,
  each only once the rate limiter grants it, gives back what was not sent, and records every
  attempt and outcome in one set-based statement. A slow receiver with more waiting gets
  another drain beside it, up to its slots.
* PostgreSQL is the source of truth: ``next_attempt_at`` is committed before any message that
  announces it is sent; ``sweep`` re-wakes webhooks with due, unleased deliveries, so a lost
  message is never a lost delivery.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Min, Q
from django.db.models.functions import Now
from django.utils import timezone

from deliveries import concurrency, http, metrics, ratelimit, schedule, signing
from deliveries.http import storable_text
from deliveries.models import Delivery
from events.catalogue import EVENT_TYPES
from events.encoding import iso_timestamp
from events.hooks import EventStatement
from events.models import Event
from events.services import build_event
from webhooks.models import Webhook
from webhooks_project.celery import app as celery_app
from webhooks_project.redis import get_redis

logger = logging.getLogger(__name__)

DRAIN_TASK = "deliveries.drain"
# Room between the end of the last send a lease allows and the lease's expiry.
LEASE_MARGIN_SECONDS = 10.0
# How long a coalesced wake stays "pending" if its message never runs (the sweeper covers it).
WAKE_PENDING_TTL_SECONDS = 15.0
# A countdown must stay clear of the broker's visibility timeout (else Redis redelivers it).
COUNTDOWN_HEADROOM = 0.9
# When Redis (the rate limiter) cannot be reached, deliveries wait this long and try again.
REDIS_DOWN_WAIT_SECONDS = 5.0
# Rows the sweeper handles per run; the next run takes the rest.
SWEEP_BATCH = 1000
DISABLED_ERROR = "webhook disabled: not attempted"
# Grants are used within this long of being given (the limiter's allowance for send lag).
GRANT_HORIZON_SECONDS = ratelimit.SECOND_WINDOW_GUARD_MS / 1000 / 2
# A drain claims what it can send in about this long; more waiting at a receiver slower than
# that brings another drain beside it (up to WEBHOOK_ENDPOINT_CONCURRENCY).
SLOW_BATCH_SECONDS = 1.0
# Most grants taken at once, so one drain never holds much of an organization's second.
MAX_GRANT_CHUNK = 10
# An error that could not be recorded is itself recorded, shortened to this.
MAX_ERROR_CHARS = 500
# A receiver answering 410 Gone asks us to stop: its webhook is disabled at once (Standard Webhooks).
GONE = 410


# --- The pipeline's own writes -----------------------------------------------------------


@contextlib.contextmanager
def bookkeeping() -> Iterator[Any]:
    """A transaction for the delivery pipeline's own writes, committed without waiting for fsync.

    Safe because losing such a commit in a PostgreSQL crash never loses a delivery: a lost
    claim or release only frees a lease early, and a lost outcome means the attempt is made
    again — at least once, with the same delivery id. The event and its deliveries (emit) are
    committed durably. This saves a WAL flush on every step of every delivery.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield cursor


# --- Fan-out, at emit --------------------------------------------------------------------


_FAN_OUT_SQL = """
INSERT INTO deliveries_delivery
    (id, organization_id, webhook_id, event_id, event_type, status, attempts, last_error, created_at, next_attempt_at)
SELECT new_id('dlv'), organization_id, id, %s, %s, 'pending', 0, '', %s, now()
FROM webhooks_webhook
WHERE organization_id = %s AND enabled
  AND (events @> jsonb_build_array(%s::text) OR events @> '["*"]'::jsonb)
FOR KEY SHARE
RETURNING webhook_id
"""


def event_fan_out_at_emit(*, event: Event, store_event: EventStatement) -> list[str]:
    """Store an event and one delivery per enabled webhook subscribed to it; wake them after commit.

    ``store_event`` is the events app's SQL for the event row. It and this app's INSERT ...
    SELECT go to PostgreSQL as one query string: one round trip, and, outside a transaction,
    one implicit transaction, committed durably, so an event is stored with its deliveries or
    not at all. The share lock keeps a webhook from being deleted before the commit.
    """
    sql, params = store_event
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql};\n{_FAN_OUT_SQL}",
            [*params, event.id, event.type, event.created_at, event.organization_id, event.type],
        )
        webhook_ids = [row[0] for row in cursor.fetchall()]
    transaction.on_commit(lambda: wake_all(webhook_ids))  # at once when not in a transaction
    return webhook_ids


# --- Waking a webhook's drain loop -------------------------------------------------------


def wake_all(webhook_ids: list[str]) -> None:
    """Immediate, coalesced wakes for several webhooks: one Redis round trip for the flags."""
    if not webhook_ids:
        return
    try:
        newly = concurrency.mark_wakes_pending(get_redis(), webhook_ids, WAKE_PENDING_TTL_SECONDS)
    except redis.RedisError:
        newly = [True] * len(webhook_ids)  # cannot coalesce: wake them all rather than none
    for webhook_id, is_new in zip(webhook_ids, newly, strict=True):
        if is_new:
            wake(webhook_id, coalesce=False)


def wake(webhook_id: str, *, countdown: float | None = None, coalesce: bool = True) -> None:
    """Enqueue a drain of ``webhook_id`` now or after ``countdown`` seconds.

    Immediate wakes are coalesced: while one is pending, another adds nothing (the pending one
    claims everything due when it runs). A countdown beyond the broker's visibility timeout is
    not sent at all: the sweeper finds the delivery when it is due.
    """
    try:
        if countdown is not None and countdown > 0:
            if countdown > settings.CELERY_VISIBILITY_TIMEOUT * COUNTDOWN_HEADROOM:
                return
            celery_app.send_task(DRAIN_TASK, args=[webhook_id], countdown=countdown)
            return
        if coalesce and not concurrency.mark_wake_pending(get_redis(), webhook_id, WAKE_PENDING_TTL_SECONDS):
            return
        celery_app.send_task(DRAIN_TASK, args=[webhook_id])
    except Exception:  # noqa: BLE001 - the database holds the delivery; the sweeper will wake it
        logger.warning("wake of webhook %s not enqueued; the sweeper will pick it up", webhook_id, exc_info=True)


# --- The drain loop ----------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: str
    event_id: str
    event_type: str
    attempts: int
    lease_until: datetime
    body: bytes


@dataclass(frozen=True)
class Sent:
    claimed: Claimed
    requested_at: datetime
    result: http.HttpResult


@dataclass(frozen=True)
class DrainOutcome:
    """What a drain did and what should happen next (the task decides)."""

    sent: int = 0
    # More is due right now but the time budget is spent: drain again at once.
    again: bool = False
    # Wake again after this many seconds (earliest retry or end of a throttle), if any.
    retry_in: float | None = None
    # All of the endpoint's slots are taken; those drains will pick this work up.
    busy: bool = False
    # All of the organization's slots are taken; the webhook waits to be woken by one of them.
    parked: bool = False


def lease_seconds() -> float:
    # A claimed batch is sent only while a whole attempt still fits in the lease.
    return 2 * settings.WEBHOOK_TIMEOUT + LEASE_MARGIN_SECONDS


def webhook_drain(*, webhook_id: str) -> DrainOutcome:
    """Send what is due for one webhook, within its slots and a time budget.

    A drain holds one of the endpoint's slots and one of its organization's (see
    ``concurrency``); with the organization's all taken, the webhook is parked and the drain
    ends at once, its thread free for other organizations' work.

    The webhook's wake-pending flag stays set while the drain runs, so events emitted
    meanwhile send no wake-up of their own: this drain's next claim picks them up. It is
    cleared when the drain ends, then the database is asked once more whether anything is due
    (an event committed before the clear found the flag set and sent nothing).
    """
    webhook = Webhook.objects.filter(id=webhook_id).first()
    if webhook is None:
        return DrainOutcome()
    if not webhook.enabled:
        _fail_due_while_disabled(webhook_id)
        return DrainOutcome()
    client = get_redis()
    org_id = webhook.organization_id
    try:
        slots = concurrency.acquire_slots(
            client,
            webhook_id=webhook_id,
            org_id=org_id,
            endpoint_limit=settings.WEBHOOK_ENDPOINT_CONCURRENCY,
            org_limit=settings.WEBHOOK_ORG_CONCURRENCY,
            lease_seconds=settings.WEBHOOK_DRAIN_SECONDS + lease_seconds(),
        )
    except redis.RedisError:
        logger.warning("redis unavailable; drain of %s waits", webhook_id)
        return DrainOutcome(retry_in=REDIS_DOWN_WAIT_SECONDS)
    if slots.token is None:
        # Busy: the drains holding the endpoint's slots check for due work when they end.
        # Parked: a drain of the organization wakes this webhook when it ends.
        if slots.parked:
            metrics.record_parked()
        return DrainOutcome(busy=slots.endpoint_busy, parked=slots.parked)
    try:
        outcome = _drain_with_slot(webhook)
    finally:
        with contextlib.suppress(redis.RedisError):  # slots and flag expire by themselves
            parked = concurrency.release_slots(client, webhook_id=webhook_id, org_id=org_id, token=slots.token)
            concurrency.clear_wake_pending(client, webhook_id)
            if parked is not None:
                wake(parked, coalesce=False)
    if not outcome.again and _has_due(webhook_id):
        return DrainOutcome(sent=outcome.sent, again=True, retry_in=outcome.retry_in)
    return outcome


def _claim_size(send_seconds: float | None) -> int:
    """How many deliveries to claim at once: what one drain sends within SLOW_BATCH_SECONDS.

    Until a send has been timed, one; a fast receiver then gets whole batches, a slow one a
    few at a time, leaving the rest to the drains beside it.
    """
    if send_seconds is None:
        return 1
    return max(1, min(settings.WEBHOOK_BATCH_SIZE, int(SLOW_BATCH_SECONDS / max(send_seconds, 1e-4))))


def _drain_with_slot(webhook: Webhook) -> DrainOutcome:
    webhook_id = webhook.id
    secrets = webhook.signing_secrets()
    grants = RateGrants(webhook.organization_id)
    budget_end = time.monotonic() + settings.WEBHOOK_DRAIN_SECONDS
    sent_total = 0
    retry_in: float | None = None
    send_seconds: float | None = None  # a moving average of this receiver's answers
    while True:
        limit = _claim_size(send_seconds)
        claimed = _claim(webhook_id, limit)
        if not claimed:
            return DrainOutcome(sent=sent_total, retry_in=retry_in)
        if len(claimed) == limit < settings.WEBHOOK_BATCH_SIZE and send_seconds is not None:
            # A slow receiver with more waiting: another drain beside this one (if a slot is free).
            wake(webhook_id, coalesce=False)
        claimed_at = time.monotonic()
        sent: list[Sent] = []
        wait: float | None = None  # set when the rate limiter (or Redis being down) stops us
        for index, item in enumerate(claimed):
            if time.monotonic() - claimed_at + settings.WEBHOOK_TIMEOUT > lease_seconds() - LEASE_MARGIN_SECONDS:
                break
            wait = grants.take(webhook_id, wanted=len(claimed) - index)
            if wait is not None:
                break
            started = time.monotonic()
            sent.append(_send(item, webhook, secrets))
            took = time.monotonic() - started
            grants.observe(took)
            send_seconds = took if send_seconds is None else 0.8 * send_seconds + 0.2 * took
            if sent[-1].result.status == GONE:
                break  # _record disables the webhook; nothing more goes to this receiver
        unsent = claimed[len(sent) :]
        if unsent:
            _release(unsent, delay=wait or 0)
            if wait is not None:
                metrics.record_throttled(len(unsent))
        next_retry = _record(sent, webhook)
        sent_total += len(sent)
        retry_in = _earliest(retry_in, next_retry)
        if wait is not None:
            return DrainOutcome(sent=sent_total, retry_in=_earliest(retry_in, wait))
        if sent and sent[-1].result.status == GONE:
            return DrainOutcome(sent=sent_total, again=bool(unsent))
        if unsent or time.monotonic() > budget_end:
            return DrainOutcome(sent=sent_total, again=True, retry_in=retry_in)


class RateGrants:
    """The organization's rate-limit grants for one drain, taken just before the sends they cover.

    The limiter stamps a grant when it is given, so a grant must be used at once: a batch
    granted up front but sent one slow answer after another would arrive later than counted,
    and a receiver would see more than the limit in one second. So grants are taken a few at a
    time, only as many as the recent send rate fits into the limiter's guard window, and any
    left when that window has passed are dropped (counted, unused: conservative, never over).
    """

    def __init__(self, org_id: str) -> None:
        self.org_id = org_id
        self.left = 0
        self.usable_until = 0.0
        self.send_seconds = GRANT_HORIZON_SECONDS  # until measured: one grant at a time

    def take(self, webhook_id: str, *, wanted: int) -> float | None:
        """None if one send may go now; otherwise the seconds to wait."""
        now = time.monotonic()
        if self.left and now < self.usable_until:
            self.left -= 1
            return None
        chunk = max(1, min(wanted, MAX_GRANT_CHUNK, int(GRANT_HORIZON_SECONDS / max(self.send_seconds, 1e-4))))
        try:
            grant = ratelimit.acquire(
                get_redis(),
                self.org_id,
                chunk,
                per_second=settings.WEBHOOK_RATE_PER_SECOND,
                per_hour=settings.WEBHOOK_RATE_PER_HOUR,
            )
        except redis.RedisError:
            logger.warning("redis unavailable; deliveries of %s wait", webhook_id)
            return REDIS_DOWN_WAIT_SECONDS
        if not grant.granted:
            return grant.wait_seconds
        self.left = grant.granted - 1
        self.usable_until = now + GRANT_HORIZON_SECONDS
        return None

    def observe(self, seconds: float) -> None:
        # A moving average of recent sends decides how many the next grant may cover.
        self.send_seconds = 0.8 * self.send_seconds + 0.2 * seconds


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM deliveries_delivery
    WHERE webhook_id = %(webhook_id)s
      AND status IN ('pending', 'retrying')
      AND next_attempt_at <= now()
      AND (lease_until IS NULL OR lease_until < now())
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries_delivery d
    SET lease_until = now() + %(lease)s * interval '1 second'
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.event_id, d.event_type, d.attempts, d.lease_until, d.next_attempt_at
)
SELECT c.id, c.event_id, c.event_type, c.attempts, c.lease_until, e.payload
FROM claimed c JOIN events_event e ON e.id = c.event_id
ORDER BY c.next_attempt_at, c.id
"""


def _claim(webhook_id: str, limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries of one webhook; nobody else attempts them meanwhile."""
    with bookkeeping() as cursor:
        cursor.execute(_CLAIM_SQL, {"webhook_id": webhook_id, "limit": limit, "lease": lease_seconds()})
        rows = cursor.fetchall()
    return [
        Claimed(id=r[0], event_id=r[1], event_type=r[2], attempts=r[3], lease_until=r[4], body=r[5].encode("utf-8"))
        for r in rows
    ]


def _release(items: list[Claimed], *, delay: float) -> None:
    """Give claimed deliveries back unattempted, due again after ``delay`` seconds."""
    with bookkeeping() as cursor:
        for lease_until, ids in _group_by_lease(items).items():
            cursor.execute(
                "UPDATE deliveries_delivery SET lease_until = NULL,"
                " next_attempt_at = GREATEST(next_attempt_at, now() + %s * interval '1 second')"
                " WHERE id = ANY(%s) AND lease_until = %s",
                [delay, ids, lease_until],
            )


def _group_by_lease(items: list[Claimed]) -> dict[datetime, list[str]]:
    groups: dict[datetime, list[str]] = {}
    for item in items:
        groups.setdefault(item.lease_until, []).append(item.id)
    return groups


def signed_headers(*, delivery_id: str, event_type: str, body: bytes, secrets: list[str]) -> dict[str, str]:
    """The documented headers plus Standard Webhooks', for one attempt."""
    now = timezone.now()
    unix = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": settings.WEBHOOK_USER_AGENT,
        "X-CyberCage-Signature": signing.documented_signature(secrets[0], body),
        "X-CyberCage-Event": event_type,
        "X-CyberCage-Delivery-ID": delivery_id,
        "X-CyberCage-Timestamp": iso_timestamp(now),
        "webhook-id": delivery_id,
        "webhook-timestamp": str(unix),
        "webhook-signature": signing.standard_signature(secrets, delivery_id, unix, body),
    }


def _send(item: Claimed, webhook: Webhook, secrets: list[str]) -> Sent:
    headers = signed_headers(delivery_id=item.id, event_type=item.event_type, body=item.body, secrets=secrets)
    requested_at = timezone.now()
    result = http.post(webhook.url, item.body, headers)
    logger.log(
        logging.DEBUG if result.ok else logging.INFO,
        "delivery %s event %s attempt %d -> %s %s",
        item.id,
        item.event_id,
        item.attempts + 1,
        result.status,
        result.error or "",
    )
    return Sent(claimed=item, requested_at=requested_at, result=result)


_RECORD_SQL = """
WITH v (id, number, requested_at, response_status, duration_ms, error, response_body, response_body_replaced,
        status, delay) AS (
    VALUES {values}
), ins AS (
    INSERT INTO deliveries_attempt
        (delivery_id, number, requested_at, response_status, duration_ms, error, response_body, response_body_replaced)
    SELECT id, number, requested_at, response_status, duration_ms, error, response_body, response_body_replaced FROM v
    ON CONFLICT (delivery_id, number) DO NOTHING
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
WHERE d.id = v.id AND d.attempts = v.number - 1
"""
_RECORD_ROW = "(%s, %s::int, %s::timestamptz, %s::int, %s::int, %s, %s, %s::boolean, %s, %s::float8)"
# Anything that keeps one row from being written: a value PostgreSQL refuses (DataError,
# IntegrityError) or that psycopg2 cannot send (ValueError).
_UNRECORDABLE = (DatabaseError, ValueError)


@dataclass(frozen=True)
class Outcome:
    """One attempt as it is recorded: the attempt row and its delivery's new state."""

    delivery_id: str
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


def _outcome(sent: Sent) -> Outcome:
    result = sent.result
    number = sent.claimed.attempts + 1
    if result.ok:
        status, delay = Delivery.Status.SUCCEEDED, None
    elif result.status == GONE:
        # Gone: the receiver asks us to stop (Standard Webhooks); no retry.
        status, delay = Delivery.Status.FAILED, None
    else:
        delay = schedule.retry_delay(number, status=result.status, retry_after=result.headers.get("retry-after"))
        status = Delivery.Status.FAILED if delay is None else Delivery.Status.RETRYING
    return Outcome(
        delivery_id=sent.claimed.id,
        number=number,
        requested_at=sent.requested_at,
        response_status=result.status,
        duration_ms=result.duration_ms,
        error=result.error or ("" if result.ok else f"HTTP {result.status}"),
        response_body=result.body,
        response_body_replaced=result.body_replaced,
        status=status,
        delay=delay,
    )


def _record(sent: list[Sent], webhook: Webhook) -> float | None:
    """Write every attempt and its delivery's new state; return the earliest retry delay.

    The update is a compare-and-set on the attempt count, so a duplicate send (a lease that
    expired under a stalled worker) logs its attempt once and never rewinds the delivery.
    All rows go in one statement; should that fail, each is written on its own, so one row
    that cannot be stored never costs the record of the others (see ``_record_one``).
    """
    if not sent:
        return None
    outcomes = [_outcome(s) for s in sent]
    try:
        _write_outcomes(outcomes)
    except _UNRECORDABLE:
        logger.warning("recording %d attempts of webhook %s together failed; one by one", len(sent), webhook.id)
        for outcome in outcomes:
            _record_one(outcome)
    if any(s.result.status == GONE for s in sent):
        webhook_disable(webhook_id=webhook.id, reason="receiver answered 410 Gone")
    delays = [o.delay for o in outcomes if o.status == Delivery.Status.RETRYING and o.delay is not None]
    return min(delays) if delays else None


def _write_outcomes(outcomes: list[Outcome]) -> None:
    sql = _RECORD_SQL.format(values=", ".join([_RECORD_ROW] * len(outcomes)))
    with bookkeeping() as cursor:
        cursor.execute(sql, [param for outcome in outcomes for param in outcome.as_params()])


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
        duration_ms=max(0, min(outcome.duration_ms, 2**31 - 1)),
        response_status=outcome.response_status if outcome.response_status in range(100, 1000) else None,
        error=storable_text(reason.encode("utf-8", errors="replace"))[0][:MAX_ERROR_CHARS],
        response_body="",
        response_body_replaced=False,
    )
    try:
        _write_outcomes([readable])
    except _UNRECORDABLE:
        logger.exception("delivery %s attempt %d could not be recorded", outcome.delivery_id, outcome.number)


def _fail_due_while_disabled(webhook_id: str) -> int:
    return Delivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=Now()),
        webhook_id=webhook_id,
        status__in=Delivery.OPEN_STATUSES,
        next_attempt_at__lte=Now(),
    ).update(status=Delivery.Status.FAILED, next_attempt_at=None, last_error=DISABLED_ERROR, lease_until=None)


def _has_due(webhook_id: str) -> bool:
    return Delivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=Now()),
        webhook_id=webhook_id,
        status__in=Delivery.OPEN_STATUSES,
        next_attempt_at__lte=Now(),
    ).exists()


def webhook_disable(*, webhook_id: str, reason: str) -> None:
    Webhook.objects.filter(id=webhook_id, enabled=True).update(enabled=False, disabled_reason=reason, updated_at=Now())
    logger.warning("webhook %s disabled: %s", webhook_id, reason)


# --- The sweeper -------------------------------------------------------------------------


def sweep() -> int:
    """Re-wake every webhook the database says has overdue deliveries; return how many.

    Lost messages never lose deliveries: the rows say what is due.
    """
    webhook_ids = list(
        Delivery.objects.filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=Now()),
            status__in=Delivery.OPEN_STATUSES,
            next_attempt_at__lte=Now(),
        )
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


# --- Test events and manual redelivery ---------------------------------------------------


def delivery_send_test(*, webhook: Webhook, event_type: str) -> Delivery:
    """Send a signed sample of ``event_type`` to this one webhook; returns its delivery."""
    event = build_event(webhook.organization_id, event_type, dict(EVENT_TYPES[event_type].sample))
    with transaction.atomic():
        event.save(force_insert=True)
        delivery = Delivery.objects.create(
            organization_id=webhook.organization_id,
            webhook=webhook,
            event=event,
            event_type=event_type,
            created_at=event.created_at,
            next_attempt_at=Now(),
        )
        transaction.on_commit(lambda: wake(webhook.id))
    delivery.refresh_from_db()
    return delivery


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Send a delivery again now, whatever its state: same id, one more attempt in its log."""
    Delivery.objects.filter(id=delivery.id).update(
        status=Delivery.Status.RETRYING if delivery.attempts else Delivery.Status.PENDING,
        next_attempt_at=Now(),
        lease_until=None,
    )
    transaction.on_commit(lambda: wake(delivery.webhook_id))
    delivery.refresh_from_db()
    return delivery


def webhook_recover(*, webhook: Webhook, since: datetime) -> int:
    """Send again every failed delivery of ``webhook`` created since ``since``."""
    count = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.FAILED, created_at__gte=since).update(
        status=Delivery.Status.RETRYING, next_attempt_at=Now(), lease_until=None
    )
    if count:
        transaction.on_commit(lambda: wake(webhook.id))
    return count
