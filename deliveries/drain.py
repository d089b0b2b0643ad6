"""The drain: send what is due for one webhook, within its slots, its rate limit and a time budget.

``webhook_drain`` takes one of the endpoint's concurrency slots (WEBHOOK_ENDPOINT_CONCURRENCY,
cluster-wide) and one of its organization's (``deliveries.concurrency``), then repeatedly
claims due deliveries (``deliveries.leases``) — as many as it sends in about
SLOW_BATCH_SECONDS, at most WEBHOOK_BATCH_SIZE — signs and sends them over one keep-alive
connection, each only once the rate limiter grants it (``RateGrants``), gives back what was
not sent, and records every attempt and outcome in one set-based statement. A slow receiver
with more waiting gets another drain beside it, up to its slots. What happens next (drain
again, wake later) is the task's decision, from the ``DrainOutcome`` returned.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from deliveries import concurrency, http, leases, metrics, ratelimit, schedule
from deliveries.dispatch import WAKE_PENDING_TTL_SECONDS, wake
from deliveries.leases import Claimed, Outcome
from deliveries.models import Delivery
from deliveries.signing import SigningSecrets, signed_headers
from webhooks.models import Webhook
from webhooks.services import webhook_disable
from webhooks_project.redis import get_redis

logger = logging.getLogger(__name__)

# When Redis (the rate limiter) cannot be reached, deliveries wait this long and try again.
REDIS_DOWN_WAIT_SECONDS = 5.0
# A granted send goes out within this long of the moment its grant was stamped for (the
# limiter's allowance for send lag): up to half of it early, half of it late.
GRANT_HORIZON_SECONDS = ratelimit.SECOND_WINDOW_GUARD_MS / 1000 / 2
GRANT_EARLY_SECONDS = GRANT_HORIZON_SECONDS / 2
GRANT_LATE_SECONDS = GRANT_HORIZON_SECONDS - GRANT_EARLY_SECONDS
# One grant's sends are planned over at most this long, and are at most this many: a drain
# holds at most a fifth of a default organization's second (100/s), and only what it is about
# to send.
GRANT_SPAN_SECONDS = 0.1
MAX_GRANT_CHUNK = 20
# A drain claims what it can send in about this long; more waiting at a receiver slower than
# that brings another drain beside it (up to WEBHOOK_ENDPOINT_CONCURRENCY).
SLOW_BATCH_SECONDS = 1.0
# A receiver answering 410 Gone asks us to stop: its webhook is disabled at once (Standard Webhooks).
GONE = 410
# Weight of the newest send in the moving averages of send time (the rest: the history).
SEND_TIME_WEIGHT = 0.2
# Floor of a measured send time, so a divide by it stays finite.
MIN_SEND_SECONDS = 1e-4
# Receivers whose send time a worker process remembers between drains (SendTimes).
SEND_TIMES_REMEMBERED = 10_000


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
    # The organization's rate limit stopped the drain: its wake stays pending until retry_in.
    throttled: bool = False
    # How long past its due time the oldest delivery claimed had waited (how far behind we are).
    late_seconds: float = 0.0
    # The workers are behind: the wake stays pending, and a drain WEBHOOK_COALESCE_SECONDS
    # from now takes what comes meanwhile (a retry keeps its own wake, retry_in).
    coalesced: bool = False


def webhook_drain(*, webhook_id: str) -> DrainOutcome:
    """Send what is due for one webhook, within its slots and a time budget.

    A drain holds one of the endpoint's slots and one of its organization's (see
    ``concurrency``); with the organization's all taken, the webhook is parked and the drain
    ends at once, its thread free for other organizations' work.

    The webhook's wake-pending flag stays set while the drain runs, so events emitted
    meanwhile send no wake-up of their own: this drain's next claim picks them up. It is
    cleared when the drain ends, then the database is asked once more whether anything is due
    (an event committed before the clear found the flag set and sent nothing).

    A drain stopped by the organization's rate limit instead keeps the flag set until the
    throttle ends (at least WEBHOOK_THROTTLED_WAKE_MIN), and its one countdown wakes the
    webhook then: an organization over its limit sends no message per event, only one per
    webhook per throttle, whatever it emits meanwhile. A drain that found the workers behind
    holds the flag the same way for WEBHOOK_COALESCE_SECONDS (``_coalesces``).
    """
    webhook = _webhook_to_drain(webhook_id)
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
            lease_seconds=settings.WEBHOOK_DRAIN_SECONDS + leases.lease_seconds(),
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
    outcome = DrainOutcome()
    try:
        outcome = _drain_with_slot(webhook)
        if outcome.throttled:
            # Everything due now, and all the organization emits meanwhile, waits for this wake.
            outcome = replace(outcome, retry_in=max(outcome.retry_in or 0.0, settings.WEBHOOK_THROTTLED_WAKE_MIN))
        elif _coalesces(outcome):
            outcome = replace(outcome, coalesced=True)
    finally:
        with contextlib.suppress(redis.RedisError):  # slots and flag expire by themselves
            parked = concurrency.release_slots(
                client,
                webhook_id=webhook_id,
                org_id=org_id,
                token=slots.token,
                hold_wake_seconds=_held_for(outcome),
            )
            if parked is not None:
                wake(parked, coalesce=False)
    if outcome.throttled or outcome.coalesced:
        return outcome
    if not outcome.again and leases.any_due(webhook_id):
        return DrainOutcome(sent=outcome.sent, again=True, retry_in=outcome.retry_in)
    return outcome


def _coalesces(outcome: DrainOutcome) -> bool:
    """Whether the workers are so far behind that the webhook's next drain should wait a while.

    Its oldest delivery waited WEBHOOK_COALESCE_LATENESS or more: another drain the moment the
    next event comes would find one or two deliveries, and a drain's own cost (its message, its
    slots, four statements) would be paid again for each. Holding the wake for
    WEBHOOK_COALESCE_SECONDS lets what comes meanwhile go in one drain, and the workers catch up.
    """
    return (
        settings.WEBHOOK_COALESCE_SECONDS > 0
        and outcome.sent > 0
        and not outcome.again
        and outcome.late_seconds >= settings.WEBHOOK_COALESCE_LATENESS
    )


def _held_for(outcome: DrainOutcome) -> float | None:
    """How long the webhook's wake-pending flag stays set after the drain (None: cleared)."""
    if outcome.throttled:
        return outcome.retry_in
    if outcome.coalesced:
        # Until the countdown drain runs, however late a busy worker runs it.
        return WAKE_PENDING_TTL_SECONDS
    return None


