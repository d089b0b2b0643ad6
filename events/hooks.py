"""The one hand-off from ``emit()`` / ``emit_many()`` to the app that delivers events: the fan-out.

``emit_many()`` (and ``emit()``, a batch of one) stores events with their deliveries in one
query string — one round trip, one durable commit, all or nothing — so the deliveries' INSERT
must travel with the events'. The
events app does not know what a delivery is (imports flow one way: deliveries → events), so
the delivery app registers its fan-out here at start-up (``DeliveriesConfig.ready``), typed
by ``FanOut``: a reader, grep and mypy can follow the dependency from either end, and a
process that never registered one fails loudly instead of storing events nobody delivers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from events.models import Event


class EventStatement(NamedTuple):
    """The events app's SQL that stores a batch of events (and frees expired idempotency keys)."""

    sql: str
    params: list[object]


class FanOut(Protocol):
    def __call__(self, *, events: list[Event], store_events: EventStatement) -> list[str]:
        """Run ``store_events`` and store the deliveries of ``events`` (one organization's,
        unsaved, in order) in the same query string.

        Returns the ids of the webhooks it made deliveries for, each once. Raises what the
        database raises; nothing is stored then.
        """
        ...


_fan_out: FanOut | None = None


def register_fan_out(fan_out: FanOut) -> None:
    """Install the fan-out ``emit_many()`` calls (the delivery app's, from its ``AppConfig.ready``)."""
    global _fan_out
    _fan_out = fan_out


def registered_fan_out() -> FanOut:
    if _fan_out is None:
        raise ImproperlyConfigured(
            "emit() has no fan-out to store deliveries with: 'deliveries' must be in INSTALLED_APPS"
            " (DeliveriesConfig.ready registers it)."
        )
    return _fan_out
