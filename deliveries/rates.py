"""What a webhook's success and failure rates are, and which of them look healthy: the one
definition behind the API's stats, the dashboard's list and webhook page, the admin and ``/metrics``.

A rate counts **attempts**, not deliveries: successful attempts / all attempts of the window's
deliveries (those created in it, so the rates, the deliveries by status and the latency describe
the same deliveries). Counting finished deliveries instead hid a failing endpoint for the seven
hours its deliveries are retried: they are neither succeeded nor failed meanwhile, so an endpoint
answering 400 to everything showed the "100 %" of its earlier deliveries. Over attempts, its very
first error counts.

Rates are rounded towards failure — the success rate down, the failure rate up, so the two still
add up to 1: 9,999 successes in 10,000 attempts are 99.99 % (99.9 % on a page), never 100 %.
Their grade compares the exact fraction, so a page never shows "99.0 %" in amber or "90.0 %" in red.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from django.db import models
from django.db.models import Case, F, Func, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from deliveries.models import SUCCESS_STATUSES, Attempt, Delivery

# Decimal places of a rate in the API (0.9999) and on the pages (99.9 %).
RATE_PLACES = 4
PERCENT_PLACES = 3
# Shown for the rate of a window without attempts.
NO_RATE = "—"
# At least 1 attempt in 100 failing is worth a look (amber); 1 in 10, a receiver that is losing
# events (red). The dashboard, the admin and /metrics grade rates by these two.
HEALTHY_FROM = Fraction(99, 100)
FAILING_BELOW = Fraction(90, 100)


class Grade(StrEnum):
    """How a success rate looks: green, amber or red on the pages, a label in /metrics."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILING = "failing"

    @property
    def label(self) -> str:
        return _GRADE_LABELS[self]


_GRADE_LABELS = {
    Grade.HEALTHY: "at least 99 % of attempts succeeded",
    Grade.DEGRADED: "90 % to 99 % of attempts succeeded",
    Grade.FAILING: "under 90 % of attempts succeeded",
}


@dataclass(frozen=True)
class Rates:
    """The attempts of a window's deliveries: all of them, and those that succeeded."""

    attempts: int = 0
    succeeded: int = 0

    def __add__(self, other: Rates) -> Rates:
        return Rates(attempts=self.attempts + other.attempts, succeeded=self.succeeded + other.succeeded)

    @property
    def failed(self) -> int:
        return self.attempts - self.succeeded

    def success_rate(self, places: int = RATE_PLACES) -> float | None:
        """Successful attempts / attempts, rounded down to ``places``; None without attempts."""
        units = self._success_units(places)
        return None if units is None else units / 10**places

    def failure_rate(self, places: int = RATE_PLACES) -> float | None:
        """Failed attempts / attempts: what the success rate leaves, so rounded up."""
        units = self._success_units(places)
        return None if units is None else (10**places - units) / 10**places

    @property
    def grade(self) -> Grade | None:
        if not self.attempts:
            return None
        share = Fraction(self.succeeded, self.attempts)
        if share >= HEALTHY_FROM:
            return Grade.HEALTHY
        return Grade.DEGRADED if share >= FAILING_BELOW else Grade.FAILING

    def _success_units(self, places: int) -> int | None:
        if not self.attempts:
            return None
        return math.floor(Fraction(self.succeeded, self.attempts) * 10**places)


def percent(rate: float | None) -> str:
    """A rate of ``PERCENT_PLACES`` places as the pages show it: ``99.9%``, ``100%``, ``—``."""
    if rate is None:
        return NO_RATE
    return f"{rate * 100:.{PERCENT_PLACES - 2}f}".removesuffix(".0") + "%"


# --- The same counts in SQL, for grouped queries over deliveries --------------------------


def attempts_sum() -> Coalesce:
    """Aggregate: the attempts of the deliveries in a group (each delivery counts its own)."""
    return Coalesce(Sum("attempts"), 0)


def successful_attempts_sum() -> Coalesce:
    """Aggregate: the successful (2xx) attempts of the deliveries in a group.

    Most deliveries need no look at their attempt log: none attempted yet, or succeeded at the
    first attempt. The others (retried, failed, sent again by hand after a success) count theirs
    through the (delivery, number) index.
    """
    logged = Subquery(
        # With the partition key, only the delivery's day of attempts is searched.
        Attempt.objects.filter(
            delivery=OuterRef("pk"),
            delivery_created_at=OuterRef("created_at"),
            response_status__range=SUCCESS_STATUSES,
        )
        .order_by()
        # number, not the id: the unique index carries it, so the count reads the index alone.
        .annotate(n=Func(F("number"), function="COUNT"))
        .values("n"),
        output_field=models.IntegerField(),
    )
    per_delivery = Case(
        When(attempts=0, then=Value(0)),
        When(attempts=1, status=Delivery.Status.SUCCEEDED, then=Value(1)),
        default=logged,
        output_field=models.IntegerField(),
    )
    return Coalesce(Sum(per_delivery), 0)