# What a drain reads of its webhook (attribute names); the columns below keep the model's order.
_DRAIN_FIELDS = frozenset(
    {
        "id",
        "organization_id",
        "url",
        "enabled",
        "secret_encrypted",
        "previous_secret_encrypted",
        "previous_secret_expires_at",
    }
)
_DRAIN_COLUMNS = [field for field in Webhook._meta.concrete_fields if field.attname in _DRAIN_FIELDS]
_DRAIN_ATTNAMES = [field.attname for field in _DRAIN_COLUMNS]
_DRAIN_WEBHOOK_SQL = (
    f"SELECT {', '.join(field.column for field in _DRAIN_COLUMNS)} FROM {Webhook._meta.db_table} WHERE id = %s"
)


def _webhook_to_drain(webhook_id: str) -> Webhook | None:
    """The webhook as a drain needs it (the other fields load if touched), or None if deleted.

    One plain statement: the ORM's query for it cost 0.8 ms of a worker's CPU against 0.12 ms,
    for each of the drains, which find 7–18 deliveries each in the throughput bench.
    """
    with connection.cursor() as cursor:
        cursor.execute(_DRAIN_WEBHOOK_SQL, [webhook_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return Webhook.from_db(connection.alias, _DRAIN_ATTNAMES, row)


def _fail_due_while_disabled(webhook_id: str) -> int:
    return (
        Delivery.objects.due()
        .filter(webhook_id=webhook_id)
        .update(
            status=Delivery.Status.FAILED,
            next_attempt_at=None,
            last_error=Delivery.NOT_ATTEMPTED_DISABLED,
            lease_until=None,
        )
    )


def _claim_size(send_seconds: float | None) -> int:
    """How many deliveries to claim at once: what one drain sends within SLOW_BATCH_SECONDS.

    Until a send to the receiver has been timed (by this process: ``_send_times``), one; a
    fast receiver then gets whole batches, a slow one a few at a time, leaving the rest to the
    drains beside it.
    """
    if send_seconds is None:
        return 1
    return max(1, min(settings.WEBHOOK_BATCH_SIZE, int(SLOW_BATCH_SECONDS / max(send_seconds, MIN_SEND_SECONDS))))


def _drain_with_slot(webhook: Webhook) -> DrainOutcome:
    # The receiver's moving average send time, carried from this process's last drain of it.
    grants = RateGrants(webhook.organization_id, send_seconds=_send_times.get(webhook.id))
    try:
        return _drain_batches(webhook, grants)
    finally:
        grants.give_back()


def _drain_batches(webhook: Webhook, grants: RateGrants) -> DrainOutcome:
    # One loop of claim, send, give back, record: a little over the usual length, since
    # splitting it would scatter the state that carries from one batch to the next.
    webhook_id = webhook.id
    budget_end = time.monotonic() + settings.WEBHOOK_DRAIN_SECONDS
    sent_total = 0
    retry_in: float | None = None
    late = 0.0
    while True:
        limit = _claim_size(grants.send_seconds)
        # The lease runs from some moment while the claim is on its way: timing it from before
        # the claim is sent keeps a late reply (a slow or cut-off database) from sending what
        # another worker may already be sending after the lease ran out.
        claimed_at = time.monotonic()
        claimed = leases.claim(webhook_id, limit)
        if not claimed:
            return DrainOutcome(sent=sent_total, retry_in=retry_in, late_seconds=late)
        late = max(late, claimed[0].late_seconds)  # claimed oldest first
        if len(claimed) == limit < settings.WEBHOOK_BATCH_SIZE and grants.send_seconds is not None:
            # A slow receiver with more waiting: another drain beside this one (if a slot is free).
            wake(webhook_id, coalesce=False)
        # Read per batch: a rotation's overlap that ends mid-drain ends for the next batch.
        secrets = webhook.signing_secrets()
        sent: list[Sent] = []
        wait: float | None = None  # set when the rate limiter (or Redis being down) stops us
        for index, item in enumerate(claimed):
            lease_left = leases.lease_seconds() - leases.LEASE_MARGIN_SECONDS
            if time.monotonic() - claimed_at + settings.WEBHOOK_TIMEOUT > lease_left:
                break
            wait = grants.take(webhook_id, wanted=len(claimed) - index)
            if wait is not None:
                break
            started = time.monotonic()
            sent.append(_send(item, webhook, secrets))
            took = time.monotonic() - started
            grants.observe(took)
            if sent[-1].result.status == GONE:
                break  # _record disables the webhook; nothing more goes to this receiver
        unsent = claimed[len(sent) :]
        if unsent:
            leases.release(unsent, delay=wait or 0)
            if wait is not None:
                metrics.record_throttled(len(unsent))
        next_retry = _record(sent, webhook)
        sent_total += len(sent)
        retry_in = _earliest(retry_in, next_retry)
        if grants.send_seconds is not None:
            _send_times.remember(webhook_id, grants.send_seconds)
        if wait is not None:
            return DrainOutcome(sent=sent_total, retry_in=_earliest(retry_in, wait), throttled=grants.limited)
        if sent and sent[-1].result.status == GONE:
            return DrainOutcome(sent=sent_total, again=bool(unsent))
        if unsent or time.monotonic() > budget_end:
            return DrainOutcome(sent=sent_total, again=True, retry_in=retry_in, late_seconds=late)
        if len(claimed) < limit:
            # Everything due when it claimed was claimed: no second claim to find nothing (what
            # came due since, webhook_drain's last check finds once the wake flag is cleared).
            return DrainOutcome(sent=sent_total, retry_in=retry_in, late_seconds=late)


def _moving_average(average: float, newest: float) -> float:
    return (1 - SEND_TIME_WEIGHT) * average + SEND_TIME_WEIGHT * newest


class SendTimes:
    """Each receiver's moving average send time, as this process's drains last left it.

    So a drain of a receiver already timed claims a whole batch at once, instead of one
    delivery and then the rest: for the many drains that find one or two deliveries (a webhook
    woken by each event), the first claim takes everything and no second one finds nothing.
    At most ``size`` webhooks are remembered; beyond that the oldest half is forgotten.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._seconds: dict[str, float] = {}

    def get(self, webhook_id: str) -> float | None:
        return self._seconds.get(webhook_id)

    def remember(self, webhook_id: str, seconds: float) -> None:
        seconds_by_webhook = self._seconds
        seconds_by_webhook.pop(webhook_id, None)  # newest last
        seconds_by_webhook[webhook_id] = seconds
        if len(seconds_by_webhook) > self.size:
            # Threads share it: a new dict replaces the old rather than deleting from it.
            self._seconds = dict(list(seconds_by_webhook.items())[self.size // 2 :])


_send_times = SendTimes(SEND_TIMES_REMEMBERED)


@dataclass(frozen=True)
class _Planned:
    """A granted send's window, in this process's monotonic time, and its member of the log."""

    earliest: float
    latest: float
    member: str


class RateGrants:
    """The organization's rate-limit grants for one drain, taken just before the sends they cover.

    The limiter counts a send at the moment its grant is stamped for, so each send must leave
    within GRANT_HORIZON_SECONDS of that moment; otherwise a receiver counting its own second
    could see more than the limit. A receiver not timed yet gets one grant a send. A timed one
    gets paced grants: one call stamps a run of sends ``send_seconds`` apart (the receiver's
    moving average), covering at most GRANT_SPAN_SECONDS and MAX_GRANT_CHUNK sends. A planned
    moment the sends have fallen behind is skipped; sends that run ahead of the plan get a new
    one from now (never a wait: waiting for the plan's moments made drains, and the whole run,
    slower in the bench). What was skipped or left unsent is given back (removed from the log)
    with the next call or when the drain ends (``give_back``), so nothing of the hour's budget
    is lost to it.
    """

    def __init__(self, org_id: str, *, send_seconds: float | None = None) -> None:
        self.org_id = org_id
        # The receiver's send time as last measured (SendTimes); None until measured.
        self.send_seconds = send_seconds
        self._planned: deque[_Planned] = deque()
        self._unused: list[str] = []  # members whose moment passed unsent
        # The last wait came from the limiter (not from Redis being unreachable).
        self.limited = False

    def take(self, webhook_id: str, *, wanted: int) -> float | None:
        """None if one send may go now; otherwise the seconds to wait."""
        now = time.monotonic()
        planned = self._planned
        while planned and planned[0].latest < now:
            self._unused.append(planned.popleft().member)
        if planned and planned[0].earliest <= now:
            planned.popleft()
            return None
        # Nothing planned, or the sends ran ahead of the plan: a new plan from now (what was
        # planned is given back with it).
        self._unused.extend(slot.member for slot in planned)
        planned.clear()
        # Untimed, one grant a send (stamped now); timed, a run spaced by its send time.
        spacing = self.send_seconds or 0.0
        chunk = 1
        if self.send_seconds is not None:
            chunk = max(1, min(wanted, MAX_GRANT_CHUNK, int(GRANT_SPAN_SECONDS / max(spacing, MIN_SEND_SECONDS))))
        try:
            grant = ratelimit.acquire(
                get_redis(),
                self.org_id,
                chunk,
                per_second=settings.WEBHOOK_RATE_PER_SECOND,
                per_hour=settings.WEBHOOK_RATE_PER_HOUR,
                spacing_seconds=spacing,
                # Beyond one call's worth (never seen), the oldest stay in the log: stricter.
                give_back=self._unused[-ratelimit.ZADD_CHUNK :],
            )
        except redis.RedisError:
            logger.warning("redis unavailable; deliveries of %s wait", webhook_id)
            self.limited = False
            return REDIS_DOWN_WAIT_SECONDS
        self._unused = []
        if not grant.granted:
            self.limited = True
            return grant.wait_seconds
        # The grant was stamped somewhere between the call and its reply: a send is early only
        # if early even from the reply, late if late even from the call.
        replied = time.monotonic()
        planned.extend(
            _Planned(
                earliest=replied + i * spacing - GRANT_EARLY_SECONDS,
                latest=now + i * spacing + GRANT_LATE_SECONDS,
                member=member,
            )
            for i, member in enumerate(grant.members)
            if i
        )
        return None

    def observe(self, seconds: float) -> None:
        # A moving average of recent sends spaces the next grant's stamps.
        self.send_seconds = seconds if self.send_seconds is None else _moving_average(self.send_seconds, seconds)

    def give_back(self) -> None:
        """Return what this drain was granted and did not send (it stops; Redis may be down)."""
        members = self._unused + [slot.member for slot in self._planned]
        self._unused, self._planned = [], deque()
        if members:
            with contextlib.suppress(redis.RedisError):  # left in the log: stricter, never over
                ratelimit.give_back(get_redis(), self.org_id, members)


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _send(item: Claimed, webhook: Webhook, secrets: SigningSecrets) -> Sent:
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
        created_at=sent.claimed.created_at,
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
    """Record every attempt (``leases.record``); disable the webhook on a 410; return the earliest retry delay."""
    if not sent:
        return None
    outcomes = [_outcome(s) for s in sent]
    leases.record(outcomes, webhook_id=webhook.id)
    if any(s.result.status == GONE for s in sent):
        webhook_disable(webhook_id=webhook.id, reason=Webhook.DisabledReason.GONE)
    delays = [o.delay for o in outcomes if o.status == Delivery.Status.RETRYING and o.delay is not None]
    return min(delays) if delays else None
