"""Deliveries (one event to one webhook) and their attempt log (one row per attempt)."""

from __future__ import annotations

from functools import partial

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from webhooks_project.ids import new_id

# The HTTP statuses of a successful attempt, first and last (inclusive, as ``__range`` reads them).
SUCCESS_STATUSES = (200, 299)


class DeliveryQuerySet(models.QuerySet):
    def due(self) -> DeliveryQuerySet:
        """Deliveries to attempt now: open, their time has come, and no worker holds a lease.

        ``DUE_SQL`` below is the same rule for the readers written in SQL; a test checks that
        both select the same rows.
        """
        return self.filter(
            models.Q(lease_until__isnull=True) | models.Q(lease_until__lt=Now()),
            status__in=Delivery.OPEN_STATUSES,
            next_attempt_at__lte=Now(),
        )


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RETRYING = "retrying"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    OPEN_STATUSES = (Status.PENDING, Status.RETRYING)
    # The last error of a delivery that came due while its webhook was disabled: it was not
    # attempted, so it says nothing about the receiver (unlike every other last error).
    NOT_ATTEMPTED_DISABLED = "webhook disabled: not attempted"

    id = models.CharField(primary_key=True, max_length=40, default=partial(new_id, "dlv"), editable=False)
    # Denormalized from the webhook so that scoping and rate limiting need no join. Not indexed:
    # every read goes through a webhook (history indexes), and each index costs every write.
    organization = models.ForeignKey(
        "webhooks.Organization", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Indexed by the history indexes below (webhook first); no separate single-column index.
    webhook = models.ForeignKey("webhooks.Webhook", on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    # No foreign key in PostgreSQL: between partitioned tables it would have to carry the
    # partition key, and detaching a referenced partition checks every referencing row. The
    # event and its deliveries are written by one statement (the fan-out), with the same
    # created_at, and retention drops the same day of both (deliveries/partitions.py).
    event = models.ForeignKey("events.Event", on_delete=models.CASCADE, related_name="deliveries", db_constraint=False)
    event_type = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the next attempt is due; null once the delivery is finished.
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    # Set while a worker holds the delivery: nobody else attempts it until it has passed.
    lease_until = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "-id"]
        indexes = [
            # History: newest first per webhook (created_at, then id), optionally by status or
            # event type; the stats and chart windows use the first one too.
            models.Index(fields=["webhook", "-created_at", "-id"], name="delivery_history"),
            models.Index(fields=["webhook", "status", "-created_at", "-id"], name="delivery_history_status"),
            models.Index(fields=["webhook", "event_type", "-created_at", "-id"], name="delivery_history_event"),
            # What is due: only open deliveries are in this index.
            models.Index(
                fields=["webhook", "next_attempt_at"],
                name="delivery_due",
                condition=models.Q(status__in=["pending", "retrying"]),
            ),
            models.Index(
                fields=["next_attempt_at"],
                name="delivery_due_all",
                condition=models.Q(status__in=["pending", "retrying"]),
            ),
            models.Index(fields=["created_at"], name="delivery_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.event_type} {self.status}"

    @property
    def not_attempted_reason(self) -> str:
        """Why the delivery ended without an attempt; empty when its last error is an attempt's."""
        return self.last_error if self.last_error == self.NOT_ATTEMPTED_DISABLED else ""


# What "due" means (DeliveryQuerySet.due) for the readers written in SQL — the drain's claim,
# the metrics' oldest due delivery — over deliveries_delivery's columns, unqualified.
_OPEN_SQL = ", ".join(f"'{status}'" for status in Delivery.OPEN_STATUSES)
DUE_SQL = f"status IN ({_OPEN_SQL}) AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())"


class Attempt(models.Model):
    # Indexed by attempt_unique_number (delivery first); no separate single-column index. No
    # foreign key in PostgreSQL (see Delivery.event): the record of an attempt reads its
    # delivery in the statement that writes it (deliveries/leases.py).
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False, db_constraint=False
    )
    # The delivery's webhook, copied from it when the attempt is written: the stats read a
    # window's latencies through attempt_webhook_window (one index range per partition) instead
    # of one probe per delivery. Deleted with the delivery, so no cascade of its own.
    webhook = models.ForeignKey(
        "webhooks.Webhook", on_delete=models.DO_NOTHING, related_name="+", db_index=False, db_constraint=False
    )
    number = models.PositiveIntegerField()
    requested_at = models.DateTimeField()
    response_status = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    response_body = models.TextField(blank=True, default="")
    # The receiver's body was not UTF-8 text (binary, NUL bytes); the undecodable bytes were
    # replaced with U+FFFD before storing.
    response_body_replaced = models.BooleanField(default=False, db_default=False)
    # The partition key: the delivery's created_at, so a day's attempts live (and are dropped)
    # with that day's deliveries, whenever they were made. Filled from the delivery on save.
    delivery_created_at = models.DateTimeField()

    class Meta:
        ordering = ["delivery", "number"]
        # One row per attempt number of a delivery: delivery_created_at is a function of the
        # delivery, so adding it (as partitioning requires) allows no second row. It carries
        # response_status, which the rates read of a retried delivery's attempts, so that read is
        # index-only: a probe per such delivery, no heap fetch per attempt. (And duration_ms, that
        # the stats' latency read through it before attempt_webhook_window; dropping it would
        # rebuild the index on upgrade for nothing but its size.)
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number", "delivery_created_at"],
                include=["response_status", "duration_ms"],
                name="attempt_unique_number",
            )
        ]
        indexes = [
            models.Index(fields=["requested_at"], name="attempt_requested"),
            # A webhook's attempts of a window's deliveries, with their latency: the stats'
            # percentiles read this index alone.
            models.Index(
                fields=["webhook", "delivery_created_at"], include=["duration_ms"], name="attempt_webhook_window"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.number}"

    def save(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if self.delivery_created_at is None:
            self.delivery_created_at = self.delivery.created_at
        if self._state.adding:
            self.webhook_id = self.delivery.webhook_id  # an attempt's webhook is its delivery's
        super().save(*args, **kwargs)

    @property
    def succeeded(self) -> bool:
        first, last = SUCCESS_STATUSES
        return self.response_status is not None and first <= self.response_status <= last
